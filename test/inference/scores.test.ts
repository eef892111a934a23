import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as S from '../../src/inference/scores';

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
