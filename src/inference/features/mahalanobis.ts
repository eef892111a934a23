/**
 * Class-conditional Mahalanobis score (Lee et al. 2018, "A simple unified framework for detecting
 * out-of-distribution samples and adversarial attacks"): Gaussians with one mean per class and a covariance
 * shared by all classes, fitted to penultimate features; the score is the smallest squared Mahalanobis
 * distance to a class mean. Higher = more out-of-distribution. (Without the paper's input perturbation
 * and layer ensemble: the score of the last features alone.)
 * Stored whitened: W = L⁻¹ with Σ = LLᵀ, so d²(f, μ_c) = ‖Wf − Wμ_c‖²; one D×D product per image, which
 * `MahalanobisIndex` runs in onnxruntime for a whole batch.
 */
import { CholeskyDecomposition, inverse, Matrix } from 'ml-matrix';
import type { LoadOptions, ModelRunner } from '../backends/types';
import { whiteningModel } from './onnxGraph';

export interface MahalanobisModel {
  dims: number;
  classes: number;
  /** W μ_c for each class, classes × dims. */
  whitenedMeans: Float32Array;
  /** W = L⁻¹ (lower triangular), dims × dims, row-major. */
  whitening: Float32Array;
}

/**
 * Fits class means and the shared covariance from `features` (rows × dims) and their class `labels`.
 * A ridge of 1e-6 × mean variance keeps Σ invertible when features are collinear (dead ReLUs); `shrinkage` λ
 * shrinks Σ towards the mean variance: (1 − λ) Σ + λ · tr(Σ)/D · I.
 */
export function fitMahalanobis(features: Float32Array, labels: ArrayLike<number>, dims: number, classes: number, shrinkage = 0): MahalanobisModel {
  const n = labels.length;
  if (features.length !== n * dims) throw new Error(`Mahalanobis fit: ${features.length} feature values for ${n} images of ${dims}`);
  const sums = new Float64Array(classes * dims);
  const counts = new Float64Array(classes);
  for (let i = 0; i < n; i++) {
    const c = labels[i];
    if (!(c >= 0 && c < classes && Number.isInteger(c))) throw new Error(`Mahalanobis fit: image ${i} has class ${c}, outside 0…${classes - 1}`);
    counts[c]++;
    for (let j = 0; j < dims; j++) sums[c * dims + j] += features[i * dims + j];
  }
  const means = sums.map((s, idx) => (counts[Math.floor(idx / dims)] ? s / counts[Math.floor(idx / dims)] : 0));
  const cov = new Float64Array(dims * dims);
  const centred = new Float64Array(dims);
  for (let i = 0; i < n; i++) {
    const c = labels[i];
    for (let j = 0; j < dims; j++) centred[j] = features[i * dims + j] - means[c * dims + j];
    for (let a = 0; a < dims; a++) {
      const x = centred[a];
      if (x === 0) continue;
      for (let b = 0; b <= a; b++) cov[a * dims + b] += x * centred[b];
    }
  }
  let trace = 0;
  for (let a = 0; a < dims; a++) trace += cov[a * dims + a] / n;
  const sigma = new Matrix(dims, dims);
  for (let a = 0; a < dims; a++) {
    for (let b = 0; b <= a; b++) {
      const v = (1 - shrinkage) * (cov[a * dims + b] / n) + (a === b ? (shrinkage + 1e-6) * (trace / dims) + 1e-12 : 0);
      sigma.set(a, b, v);
      sigma.set(b, a, v);
    }
  }
  const chol = new CholeskyDecomposition(sigma);
  if (!chol.isPositiveDefinite()) throw new Error('Mahalanobis fit: the feature covariance is not positive definite (too few fit images for the feature size?)');
  const w = inverse(chol.lowerTriangularMatrix);
  const whitening = Float32Array.from(w.to1DArray());
  const whitenedMeans = new Float32Array(classes * dims);
  for (let c = 0; c < classes; c++) {
    for (let a = 0; a < dims; a++) {
      let acc = 0;
      for (let b = 0; b <= a; b++) acc += w.get(a, b) * means[c * dims + b];
      whitenedMeans[c * dims + a] = acc;
    }
  }
  return { dims, classes, whitenedMeans, whitening };
}

/** min over classes of ‖z − Wμ_c‖² for each whitened row z of `whitened` (rows × dims). */
function nearestClassDistances(model: MahalanobisModel, whitened: Float32Array | Float64Array): Float64Array {
  const { dims, classes, whitenedMeans } = model;
  const n = whitened.length / dims;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const off = i * dims;
    let best = Infinity;
    for (let c = 0; c < classes; c++) {
      let d = 0;
      for (let a = 0; a < dims; a++) {
        const diff = whitened[off + a] - whitenedMeans[c * dims + a];
        d += diff * diff;
      }
      if (d < best) best = d;
    }
    out[i] = best;
  }
  return out;
}

/** min over classes of the squared Mahalanobis distance, for each row of `features` (in JS: the reference). */
export function mahalanobisScores(model: MahalanobisModel, features: Float32Array): Float64Array {
  const { dims, whitening } = model;
  const n = features.length / dims;
  const z = new Float64Array(n * dims);
  for (let i = 0; i < n; i++) {
    const off = i * dims;
    for (let a = 0; a < dims; a++) {
      let acc = 0;
      const row = a * dims;
      for (let b = 0; b <= a; b++) acc += whitening[row + b] * features[off + b];
      z[off + a] = acc;
    }
  }
  return nearestClassDistances(model, z);
}

/** The same scores with the whitening of a whole batch in one onnxruntime Gemm (the engine's path). */
export class MahalanobisIndex {
  private constructor(private readonly runner: ModelRunner, readonly model: MahalanobisModel) {}

  static async create(model: MahalanobisModel, options: LoadOptions, source: string): Promise<MahalanobisIndex> {
    const { loadOnnx } = await import('../backends/onnx');
    return new MahalanobisIndex(await loadOnnx(`${source} (Mahalanobis whitening)`, options, whiteningModel(model.whitening, model.dims)), model);
  }

  async scores(features: Float32Array): Promise<Float64Array> {
    const n = features.length / this.model.dims;
    const out = await this.runner.run({ features: { data: features, dims: [n, this.model.dims] } }, ['whitened']);
    return nearestClassDistances(this.model, out.whitened.data);
  }

  dispose(): Promise<void> {
    return this.runner.dispose();
  }
}
