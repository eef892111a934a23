/**
 * The fitted feature detectors of a pair, on disk: `features.json` (what was fitted, on what, from which
 * tensor) beside `features-knn.f16` (the fit images' L2-normalised features, float16) and
 * `features-mahalanobis.f32` (class means and whitening matrix, float32) and `features-layers.f32` (the
 * earlier-layer Gaussians, float32). Written atomically.
 */
import { BoundedReadError, LIMITS, linkedOutside, readBoundedSync, readBoundedTextSync } from '../io/boundedRead';
import { jsonSyntaxProblem } from '../io/jsonText';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../io/atomicFile';
import { firstNonFinite } from './finite';
import { fromFloat16Bytes, toFloat16Bytes } from './float16';
import { bankRowStats } from './bankWasm';
import type { MahalanobisModel } from './mahalanobis';
import type { LayerGaussian } from './layerGaussian';

/** One earlier layer's Gaussian as features.json lists it (its whitened mean and whitening in the .f32 file). */
interface LayerEntry {
  tensor: string;
  inputDims: number;
  pooling: LayerGaussian['pooling'];
  dims: number;
  center: number;
  scale: number;
}

export interface FeatureFitFile {
  version: 1;
  /** The classifier tensor the features were read from (an output name, or a TF.js layer name). */
  tensor: string;
  dims: number;
  /** Fit images behind the stored features. */
  count: number;
  /** Where the fit images came from, in words (and which ones: the calibration must use others). */
  source: string;
  createdAt: string;
  knn?: { file: string; count: number };
  mahalanobis?: { file: string; classes: number; labels: 'given' | 'predicted' };
  /** Earlier-layer Gaussians (test `layers`): per layer, the whitened mean then the whitening, float32, in order. */
  layers?: { file: string; items: LayerEntry[] };
}

export interface FeatureFit {
  tensor: string;
  dims: number;
  count: number;
  source: string;
  /** L2-normalised features of the fit images, count × dims. */
  bank?: Float32Array;
  mahalanobis?: MahalanobisModel;
  mahalanobisLabels?: 'given' | 'predicted';
  /** Earlier-layer Gaussians, in graph order (absent in pairs fitted before them). */
  layers?: LayerGaussian[];
}

/** A data file named in features.json: beside it, and not a symbolic link leading out of its folder. */
function dataFile(dir: string, name: string): string {
  const path = join(dir, basename(name));
  const outside = linkedOutside(dir, path);
  if (outside) throw new Error(`${path}: a symbolic link to ${outside}, outside the pair folder; the fitted features' data files must be inside it`);
  return path;
}

export function readFeatureFit(path: string): FeatureFit {
  let file: FeatureFitFile;
  let text = '';
  try {
    text = readBoundedTextSync(path, { maxBytes: LIMITS.manifestBytes, what: 'features file' });
    file = JSON.parse(text) as FeatureFitFile;
  } catch (err) {
    // Neither the parser's message (it quotes the file) nor the content: the reason in words.
    const reason = err instanceof BoundedReadError ? err.reason : jsonSyntaxProblem(err, text);
    throw new Error(`${path}: cannot read the fitted features: ${reason}`);
  }
  if (file?.version !== 1 || typeof file.tensor !== 'string' || !(Number.isInteger(file.dims) && file.dims > 0)) {
    throw new Error(`${path}: not an OOD Lens features file (needs version 1, tensor and dims); fit the detectors again`);
  }
  const dir = dirname(path);
  const fit: FeatureFit = { tensor: file.tensor, dims: file.dims, count: file.count, source: file.source };
  if (file.knn) {
    const bytesPath = dataFile(dir, file.knn.file);
    fit.bank = fromFloat16Bytes(readBoundedSync(bytesPath, { maxBytes: LIMITS.modelBytes, what: 'features data file' }), file.knn.count * file.dims, bytesPath);
    const problem = bankProblem(fit.bank, file.dims);
    if (problem) throw new Error(`${bytesPath}: the KNN detector's feature bank ${problem}; fit the detectors again (ood-lens fit … or Create Pair)`);
  }
  if (file.mahalanobis) {
    const bytesPath = dataFile(dir, file.mahalanobis.file);
    const { classes } = file.mahalanobis;
    const buf = readBoundedSync(bytesPath, { maxBytes: LIMITS.modelBytes, what: 'features data file' });
    const expected = (classes * file.dims + file.dims * file.dims) * 4;
    if (buf.byteLength !== expected) throw new Error(`${bytesPath}: holds ${buf.byteLength} bytes, expected ${expected}; fit the detectors again`);
    const all = float32Values(buf);
    const bad = firstNonFinite(all);
    if (bad >= 0) throw new Error(`${bytesPath}: the Mahalanobis detector's data holds a value that is not a finite number (${all[bad]} at index ${bad}); fit the detectors again (ood-lens fit … or Create Pair)`);
    if (all.subarray(classes * file.dims).every((v) => v === 0)) throw new Error(`${bytesPath}: the Mahalanobis detector's whitening matrix is all zeros (every distance would be 0); fit the detectors again (ood-lens fit … or Create Pair)`);
    fit.mahalanobis = { dims: file.dims, classes, whitenedMeans: all.slice(0, classes * file.dims), whitening: all.slice(classes * file.dims) };
    fit.mahalanobisLabels = file.mahalanobis.labels;
  }
  if (file.layers) fit.layers = readLayers(dir, file.layers);
  return fit;
}

/**
 * A data file's float32 values (little-endian, as written): a view of the read buffer when it is 4-byte aligned
 * (a read of its own always is), else a copy. Only read here: the models' arrays are sliced out of it.
 */
function float32Values(buf: Buffer): Float32Array {
  if (buf.byteOffset % 4 === 0) return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

function readLayers(dir: string, entry: NonNullable<FeatureFitFile['layers']>): LayerGaussian[] {
  const bytesPath = dataFile(dir, entry.file);
  const items = Array.isArray(entry.items) ? entry.items : [];
  const good = (l: LayerEntry) => typeof l?.tensor === 'string' && Number.isInteger(l.dims) && l.dims > 0 && Number.isInteger(l.inputDims) && (l.pooling === 'quadrants' || l.pooling === 'channels') && Number.isFinite(l.center) && Number.isFinite(l.scale) && l.scale > 0;
  const bad = items.findIndex((l) => !good(l));
  if (!items.length || bad >= 0) throw new Error(`${dirname(bytesPath)}: features.json layers${items.length ? `.items[${bad}]` : ''} is not an earlier-layer Gaussian (tensor, inputDims, pooling, dims, a finite center and a positive scale); fit the detectors again`);
  const buf = readBoundedSync(bytesPath, { maxBytes: LIMITS.modelBytes, what: 'features data file' });
  const expected = items.reduce((a, l) => a + (l.dims + l.dims * l.dims) * 4, 0);
  if (buf.byteLength !== expected) throw new Error(`${bytesPath}: holds ${buf.byteLength} bytes, expected ${expected}; fit the detectors again`);
  const all = float32Values(buf);
  const nonFinite = firstNonFinite(all);
  if (nonFinite >= 0) throw new Error(`${bytesPath}: the earlier-layer Gaussians hold a value that is not a finite number (${all[nonFinite]} at index ${nonFinite}); fit the detectors again (ood-lens fit … or Create Pair)`);
  let off = 0;
  return items.map((l) => {
    const whitenedMeans = all.slice(off, off + l.dims);
    const whitening = all.slice(off + l.dims, off + l.dims + l.dims * l.dims);
    off += l.dims + l.dims * l.dims;
    return { tensor: l.tensor, inputDims: l.inputDims, pooling: l.pooling, center: l.center, scale: l.scale, model: { dims: l.dims, classes: 1, whitenedMeans, whitening } };
  });
}

/**
 * What makes a KNN feature bank unusable, or null: its rows are the fit images' L2-normalised features, so
 * every value is finite and every row has length 1 (0 for an image whose features were all zero); most rows
 * must be non-zero and they must not all point one way (every image would then be as far from the bank as
 * the next: the test flags everything or nothing). A NaN would make every distance NaN and the test drop
 * out without a word.
 */
export function bankProblem(bank: Float32Array, dims: number): string | null {
  const count = Math.floor(bank.length / dims);
  if (!count) return 'is empty';
  // Each row's sum of squares, the first non-finite value and the long rows' sum, in one WebAssembly pass (bankWasm.ts:
  // a cold shard's JS loop over the built-in pair's 2.56 M values took 10–24 ms); the verdicts go row by row as the loop did.
  const { norms2, firstNonFinite, sumOfLongRows: sum } = bankRowStats(bank.subarray(0, count * dims), dims);
  const nonFiniteRow = firstNonFinite >= 0 ? Math.floor(firstNonFinite / dims) : count;
  let zeroRows = 0;
  for (let row = 0; row < count; row++) {
    if (row === nonFiniteRow) return `holds a value that is not a finite number (${bank[firstNonFinite]}, row ${row + 1} of ${count})`;
    const norm = Math.sqrt(norms2[row]);
    if (norm < 1e-6) zeroRows++;
    else if (Math.abs(norm - 1) > 0.01) return `has a row of length ${norm.toPrecision(3)} (row ${row + 1} of ${count}); its rows are L2-normalised features, of length 1`;
  }
  if (zeroRows > count / 2) return `is degenerate: ${zeroRows} of its ${count} rows are all zeros`;
  let meanLength2 = 0;
  for (let j = 0; j < dims; j++) meanLength2 += (sum[j] / (count - zeroRows)) ** 2;
  // For unit rows, 1 − |mean|² is the mean squared distance to their mean / 2: 0 when every row is the same.
  if (1 - meanLength2 < 1e-4) return `is degenerate: its ${count - zeroRows} rows are (nearly) all the same vector, so it cannot tell images apart`;
  return null;
}

/** Writes `<dir>/<name>.json` and its data files; returns the JSON file's path. */
export function writeFeatureFit(dir: string, fit: FeatureFit, name = 'features'): string {
  const file: FeatureFitFile = { version: 1, tensor: fit.tensor, dims: fit.dims, count: fit.count, source: fit.source, createdAt: new Date().toISOString() };
  if (fit.bank) {
    const knnFile = `${name}-knn.f16`;
    writeFileAtomic(join(dir, knnFile), toFloat16Bytes(fit.bank));
    file.knn = { file: knnFile, count: fit.bank.length / fit.dims };
  }
  if (fit.mahalanobis) {
    const m = fit.mahalanobis;
    const all = new Float32Array(m.whitenedMeans.length + m.whitening.length);
    all.set(m.whitenedMeans, 0);
    all.set(m.whitening, m.whitenedMeans.length);
    const mFile = `${name}-mahalanobis.f32`;
    writeFileAtomic(join(dir, mFile), new Uint8Array(all.buffer));
    file.mahalanobis = { file: mFile, classes: m.classes, labels: fit.mahalanobisLabels ?? 'predicted' };
  }
  if (fit.layers?.length) {
    const lFile = `${name}-layers.f32`;
    const total = fit.layers.reduce((a, l) => a + l.model.dims + l.model.dims * l.model.dims, 0);
    const all = new Float32Array(total);
    let off = 0;
    for (const l of fit.layers) {
      all.set(l.model.whitenedMeans, off);
      all.set(l.model.whitening, off + l.model.dims);
      off += l.model.dims + l.model.dims * l.model.dims;
    }
    writeFileAtomic(join(dir, lFile), new Uint8Array(all.buffer));
    file.layers = { file: lFile, items: fit.layers.map((l) => ({ tensor: l.tensor, inputDims: l.inputDims, pooling: l.pooling, dims: l.model.dims, center: l.center, scale: l.scale })) };
  }
  const jsonPath = join(dir, `${name}.json`);
  writeFileAtomic(jsonPath, JSON.stringify(file, null, 2) + '\n');
  return jsonPath;
}
