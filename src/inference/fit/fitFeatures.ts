/**
 * Fitting the feature detectors (KNN, Mahalanobis, earlier-layer Gaussians) of a pair on in-distribution images: the engine reads
 * the classifier's penultimate features batch by batch, then each detector fits through the OodDetector
 * interface. Used by `ood-lens fit` and by scripts/fit-features.ts for the built-in pairs.
 *
 * The images fitted on must not be the images the pair is calibrated on: a fit image is its own nearest
 * neighbour, so calibrating on it would make every test image look far away (false alarms far above α).
 */
import { readFileSync } from 'node:fs';
import type { FeatureBatch, OodEngine } from '../engine';
import type { ScoreInput } from '../engineTypes';
import { writeFileAtomic } from '../io/atomicFile';
import { KnnDetector, LayerGaussianDetector, MahalanobisDetector } from '../detectors/oodDetectors';
import type { DetectorSpec } from '../pair/manifest';
import { type FeatureFit, writeFeatureFit } from '../features/featureFit';

export interface FitFeaturesOptions {
  /** Where the images come from, in words, with the range used (recorded in the pair). */
  source: string;
  /**
   * Each input's class index, in input order (e.g. the labels IDX beside the images); default the classifier's
   * prediction. Used by Mahalanobis for its class means.
   */
  labels?: ArrayLike<number>;
  /** Which detectors to fit (default all: knn, mahalanobis, and layers when the engine exposes earlier layers). */
  detectors?: ('knn' | 'mahalanobis' | 'layers')[];
  /** Called after each batch with the images read so far (features kept + images that failed). */
  onProgress?: (done: number) => void;
  signal?: AbortSignal;
}

export interface FitFeaturesResult {
  fit: FeatureFit;
  /** Inputs that could not be read (each named with its problem); the fit used the rest. */
  skipped: { path: string; message: string }[];
  /** True when `signal` aborted: nothing was fitted. */
  cancelled: boolean;
}

/**
 * Fits the feature detectors on `inputs` with `engine` (created with `features: true`, or on a pair that
 * has features). Throws when fewer than 2 images per class could be read.
 */
export async function fitFeatureDetectors(engine: OodEngine, inputs: Iterable<ScoreInput> | AsyncIterable<ScoreInput>, options: FitFeaturesOptions): Promise<FitFeaturesResult> {
  const chunks: FeatureBatch[] = [];
  const skipped: FitFeaturesResult['skipped'] = [];
  let done = 0;
  let dims = 0;
  await engine.extractFeatures(
    inputs,
    (batch) => {
      if (batch.dims) dims = batch.dims;
      chunks.push(batch);
      skipped.push(...batch.errors.map(({ path, message }) => ({ path, message })));
      done += batch.indices.length + batch.errors.length;
      options.onProgress?.(done);
    },
    { signal: options.signal },
  );
  const tensor = engine.pair.names.features!;
  if (options.signal?.aborted) return { fit: { tensor, dims, count: 0, source: options.source }, skipped, cancelled: true };
  const count = chunks.reduce((a, c) => a + c.indices.length, 0);
  const classCount = engine.pair.manifest.classifier.labels.length;
  if (count < 2 * classCount) throw new Error(`only ${count} images could be read to fit the feature detectors; at least ${2 * classCount} are needed (thousands are better)`);
  const features = new Float32Array(count * dims);
  const classes = new Int32Array(count);
  let row = 0;
  for (const c of chunks) {
    features.set(c.features, row * dims);
    for (let i = 0; i < c.indices.length; i++) {
      const label = options.labels ? options.labels[c.indices[i]] : c.predictions[i];
      if (label === undefined || !(label >= 0 && label < classCount)) throw new Error(`image ${c.indices[i]} has label ${label}, outside the classifier's ${classCount} classes`);
      classes[row + i] = label;
    }
    row += c.indices.length;
  }
  // Earlier layers (the ONNX graph exposes them pooled): one rows × dims array per layer, in the fit images' order.
  const layerTensors = engine.pair.names.layerTensors ?? [];
  const layers = layerTensors.map((tensor, k) => {
    const parts = chunks.map((c) => c.layers[k]).filter((a) => a.length);
    const total = parts.reduce((a, p) => a + p.length, 0);
    const all = new Float32Array(total);
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    const layerDims = total / count;
    if (!Number.isInteger(layerDims) || layerDims < 1) throw new Error(`layer "${tensor}" gave ${total} values for ${count} images`);
    return { tensor, features: all, dims: layerDims };
  });
  const data = { features, dims, classes, classCount, layers };
  const which = options.detectors ?? ['knn', 'mahalanobis', 'layers'];
  const fit: FeatureFit = { tensor, dims, count, source: options.source };
  if (which.includes('knn')) {
    const knn = new KnnDetector(1, engine.pair);
    await knn.fit(data);
    fit.bank = knn.bank;
    await knn.dispose();
  }
  if (which.includes('mahalanobis')) {
    const mahalanobis = new MahalanobisDetector(engine.pair);
    await mahalanobis.fit(data);
    fit.mahalanobis = mahalanobis.model;
    fit.mahalanobisLabels = options.labels ? 'given' : 'predicted';
  }
  if (which.includes('layers') && layers.length) {
    const layerGaussians = new LayerGaussianDetector(engine.pair);
    await layerGaussians.fit(data);
    fit.layers = layerGaussians.layers;
  }
  return { fit, skipped, cancelled: false };
}

/**
 * Writes the fit into the pair folder (features.json + data files) and records it in the manifest:
 * `features.fit`, the feature tensor, and — when given — the detector list with shares of α.
 * The manifest's other fields are kept as written.
 */
export function saveFeatureFit(manifestPath: string, fit: FeatureFit, detectors?: DetectorSpec[]): string {
  const dir = manifestPath.replace(/[/\\][^/\\]*$/, '');
  const fitPath = writeFeatureFit(dir, fit);
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  manifest.features = { ...(manifest.features ?? {}), fit: fitPath.slice(dir.length + 1) };
  if (detectors) manifest.detectors = detectors;
  writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  return fitPath;
}
