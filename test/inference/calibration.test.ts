import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Calibration, CalibrationError, decide, lowerTailPValue, readCalibration, upperTailPValue, writeCalibration } from '../../src/inference/calibration';

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

test('a calibration without complexity scores falls back to the ELBO rule', () => {
  const elboOnly: Calibration = { ...cal, scores: { elbo: cal.scores.elbo, msp: [1] } };
  const r = decide(elboOnly, 0, 123, 0.15, 'both');
  assert.equal(r.rule, 'elbo');
  assert.equal(r.verdict, 'out-of-distribution');
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
