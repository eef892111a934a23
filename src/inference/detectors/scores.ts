/**
 * The numbers OOD Lens reports, as plain functions on Float32Arrays (unit-tested against hand values).
 * Conventions: natural logarithms (nats); ELBO higher = more likely under the VAE.
 */

export function logSumExp(values: ArrayLike<number>, start = 0, end = values.length): number {
  let max = -Infinity;
  for (let i = start; i < end; i++) if (values[i] > max) max = values[i];
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = start; i < end; i++) sum += Math.exp(values[i] - max);
  return max + Math.log(sum);
}

export function softmax(logits: ArrayLike<number>): Float64Array {
  const lse = logSumExp(logits);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = Math.exp(logits[i] - lse);
  return out;
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Shannon entropy of a probability vector, nats. */
export function entropy(probs: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < probs.length; i++) if (probs[i] > 0) h -= probs[i] * Math.log(probs[i]);
  return h;
}

/** Energy score (Liu et al. 2020): −logsumexp(logits). Higher = more out-of-distribution. */
export function energy(logits: ArrayLike<number>): number {
  return -logSumExp(logits);
}

export interface ClassifierScores {
  prediction: number;
  probabilities: Float64Array;
  msp: number;
  entropy: number;
  /** Null when the classifier outputs probabilities (energy needs logits). */
  energy: number | null;
}

/** `output` is logits or probabilities per the manifest's outputKind. */
export function classifierScores(output: ArrayLike<number>, kind: 'logits' | 'probabilities'): ClassifierScores {
  let probabilities: Float64Array;
  if (kind === 'logits') {
    probabilities = softmax(output);
  } else {
    probabilities = Float64Array.from(output as ArrayLike<number>);
    let total = 0;
    for (const p of probabilities) total += p;
    if (total > 0) for (let i = 0; i < probabilities.length; i++) probabilities[i] /= total;
  }
  const prediction = argmax(probabilities);
  return {
    prediction,
    probabilities,
    msp: probabilities[prediction],
    entropy: entropy(probabilities),
    energy: kind === 'logits' ? energy(output) : null,
  };
}

/** log(1 + e^x) without overflow. */
export function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

const EPS = 1e-6;

/** Σ log Bernoulli(x | σ(l)) from logits: x·l − softplus(l). x in [0, 1]. */
export function bernoulliLogLikFromLogits(x: ArrayLike<number>, logits: ArrayLike<number>, start = 0, n = x.length): number {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const l = logits[start + i];
    // softplus inlined; log1p(e) = e to double precision once e < 1e-8 (the error is below e²/2), which
    // skips a log1p on most background pixels — this loop runs for every pixel of every image.
    const e = Math.exp(-Math.abs(l));
    s += x[i] * l - ((l > 0 ? l : 0) + (e < 1e-8 ? e : Math.log1p(e)));
  }
  return s;
}

/** Σ log Bernoulli(x | p) from probabilities, clamped away from 0 and 1. */
export function bernoulliLogLikFromProbs(x: ArrayLike<number>, probs: ArrayLike<number>, start = 0, n = x.length): number {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const p = Math.min(1 - EPS, Math.max(EPS, probs[start + i]));
    s += x[i] * Math.log(p) + (1 - x[i]) * Math.log(1 - p);
  }
  return s;
}

/**
 * log C(λ) of the continuous Bernoulli (Loaiza-Ganem & Cunningham 2019):
 * C(λ) = 2·atanh(1 − 2λ) / (1 − 2λ) for λ ≠ ½, and 2 at λ = ½ (Taylor series near ½).
 */
export function continuousBernoulliLogNorm(lambda: number): number {
  const l = Math.min(1 - EPS, Math.max(EPS, lambda));
  const u = 1 - 2 * l;
  if (Math.abs(u) < 1e-3) {
    // 2·atanh(u)/u = 2(1 + u²/3 + u⁴/5 + …)
    const u2 = u * u;
    return Math.log(2) + Math.log1p(u2 / 3 + (u2 * u2) / 5);
  }
  return Math.log((2 * Math.atanh(u)) / u);
}

/** Σ log CB(x | λ); `probs` are λ = σ(logits). */
export function continuousBernoulliLogLik(x: ArrayLike<number>, probs: ArrayLike<number>, start = 0, n = x.length): number {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.min(1 - EPS, Math.max(EPS, probs[start + i]));
    s += x[i] * Math.log(l) + (1 - x[i]) * Math.log(1 - l) + continuousBernoulliLogNorm(l);
  }
  return s;
}

/** Σ log N(x | μ, σ²). */
export function gaussianLogLik(x: ArrayLike<number>, mean: ArrayLike<number>, sigma: number, start = 0, n = x.length): number {
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i] - mean[start + i];
    sq += d * d;
  }
  return -0.5 * sq / (sigma * sigma) - n * (Math.log(sigma) + 0.5 * Math.log(2 * Math.PI));
}

/** KL(N(μ, e^logvar) ‖ N(0, I)) = −½ Σ (1 + logvar − μ² − e^logvar). */
export function gaussianKl(mu: ArrayLike<number>, logvar: ArrayLike<number>, start = 0, n = mu.length): number {
  let s = 0;
  for (let i = start; i < start + n; i++) s += 1 + logvar[i] - mu[i] * mu[i] - Math.exp(logvar[i]);
  return -0.5 * s;
}

/** Negative ELBO per dimension in bits: −ELBO / (D ln 2). */
export function bitsPerDim(elbo: number, dims: number): number {
  return -elbo / (dims * Math.LN2);
}

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** log σ(x) = −softplus(−x), stable for any x. */
export function logSigmoid(x: number): number {
  return -softplus(-x);
}

/**
 * Σ log P(x) under a logistic discretised into `levels` equal bins on [0, 1] (Salimans et al. 2017, one
 * component; the end bins take the tails). Pixel i has mean `means[start+i]` (σ of it when `meanIsLogits`)
 * and scale e^logScales[start+i] (or the constant `scale`), in [0, 1] pixel units. x is snapped to its bin.
 * A proper probability over the grey levels: −log₂ of it is a code length in bits, the scale of a lossless
 * compressor's output. P = σ(a) − σ(b) is evaluated as σ(a)·σ(−b)·(1 − e^(b−a)), stable for any scale.
 */
export function discretizedLogisticLogLik(
  x: ArrayLike<number>,
  means: ArrayLike<number>,
  meanIsLogits: boolean,
  logScales: ArrayLike<number> | null,
  scale: number,
  start = 0,
  n = x.length,
  levels = 256,
): number {
  const top = levels - 1;
  const half = 0.5 / top;
  const constLogBin = logScales ? 0 : Math.log(-Math.expm1(-2 * half / scale));
  let s = 0;
  for (let i = 0; i < n; i++) {
    const k = Math.min(top, Math.max(0, Math.round(x[i] * top)));
    const v = k / top;
    const raw = means[start + i];
    const m = meanIsLogits ? sigmoid(raw) : raw;
    const invS = logScales ? Math.exp(-logScales[start + i]) : 1 / scale;
    if (k === 0) s += logSigmoid((v + half - m) * invS);
    else if (k === top) s += logSigmoid(-(v - half - m) * invS);
    else {
      const logBin = logScales ? Math.log(-Math.expm1(-2 * half * invS)) : constLogBin;
      s += logSigmoid((v + half - m) * invS) + logSigmoid(-(v - half - m) * invS) + logBin;
    }
  }
  return s;
}
