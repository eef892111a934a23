/**
 * KNN out-of-distribution score (Sun et al. 2022, "Out-of-distribution detection with deep nearest
 * neighbors"): the distance from an image's L2-normalised penultimate features to its k-th nearest neighbour
 * among the normalised features of in-distribution fit images. Higher = more out-of-distribution.
 * The search runs inside onnxruntime as one Gemm + TopK per batch (features/onnxGraph.ts), fed the stored
 * features from this index's array on every run; they live in the pair folder as float16.
 */
import type { LoadOptions, ModelRunner } from '../backends/types';
import { knnSearchModel } from './onnxGraph';

/** Scales each row of `features` (rows × dims) to unit L2 norm, in place; a zero row stays zero. */
export function l2NormaliseRows(features: Float32Array, dims: number): Float32Array {
  for (let off = 0; off < features.length; off += dims) {
    let sum = 0;
    for (let j = 0; j < dims; j++) sum += features[off + j] * features[off + j];
    const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
    for (let j = 0; j < dims; j++) features[off + j] *= scale;
  }
  return features;
}

/** Euclidean distance between unit vectors with cosine similarity `s`. */
export function unitDistance(s: number): number {
  return Math.sqrt(Math.max(0, 2 - 2 * s));
}

export class KnnIndex {
  private constructor(private readonly runner: ModelRunner, private readonly bank: Float32Array, readonly dims: number, readonly count: number, readonly k: number) {}

  /**
   * `bank`: the fit images' normalised features, `count` rows of `dims`, kept (not copied) and fed to every
   * search. `k` ≤ count. The search model is built in memory and loaded on onnxruntime with the pair's load options.
   */
  static async create(bank: Float32Array, dims: number, k: number, options: LoadOptions, source: string): Promise<KnnIndex> {
    const count = bank.length / dims;
    if (!Number.isInteger(count) || count < 1) throw new Error(`${source}: ${bank.length} values are not whole rows of ${dims} features`);
    if (!Number.isInteger(k) || k < 1 || k > count) throw new Error(`${source}: k must be an integer from 1 to the ${count} stored features (got ${k})`);
    const { loadOnnx } = await import('../backends/onnx');
    const runner = await loadOnnx(`${source} (KNN search)`, options, knnSearchModel(dims, count, k));
    return new KnnIndex(runner, bank, dims, count, k);
  }

  /** The k-th nearest-neighbour distance of each row of `queries` (already L2-normalised), in one call. */
  async kthDistances(queries: Float32Array): Promise<Float64Array> {
    const n = queries.length / this.dims;
    const out = await this.runner.run({ queries: { data: queries, dims: [n, this.dims] }, bank: { data: this.bank, dims: [this.count, this.dims] } }, ['similarities']);
    const sims = out.similarities.data;
    const distances = new Float64Array(n);
    for (let i = 0; i < n; i++) distances[i] = unitDistance(sims[i * this.k + this.k - 1]);
    return distances;
  }

  dispose(): Promise<void> {
    return this.runner.dispose();
  }
}
