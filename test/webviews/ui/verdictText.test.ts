/**
 * Verdict sentences from real verdicts: the p-values come from the engine's own conformal test (decide)
 * against a calibration set of 5,000 ELBOs, so the words must agree with the numbers the engine reports.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Calibration, decide, type VerdictRule } from '../../../src/inference/pair/calibration';
import type { ImageResult } from '../../../src/inference/engine';
import { elboBreakdown, formatMsp, formatNats, formatP, formatPercent, predictionText, shareBetter, verdictText } from '../../../src/webviews/ui/verdictText';

const N = 5000;
// Calibration ELBOs −150.00 … −100.01 (ascending, step 0.01) and complexity scores 0.000 … 4.999.
const calibration: Calibration = {
  version: 1,
  pair: 'mnist',
  source: 'test',
  count: N,
  createdAt: '2026-01-01T00:00:00Z',
  // MSPs 0.5 … 0.9999 (ascending).
  scores: { elbo: Array.from({ length: N }, (_, i) => -150 + i * 0.01), msp: Array.from({ length: N }, (_, i) => 0.5 + i * 0.0001), complexity: Array.from({ length: N }, (_, i) => i * 0.001) },
};

function scored(elbo: number, complexity: number | null, rule: VerdictRule, label: string, msp: number, calibrated = true, alpha = 0.01) {
  const cal = calibrated ? calibration : undefined;
  const v = decide(cal, elbo, complexity, alpha, rule, msp);
  const r: Pick<ImageResult, 'verdict' | 'label' | 'prediction' | 'msp' | 'elbo' | 'reconstructionLogLik' | 'kl' | 'elboBitsPerDim' | 'pValue' | 'pValues' | 'firedBy' | 'error'> = {
    verdict: v.verdict,
    label,
    prediction: Number(label),
    msp,
    elbo,
    reconstructionLogLik: elbo - 20,
    kl: 20,
    elboBitsPerDim: -elbo / Math.LN2 / 1024,
    pValue: v.pValue,
    pValues: v.pValues,
    firedBy: v.firedBy,
    error: null,
  };
  return { r, ctx: { alpha, rule: v.rule, calibrationCount: cal?.count ?? 0, pairDir: '/ext/models/mnist' } };
}

describe('verdict sentences', () => {
  test('the three-score rule: the classifier-confidence test alone fired, said in words, each test with its threshold', () => {
    // A typical ELBO (median) and S, but an MSP below all 5,000 held-out ones (p = 1/5001 < 0.1α = 0.001).
    const { r, ctx } = scored(-125, 2.5, 'all', '2', 0.186);
    assert.equal(r.verdict, 'out-of-distribution');
    assert.deepEqual(r.firedBy, ['confidence']);
    const v = verdictText(r, ctx);
    assert.equal(
      v.sentence,
      "The classifier is less sure of it than of all 5,000 held-out training images, although the VAE finds it plausible — typical of blank or simple images unlike the training data (confidence test p = 0.0002). Treat the prediction '2 (18.6%)' as unreliable.",
    );
    assert.deepEqual(v.tests, [
      'ELBO test p = 0.5 ≥ 0.45α = 0.0045: did not fire (how likely the VAE finds the image)',
      'complexity test p = 0.5 ≥ 0.45α = 0.0045: did not fire (likelihood relative to how complex the image is)',
      'confidence test p = 0.0002 < 0.1α = 0.001: fired (how sure the classifier is, against held-out images)',
      'Verdict p = 0.002: the combined p-value (the smallest test p-value over its share of α, Bonferroni) against α = 0.01',
    ]);
    // The headline p is the verdict's combined p-value, not the test's own.
    assert.equal(v.p, 'p = 0.002');
  });

  test('out-of-distribution by ELBO: the share of held-out images and the p-value agree', () => {
    // 9 calibration ELBOs are ≤ −149.915 → p = 10/5001 = 0.0019996; 4,991 of 5,000 (99.82%) are higher.
    const { r, ctx } = scored(-149.915, null, 'elbo', '5', 0.999);
    assert.equal(r.verdict, 'out-of-distribution');
    assert.ok(Math.abs(r.pValue! - 10 / 5001) < 1e-12);
    const v = verdictText(r, ctx);
    assert.equal(v.tone, 'warn');
    assert.equal(v.headline, 'Out-of-distribution');
    assert.equal(v.sentence, "Less likely under the training data than 99.8% of held-out training images (ELBO test p = 0.002). Treat the prediction '5 (99.9%)' as unreliable.");
    assert.deepEqual(v.tests, [
      'ELBO test p = 0.002 < α = 0.01: fired (how likely the VAE finds the image)',
      'confidence test p = 1 (how sure the classifier is, against held-out images; not used by the "elbo" rule)',
    ]);
  });

  test('an ELBO below every calibration image says "all" with the smallest possible p', () => {
    const { r, ctx } = scored(-2221.0, 3.2, 'both', '3', 0.2826);
    assert.equal(r.verdict, 'out-of-distribution');
    assert.deepEqual(r.firedBy, ['elbo']);
    const v = verdictText(r, ctx);
    assert.equal(v.sentence, "Less likely under the training data than all 5,000 held-out training images (ELBO test p = 0.0002). Treat the prediction '3 (28.3%)' as unreliable.");
    assert.equal(v.tests[0], 'ELBO test p = 0.0002 < α/2 = 0.005: fired (how likely the VAE finds the image)');
    // complexity 3.2: 1,800 of 5,000 calibration scores are ≥ 3.2 → p = 1801/5001 = 0.36.
    assert.equal(v.tests[1], 'complexity test p = 0.36 ≥ α/2 = 0.005: did not fire (likelihood relative to how complex the image is)');
    assert.equal(v.tests[2], 'confidence test p = 0.0002 (how sure the classifier is, against held-out images; not used by the "both" rule)');
    assert.equal(v.tests[3], 'Verdict p = 0.0004: the combined p-value (the smallest test p-value over its share of α, Bonferroni) against α = 0.01');
    assert.equal(v.p, 'p = 0.0004');
  });

  test('out-of-distribution by the complexity test alone leads with that test', () => {
    // ELBO typical (p ≈ 0.5) but complexity score 4.999: only the maximum itself is ≥ → p = 2/5001.
    const { r, ctx } = scored(-125, 4.999, 'both', '1', 0.97);
    assert.equal(r.verdict, 'out-of-distribution');
    assert.deepEqual(r.firedBy, ['complexity']);
    const v = verdictText(r, ctx);
    assert.equal(v.sentence, "Less likely under the training data than its complexity explains, more so than for 99.98% of held-out training images (complexity test p = 0.0004). Treat the prediction '1 (97.0%)' as unreliable.");
    assert.match(v.tests[0], /^ELBO test p = 0\.5 ≥ α\/2 = 0\.005: did not fire/);
    assert.match(v.tests[1], /^complexity test p = 0\.0004 < α\/2 = 0\.005: fired/);
  });

  test('in-distribution: the combined p-value and the prediction, trusted as far as the classifier is', () => {
    // 2,050 calibration ELBOs are ≤ −129.505 → p = 2051/5001 = 0.41.
    const { r, ctx } = scored(-129.505, null, 'elbo', '7', 0.992);
    assert.equal(r.verdict, 'in-distribution');
    const v = verdictText(r, ctx);
    assert.equal(v.tone, 'ok');
    assert.equal(v.sentence, "Typical of the training data (p = 0.41): the prediction '7 (99.2%)' can be trusted as far as the classifier can.");
    assert.equal(v.tests[0], 'ELBO test p = 0.41 ≥ α = 0.01: did not fire (how likely the VAE finds the image)');
  });

  test('in-distribution with an unsure classifier says so', () => {
    const { r, ctx } = scored(-120, null, 'elbo', '4', 0.41);
    const v = verdictText(r, ctx);
    assert.match(v.sentence, /^Typical of the training data \(p = 0\.6\): the prediction '4 \(41\.0%\)'/);
    assert.match(v.sentence, /The classifier itself is unsure \(its top class has 41\.0%\)\.$/);
  });

  test('uncalibrated: no verdict, the ELBO, and how to calibrate', () => {
    const { r, ctx } = scored(-95.25, null, 'both', '8', 0.9999, false);
    assert.equal(r.verdict, 'uncalibrated');
    const v = verdictText(r, ctx);
    assert.equal(v.tone, 'info');
    assert.equal(v.headline, 'Not calibrated');
    assert.equal(
      v.sentence,
      "This pair has no calibration, so there is no p-value or verdict: its ELBO (−95.3 nats) cannot be compared with held-out training images. The classifier says '8 (>99.9%)'. Calibrate the pair with `ood-lens calibrate <held-out training images> --pair /ext/models/mnist`.",
    );
  });

  test('error: the problem in a sentence', () => {
    const v = verdictText({ verdict: 'error', label: null, prediction: null, msp: null, elbo: null, reconstructionLogLik: null, kl: null, elboBitsPerDim: null, pValue: null, pValues: { elbo: null, complexity: null, confidence: null }, firedBy: [], error: 'image data is truncated or corrupt: VipsPngload: end of stream' }, { alpha: 0.01, rule: 'both', calibrationCount: N });
    assert.equal(v.tone, 'error');
    assert.equal(v.sentence, 'Could not score this image: image data is truncated or corrupt: VipsPngload: end of stream.');
  });
});

describe('number formatting', () => {
  test('p-values keep two significant digits', () => {
    assert.equal(formatP(10 / 5001), '0.002');
    assert.equal(formatP(2051 / 5001), '0.41');
    assert.equal(formatP(0.0342), '0.034');
    assert.equal(formatP(1 / 5001), '0.0002');
    assert.equal(formatP(1), '1');
  });
  test('percentages never round up to 100% below 1', () => {
    assert.equal(formatPercent(0.9982), '99.8%');
    assert.equal(formatPercent(0.9998), '99.98%');
    assert.equal(formatPercent(0.99996), '99.996%');
    assert.equal(formatPercent(1), '100%');
    assert.equal(formatMsp(0.99996), '>99.9%');
    assert.equal(formatMsp(0.992), '99.2%');
    // One format everywhere (src/shared/format.ts): small p-values keep two significant digits, tiny ones go scientific.
    assert.equal(formatP(4 / 9001), '0.00044');
    assert.equal(formatP(0.2 / 9001 / 0.45), '4.9e-5');
    assert.equal(formatP(null), '–');
    assert.equal(formatMsp(1), '100%');
    assert.equal(formatMsp(0.9996), '>99.9%');
    assert.equal(predictionText({ label: 'cat', prediction: 3, msp: 0.5 }), 'cat (50.0%)');
  });
  test('share of calibration images inverts the conformal p-value', () => {
    assert.equal(shareBetter(10 / 5001, 5000), 4991 / 5000);
    assert.equal(shareBetter(1 / 5001, 5000), 1);
    assert.equal(shareBetter(1, 5000), 0);
  });
  test('ELBO breakdown with its parts and a real minus sign', () => {
    assert.equal(formatNats(-105.44), '−105.4');
    assert.equal(formatNats(25.31), '25.3');
    assert.equal(elboBreakdown({ elbo: -105.44, reconstructionLogLik: -80.13, kl: 25.31, elboBitsPerDim: 0.1486 }), 'ELBO −105.4 nats = reconstruction −80.1 − KL 25.3 (0.149 bits/dim)');
    assert.equal(elboBreakdown({ elbo: null, reconstructionLogLik: null, kl: null, elboBitsPerDim: null }), 'ELBO: not available');
  });
});
