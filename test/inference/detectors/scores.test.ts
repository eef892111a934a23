import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as S from '../../../src/inference/detectors/scores';

const close = (actual: number, expected: number, tol = 1e-9) => assert.ok(Math.abs(actual - expected) <= tol, `${actual} ≠ ${expected}`);

test('softmax, MSP, entropy and energy of logits [0, ln 3]', () => {
  const s = S.classifierScores([0, Math.log(3)], 'logits');
  close(s.probabilities[0], 0.25);
  close(s.probabilities[1], 0.75);
  assert.equal(s.prediction, 1);
  close(s.msp, 0.75);
  close(s.entropy, -(0.25 * Math.log(0.25) + 0.75 * Math.log(0.75))); // 0.5623351446
  close(s.entropy, 0.5623351446, 1e-9);
  close(s.energy!, -Math.log(4));
});

test('probabilities output: renormalised, no energy', () => {
  const s = S.classifierScores([0.2, 0.2, 0.6], 'probabilities');
  assert.equal(s.prediction, 2);
  close(s.msp, 0.6);
  assert.equal(s.energy, null);
});

test('logSumExp is stable for large logits', () => {
  close(S.logSumExp([1000, 1000]), 1000 + Math.log(2));
  close(S.logSumExp([-1000, -1000]), -1000 + Math.log(2));
});

test('Bernoulli log-likelihood from logits and from probabilities agree with hand values', () => {
  close(S.bernoulliLogLikFromLogits([1, 0], [0, 0]), -2 * Math.log(2));
  close(S.bernoulliLogLikFromLogits([0.5], [Math.log(3)]), 0.5 * Math.log(0.75) + 0.5 * Math.log(0.25)); // −0.8369882
  close(S.bernoulliLogLikFromProbs([0.5], [0.75]), -0.8369882168, 1e-9);
  // Extreme logits do not overflow.
  close(S.bernoulliLogLikFromLogits([1], [800]), 0);
  close(S.bernoulliLogLikFromLogits([0], [800]), -800);
});

test('continuous Bernoulli: log C(½) = ln 2 (uniform density), log C(¾) = ln(4·atanh ½)', () => {
  close(S.continuousBernoulliLogNorm(0.5), Math.log(2));
  close(S.continuousBernoulliLogNorm(0.5 + 1e-5), Math.log(2), 1e-9);
  close(S.continuousBernoulliLogNorm(0.75), Math.log(4 * Math.atanh(0.5)), 1e-12); // 0.787195
  close(S.continuousBernoulliLogLik([0.3], [0.5]), 0);
});

test('Gaussian log-likelihood: x = 0.5, μ = 0.3, σ = 0.1', () => {
  close(S.gaussianLogLik([0.5], [0.3], 0.1), -2 - Math.log(0.1) - 0.5 * Math.log(2 * Math.PI), 1e-12); // −0.616354
});

test('KL(N(μ, σ²) ‖ N(0, 1)) hand values', () => {
  close(S.gaussianKl([1], [0]), 0.5);
  close(S.gaussianKl([0], [Math.log(2)]), 0.5 * (1 - Math.log(2)));
  close(S.gaussianKl([0, 0], [0, 0]), 0);
});

test('bits per dimension: −ELBO / (D ln 2)', () => {
  close(S.bitsPerDim(-1024 * Math.LN2, 1024), 1);
});

test('discretised logistic: the 256 bin probabilities sum to 1 and match the CDF differences; stable at tiny scales', () => {
  const cdf = (v: number, m: number, s: number) => 1 / (1 + Math.exp(-(v - m) / s));
  for (const [m, logS] of [[0.3, -3], [0.02, -5], [0.97, -2], [0.5, 0]] as const) {
    const s = Math.exp(logS);
    let total = 0;
    for (let k = 0; k < 256; k++) {
      const x = k / 255;
      const p = Math.exp(S.discretizedLogisticLogLik([x], [m], false, [logS], 1));
      const lo = k === 0 ? 0 : cdf(x - 0.5 / 255, m, s);
      const hi = k === 255 ? 1 : cdf(x + 0.5 / 255, m, s);
      close(p, hi - lo, 1e-9);
      total += p;
    }
    close(total, 1, 1e-9);
  }
  // Means as logits, a constant scale, several pixels: the sum of the per-pixel terms.
  const logit = Math.log(0.3 / 0.7);
  const one = S.discretizedLogisticLogLik([0.2], [0.3], false, null, 0.05);
  close(S.discretizedLogisticLogLik([0.2, 0.2], [logit, logit], true, null, 0.05), 2 * one, 1e-9);
  // A pixel predicted almost exactly at a scale far below the bin width costs almost nothing, a miss a lot.
  close(S.discretizedLogisticLogLik([100 / 255], [100 / 255], false, [-12], 1), 0, 1e-6);
  const miss = S.discretizedLogisticLogLik([120 / 255], [100 / 255], false, [-12], 1);
  assert.ok(Number.isFinite(miss) && miss < -1000, `${miss}`);
  // Values off the grid snap to their bin.
  close(S.discretizedLogisticLogLik([0.3001], [0.3], false, [-3], 1), S.discretizedLogisticLogLik([Math.round(0.3001 * 255) / 255], [0.3], false, [-3], 1));
});
