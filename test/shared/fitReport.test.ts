/** The Create Pair result panel's model: firing thresholds that agree with decide(), histograms, messages. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Calibration, decide } from '../../src/inference/pair/calibration';
import { calibrationNeeded, cannotFireWarning, falseAlarmSentence, firingThreshold, isFitReport, isFitResultToHost, percent, scoreHistogram } from '../../src/shared/fitReport';

function seeded(n: number, seed = 7): number[] {
  let a = seed;
  return Array.from({ length: n }, () => {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    return a / 2 ** 32;
  });
}

describe('firing thresholds', () => {
  test('lower tail: decide() flags exactly the MSPs below the threshold (classifier-only pair, all of α)', () => {
    for (const n of [99, 360, 1800]) {
      const msp = seeded(n).sort((a, b) => a - b);
      const cal: Calibration = { version: 1, pair: 't', source: 't', count: n, createdAt: '', scores: { elbo: [], msp } };
      const t = firingThreshold(msp, 0.01, 'low')!;
      for (const x of [...msp, ...seeded(500, n)]) {
        const flagged = decide(cal, null, null, 0.01, 'all', x).verdict === 'out-of-distribution';
        assert.equal(flagged, x < t, `n=${n} x=${x} threshold=${t}`);
      }
    }
  });

  test('upper tail mirrors it; too few values for t gives null', () => {
    const s = seeded(199).sort((a, b) => a - b);
    // p = (1 + #{cal ≥ x}) / 200 < 0.05 ⇔ #{cal ≥ x} ≤ 8 ⇔ x > s[190]
    assert.equal(firingThreshold(s, 0.05, 'high'), s[190]);
    assert.equal(firingThreshold(s, 0.05, 'low'), s[8]);
    assert.equal(firingThreshold(seeded(50), 0.01, 'low'), null);
  });
});

describe('too few calibration images', () => {
  test('calibrationNeeded is the first n at which the threshold exists', () => {
    for (const [share, alpha] of [[1, 0.01], [0.25, 0.01], [0.5, 0.01], [0.3, 0.01], [0.45, 0.05], [0.1, 0.01]]) {
      const n = calibrationNeeded(share, alpha);
      assert.notEqual(firingThreshold(seeded(n).sort((a, b) => a - b), share * alpha, 'low'), null, `share ${share}: ${n}`);
      assert.equal(firingThreshold(seeded(n - 1).sort((a, b) => a - b), share * alpha, 'low'), null, `share ${share}: ${n - 1}`);
    }
    assert.equal(calibrationNeeded(0.25, 0.01), 400);
  });

  test('the warning appears only when no test of the rule can fire', () => {
    const h = (share: number, threshold: number | null) => ({ ...scoreHistogram('msp', seeded(50), null, share, 0.01)!, share, threshold });
    const parts = { fit: 180, calibration: 180, check: 40 };
    assert.match(cannotFireWarning({ alpha: 0.01, parts, histograms: [h(0.25, null), h(0.5, null), h(0, null)] })!, /^With 180 calibration images no test .* at least 200 calibration images/);
    assert.equal(cannotFireWarning({ alpha: 0.01, parts, histograms: [h(0.25, null), h(0.5, 0.3)] }), null);
    assert.equal(cannotFireWarning({ alpha: 0.01, parts, histograms: [] }), null);
  });
});

describe('histograms', () => {
  test('both parts binned over their joint range; counts add up; threshold from the calibration part', () => {
    const cal = seeded(1000);
    const check = seeded(100, 3).map((x) => x * 1.5);
    const h = scoreHistogram('msp', cal, check, 1, 0.01)!;
    assert.equal(h.calibration.reduce((a, b) => a + b, 0), 1000);
    assert.equal(h.check!.reduce((a, b) => a + b, 0), 100);
    assert.equal(h.bins, 20); // Rice rule: 2 × ∛1000
    assert.ok(h.min <= Math.min(...cal, ...check));
    assert.ok(Math.abs(h.min + h.bins * h.binWidth - Math.max(...cal, ...check)) < 1e-9);
    assert.equal(h.threshold, firingThreshold([...cal].sort((a, b) => a - b), 0.01, 'low'));
    assert.equal(h.label, 'Classifier confidence (MSP)');
    assert.equal(scoreHistogram('complexity', cal, null, 0.45, 0.01)!.oodWhen, 'high');
    assert.equal(scoreHistogram('elbo', [], null, 0.45, 0.01), null);
    // A constant score still gets a finite range.
    const flat = scoreHistogram('msp', [1, 1, 1], null, 1, 0.01)!;
    assert.ok(flat.binWidth > 0);
    assert.equal(flat.calibration.reduce((a, b) => a + b, 0), 3);
  });
});

describe('messages', () => {
  test('false-alarm sentence and percentages', () => {
    assert.equal(falseAlarmSentence({ falseAlarms: 2, checkImages: 200, falseAlarmRate: 0.01, alpha: 0.01 }), 'Held-out false alarms: 2 of 200 in-distribution images (1.00%) at α = 0.01');
    assert.equal(percent(0.1234), '12.3%');
  });

  test('only the known webview messages, with nothing extra, reach the host', () => {
    assert.ok(isFitResultToHost({ type: 'ready' }));
    assert.ok(isFitResultToHost({ type: 'openManifest' }));
    assert.ok(!isFitResultToHost({ type: 'openManifest', path: '/etc/passwd' }));
    assert.ok(!isFitResultToHost({ type: 'run' }));
    assert.ok(!isFitResultToHost(null));
    assert.ok(!isFitReport({ name: 'x' }));
  });
});
