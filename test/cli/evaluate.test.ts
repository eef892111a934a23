/** `ood-lens eval`'s table: a test fit chose not to use is named with fit's reason under the per-test table. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type EvalReport, formatEvalTable } from '../../src/cli/evaluate';

test('eval says why a test is not used by the verdict, and says nothing for the tests that are', () => {
  const metrics = { auroc: 0.9, auprIn: 0.9, auprOut: 0.9, fprAt95Tpr: 0.1 };
  const report: EvalReport = {
    pair: 'mine',
    alpha: 0.01,
    rule: 'pair',
    inCount: 10,
    oodCount: 10,
    metrics: [{ detector: 'elbo', name: 'ELBO (VAE)', metrics }],
    falseAlarmRate: 0.01,
    detectionRate: 0.9,
    tests: [
      { test: 'elbo', name: 'ELBO', share: 0.6, falseAlarmRate: 0.01, detectionRate: 0.9, aurocPValue: 0.99 },
      { test: 'mahalanobis', name: 'Mahalanobis feature distance', share: 0, falseAlarmRate: 0.01, detectionRate: 0.1, aurocPValue: 0.3, notUsedBecause: 'inverted on the synthetic probes: AUROC 0.210 (it finds them more in-distribution than the real images)' },
    ],
    accuracy: null,
  };
  const text = formatEvalTable(report);
  assert.match(text, /\| Mahalanobis feature distance \| 0 \| 0\.3000 \|.*\n\nMahalanobis feature distance: not used by this pair's verdict \(fit's choice, from in-distribution data only\): inverted on the synthetic probes: AUROC 0\.210/);
  assert.doesNotMatch(text, /ELBO: not used/);
  assert.doesNotMatch(formatEvalTable({ ...report, tests: [report.tests[0]] }), /not used/);
  // A test whose share fit cut for flagging benign-shift probes says so, with fit's reason.
  const cut = 'its share is cut to 50% of what the far-OOD probes gave it (0.3), before the shares are rescaled: it flags 11.0% of benign-shift probes (most: elastic 40.0%) at 1% false alarms, where 1.6% is allowed';
  const withCut = formatEvalTable({ ...report, tests: [{ ...report.tests[0], shareCutBecause: cut }] });
  assert.ok(withCut.includes(`\n\nELBO: a smaller share (fit's choice, from in-distribution data only): ${cut}\n\nverdict`), withCut);
});
