import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Calibration, CalibrationError, decide, lowerTailPValue, readCalibration, upperTailPValue, writeCalibration } from '../../../src/inference/pair/calibration';

const cal: Calibration = { version: 1, pair: 't', source: 'test', count: 9, createdAt: '', scores: { elbo: [1, 2, 3, 4, 5, 6, 7, 8, 9], msp: [1], complexity: [10, 20, 30, 40, 50, 60, 70, 80, 90] } };

test('p = (1 + #{cal ≤ x}) / (n + 1) and the upper-tail mirror', () => {
  assert.equal(lowerTailPValue(cal.scores.elbo, 0), 0.1);
  assert.equal(lowerTailPValue(cal.scores.elbo, 3), 0.4);
  assert.equal(lowerTailPValue(cal.scores.elbo, 100), 1);
  assert.equal(upperTailPValue(cal.scores.complexity!, 95), 0.1);
  assert.equal(upperTailPValue(cal.scores.complexity!, 90), 0.2);
  assert.equal(upperTailPValue(cal.scores.complexity!, 0), 1);
});

test('verdict rules: elbo alone, complexity alone, both with Bonferroni', () => {
  assert.equal(decide(cal, 0, 50, 0.15, 'elbo').verdict, 'out-of-distribution');
  assert.equal(decide(cal, 5, 50, 0.15, 'elbo').verdict, 'in-distribution');
  const both = decide(cal, 0, 50, 0.15, 'both');
  // p_elbo = 0.1 is not below α/2 = 0.075 → in-distribution under the combined rule.
  assert.equal(both.verdict, 'in-distribution');
  assert.equal(both.pValue, 0.2);
  const fired = decide(cal, 5, 95, 0.25, 'both');
  assert.deepEqual(fired.firedBy, ['complexity']);
  assert.equal(fired.verdict, 'out-of-distribution');
  assert.equal(decide(undefined, 0, 0, 0.01, 'both').verdict, 'uncalibrated');
});

test('the three-score rule: α split 0.45 / 0.45 / 0.1, the classifier-confidence test fires on a low MSP alone', () => {
  // 19 held-out scores each: p-values run 0.05, 0.10, … 1.
  const c: Calibration = {
    ...cal,
    count: 19,
    scores: { elbo: Array.from({ length: 19 }, (_, i) => i + 1), msp: Array.from({ length: 19 }, (_, i) => 0.5 + i / 40), complexity: Array.from({ length: 19 }, (_, i) => 10 * (i + 1)) },
  };
  const alpha = 0.5;
  // A typical ELBO and S, but an MSP below every held-out one: p_conf = 1/20 = 0.05, exactly 0.1α — not below it.
  const atThreshold = decide(c, 10, 100, alpha, 'all', 0.1);
  assert.equal(atThreshold.pValues.confidence, 0.05);
  assert.equal(atThreshold.verdict, 'in-distribution');
  assert.deepEqual(atThreshold.thresholds, { elbo: 0.225, complexity: 0.225, confidence: 0.05 });
  // With α = 0.6 the confidence threshold is 0.06: it fires, and only it.
  const fired = decide(c, 10, 100, 0.6, 'all', 0.1);
  assert.deepEqual(fired.firedBy, ['confidence']);
  assert.equal(fired.verdict, 'out-of-distribution');
  // The verdict's p-value is the smallest p over its share: 0.05 / 0.1.
  assert.ok(Math.abs(fired.pValue! - 0.5) < 1e-12);
  // The same image under the two-score rule is in-distribution: that test does not look at the classifier.
  assert.equal(decide(c, 10, 100, 0.6, 'both', 0.1).verdict, 'in-distribution');
  // ELBO at its 0.45α threshold: p_elbo = 0.10 < 0.45 · 0.25 = 0.1125 fires; under `both` (α/2 = 0.125) too.
  assert.deepEqual(decide(c, 1, 100, 0.25, 'all', 0.99).firedBy, ['elbo']);
  // A calibration without MSP scores leaves the confidence test (and its share) out.
  const noMsp = decide({ ...c, scores: { ...c.scores, msp: [] } }, 10, 100, 0.6, 'all', 0.1);
  assert.equal(noMsp.pValues.confidence, null);
  assert.equal(noMsp.verdict, 'in-distribution');
  assert.deepEqual(Object.keys(noMsp.thresholds), ['elbo', 'complexity']);
});

test('a calibration without complexity scores falls back to the ELBO rule', () => {
  const elboOnly: Calibration = { ...cal, scores: { elbo: cal.scores.elbo, msp: [1] } };
  const r = decide(elboOnly, 0, 123, 0.15, 'both');
  assert.equal(r.rule, 'elbo');
  assert.equal(r.verdict, 'out-of-distribution');
  const all = decide(elboOnly, 0, 123, 0.15, 'all', 0.9);
  assert.equal(all.rule, 'elbo');
  assert.deepEqual(all.thresholds, { elbo: 0.15 });
});

test('calibration files: written atomically, read back sorted, broken ones named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cal-'));
  const path = join(dir, 'calibration.json');
  writeCalibration(path, { ...cal, scores: { elbo: [3, 1, 2], msp: [0.5] } });
  assert.deepEqual(readdirSync(dir), ['calibration.json']);
  assert.deepEqual(readCalibration(path).scores.elbo, [1, 2, 3]);
  writeFileSync(path, '{"version": 1, "scores": {"elbo": []}}');
  assert.throws(() => readCalibration(path), (e: Error) => e instanceof CalibrationError && e.message.includes(path));
  writeFileSync(path, '{not json');
  assert.throws(() => readCalibration(path), /cannot read calibration/);
});
