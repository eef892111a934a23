import assert from 'node:assert/strict';
import { test } from 'node:test';
import { auroc, averagePrecision, detectionMetrics, fprAtTpr, rocCurve } from '../../../src/inference/detectors/metrics';

test('AUROC: perfect, reversed, ties and a hand-counted case', () => {
  assert.equal(auroc([0, 1], [2, 3]), 1);
  assert.equal(auroc([2, 3], [0, 1]), 0);
  assert.equal(auroc([1, 1], [1, 1]), 0.5);
  // pairs (ood > in): 3>1 ✓, 3>2 ✓, 1.5>1 ✓, 1.5>2 ✗ → 3/4
  assert.equal(auroc([1, 2], [3, 1.5]), 0.75);
});

test('average precision by hand', () => {
  // ranking: 0.9(+) 0.8(−) 0.7(+) → AP = ½·1 + ½·(2/3)
  assert.ok(Math.abs(averagePrecision([0.9, 0.7], [0.8]) - (0.5 + 1 / 3)) < 1e-12);
});

test('FPR at 95% TPR: OOD accepted by the threshold that keeps 95% of in-distribution', () => {
  const inScores = Array.from({ length: 100 }, (_, i) => i); // threshold 94
  const ood = [10, 50, 94, 95, 200];
  assert.equal(fprAtTpr(inScores, ood), 3 / 5);
  const m = detectionMetrics(inScores, ood);
  assert.ok(m.auroc > 0 && m.auroc < 1);
});

test('ROC curve runs from (0,0) to (1,1)', () => {
  const c = rocCurve([1, 2, 3], [2, 4, 5]);
  assert.deepEqual(c[0], { fpr: 0, tpr: 0 });
  assert.deepEqual(c[c.length - 1], { fpr: 1, tpr: 1 });
});
