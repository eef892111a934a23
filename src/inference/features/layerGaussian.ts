/**
 * Earlier-layer feature Gaussians (after Lee et al. 2018's feature ensemble, without class labels): for each
 * exposed conv block, its activations average-pooled to 2×2 (done in the classifier's graph, onnxGraph.ts) are
 * fitted with ONE Gaussian — a mean and a covariance, shrunk towards a scaled identity for stability — and an
 * image's distance at that layer is its squared Mahalanobis distance. The layers' distances are put on one
 * scale by each layer's fit-part median and spread (MAD), and averaged: a label-free combination in which no
 * layer dominates by its width. Higher = more out-of-distribution.
 */
import { firstNonFinite } from './finite';
import { fitMahalanobis, type MahalanobisModel } from './mahalanobis';

/** Layers pooled to more values than this are pooled further, to 1×1 (per channel): the covariance is D². */
export const MAX_LAYER_DIMS = 1024;
/** The Gaussians are fitted on at most this many fit images (strided); the covariance of a few hundred dims needs no more. */
export const MAX_GAUSSIAN_ROWS = 8000;
/**
 * Σ ← (1 − λ) Σ + λ · mean variance · I. Dead ReLU channels have zero variance; a pooled 2×2 map has strongly
 * correlated quadrants. λ = 0.01 keeps the whitening finite without flattening the directions that matter.
 */
export const SHRINKAGE = 0.01;

export interface LayerGaussian {
  /** The activation tensor (ONNX) or layer (TF.js) the features are read from. */
  tensor: string;
  /** Values per image as the classifier gives them (4·C for a 2×2 pooling). */
  inputDims: number;
  /** 'quadrants' uses them as they are; 'channels' averages the four quadrants first (wide layers). */
  pooling: 'quadrants' | 'channels';
  /** The Gaussian, as a one-class Mahalanobis model (whitened mean + whitening matrix). */
  model: MahalanobisModel;
  /** Median and MAD-based spread of the fit images' distances at this layer. */
  center: number;
  scale: number;
}

/** The rows the Gaussian sees: as given, or the four quadrants' mean per channel. */
export function layerRows(features: Float32Array, inputDims: number, pooling: LayerGaussian['pooling']): Float32Array {
  if (pooling === 'quadrants') return features;
  const channels = inputDims / 4;
  const n = features.length / inputDims;
  const out = new Float32Array(n * channels);
  for (let i = 0; i < n; i++) {
    const off = i * inputDims;
    for (let c = 0; c < channels; c++) out[i * channels + c] = (features[off + c] + features[off + channels + c] + features[off + 2 * channels + c] + features[off + 3 * channels + c]) / 4;
  }
  return out;
}

function medianOf(values: Float64Array): number {
  const s = Float64Array.from(values).sort();
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Fits one layer's Gaussian on `features` (rows × inputDims); `distances` scores rows with the fitted model. */
export function fitLayerGaussian(tensor: string, features: Float32Array, inputDims: number, distances: (m: MahalanobisModel, rows: Float32Array) => Float64Array): LayerGaussian {
  const n = features.length / inputDims;
  const broken = firstNonFinite(features);
  // A NaN would make the whole Gaussian NaN: no image could be scored by this test afterwards.
  if (broken >= 0) throw new Error(`the earlier-layer test ("layers"): layer "${tensor}" has a non-finite value (${features[broken]}) for fit image ${Math.floor(broken / inputDims) + 1} of ${n}; the classifier's output is invalid for that image: check the model`);
  const pooling: LayerGaussian['pooling'] = inputDims > MAX_LAYER_DIMS && inputDims % 4 === 0 ? 'channels' : 'quadrants';
  let rows = layerRows(features, inputDims, pooling);
  const dims = rows.length / n;
  if (dims > MAX_LAYER_DIMS) throw new Error(`layer "${tensor}" gives ${dims} values per image even pooled per channel; at most ${MAX_LAYER_DIMS}`);
  if (n > MAX_GAUSSIAN_ROWS) {
    const step = n / MAX_GAUSSIAN_ROWS;
    const kept = new Float32Array(MAX_GAUSSIAN_ROWS * dims);
    for (let i = 0; i < MAX_GAUSSIAN_ROWS; i++) kept.set(rows.subarray(Math.floor(i * step) * dims, (Math.floor(i * step) + 1) * dims), i * dims);
    rows = kept;
  }
  const count = rows.length / dims;
  const model = fitMahalanobis(rows, new Int32Array(count), dims, 1, SHRINKAGE);
  const d = distances(model, rows);
  const center = medianOf(d);
  const mad = medianOf(d.map((v) => Math.abs(v - center)));
  // 1.4826·MAD is the standard deviation for normal data; a floor keeps a constant layer from dividing by 0.
  const scale = Math.max(1.4826 * mad, 1e-6 * Math.max(1, Math.abs(center)));
  return { tensor, inputDims, pooling, model, center, scale };
}

/** The combined score: the mean over layers of (d²ₗ − medianₗ) / spreadₗ, for each image. */
export function combineLayerDistances(layers: Pick<LayerGaussian, 'center' | 'scale'>[], perLayer: Float64Array[]): Float64Array {
  const n = perLayer[0]?.length ?? 0;
  const out = new Float64Array(n);
  layers.forEach((l, k) => {
    for (let i = 0; i < n; i++) out[i] += (perLayer[k][i] - l.center) / l.scale / layers.length;
  });
  return out;
}
