/**
 * The fitted feature detectors of a pair, on disk: `features.json` (what was fitted, on what, from which
 * tensor) beside `features-knn.f16` (the fit images' L2-normalised features, float16) and
 * `features-mahalanobis.f32` (class means and whitening matrix, float32). Written atomically.
 */
import { BoundedReadError, LIMITS, readBoundedSync, readBoundedTextSync } from '../io/boundedRead';
import { jsonSyntaxProblem } from '../io/jsonText';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../io/atomicFile';
import { fromFloat16Bytes, toFloat16Bytes } from './float16';
import type { MahalanobisModel } from './mahalanobis';

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
    const bytesPath = join(dir, basename(file.knn.file));
    fit.bank = fromFloat16Bytes(readBoundedSync(bytesPath, { maxBytes: LIMITS.modelBytes, what: 'features data file' }), file.knn.count * file.dims, bytesPath);
  }
  if (file.mahalanobis) {
    const bytesPath = join(dir, basename(file.mahalanobis.file));
    const { classes } = file.mahalanobis;
    const buf = readBoundedSync(bytesPath, { maxBytes: LIMITS.modelBytes, what: 'features data file' });
    const expected = (classes * file.dims + file.dims * file.dims) * 4;
    if (buf.byteLength !== expected) throw new Error(`${bytesPath}: holds ${buf.byteLength} bytes, expected ${expected}; fit the detectors again`);
    const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    fit.mahalanobis = { dims: file.dims, classes, whitenedMeans: all.slice(0, classes * file.dims), whitening: all.slice(classes * file.dims) };
    fit.mahalanobisLabels = file.mahalanobis.labels;
  }
  return fit;
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
  const jsonPath = join(dir, `${name}.json`);
  writeFileAtomic(jsonPath, JSON.stringify(file, null, 2) + '\n');
  return jsonPath;
}
