/** `ood-lens eval`: how well each score separates an in-distribution set from an out-of-distribution one. */
import { parseArgs } from 'node:util';
import { basename } from 'node:path';
import { compareSets, type Detector } from '../inference/detectors/resultScores';
import { OodEngine, type ImageResult } from '../inference/engine';
import { readIdxFile } from '../inference/io/idx';
import { labelsFileBeside } from '../inference/io/idxLabels';
import { type DetectionMetrics, detectionMetrics } from '../inference/detectors/metrics';
import { ruleShares, TEST_LABELS, TEST_NAMES, type TestName } from '../shared/rules';
import { collect } from './collect';
import { COMMON_OPTIONS, engineOptions, UsageError } from './options';

export interface EvalReport {
  pair: string;
  alpha: number;
  rule: string;
  inCount: number;
  oodCount: number;
  metrics: { detector: Detector['id']; name: string; metrics: DetectionMetrics }[];
  falseAlarmRate: number;
  detectionRate: number;
  /**
   * Each calibrated test on its own: its share of α under the rule (0 = reported, no vote), the fraction of
   * each set its p-value puts below α by itself, and the AUROC of its p-value.
   */
  tests: { test: TestName; name: string; share: number; falseAlarmRate: number; detectionRate: number; aurocPValue: number; notUsedBecause?: string; shareCutBecause?: string }[];
  /** Classifier accuracy on the in-distribution set, when its labels sit beside it (IDX); null otherwise. */
  accuracy: { correct: number; labelled: number; labels: string[] } | null;
}

/**
 * Accuracy of the in-distribution results whose images come from an IDX file with labels beside it
 * (`…-labels-idx1-ubyte` next to `…-images-idx3-ubyte`); null when none has labels.
 */
export function accuracyFromLabels(results: ImageResult[]): EvalReport['accuracy'] {
  const cache = new Map<string, Uint8Array | null>();
  let correct = 0;
  let labelled = 0;
  const files = new Set<string>();
  for (const r of results) {
    const hash = r.path.lastIndexOf('#');
    if (hash < 0 || r.prediction === null) continue;
    const file = r.path.slice(0, hash);
    if (!cache.has(file)) {
      const labelsPath = labelsFileBeside(file);
      cache.set(file, labelsPath ? readIdxFile(labelsPath).data : null);
      if (labelsPath) files.add(basename(labelsPath));
    }
    const labels = cache.get(file);
    const index = Number(r.path.slice(hash + 1));
    if (!labels || !(index < labels.length)) continue;
    labelled++;
    if (labels[index] === r.prediction) correct++;
  }
  return labelled ? { correct, labelled, labels: [...files] } : null;
}

function testRows(engine: OodEngine, inResults: ImageResult[], oodResults: ImageResult[]): EvalReport['tests'] {
  const shares = engine.info.shares ?? ruleShares(engine.rule, undefined);
  const ok = (rs: ImageResult[]) => rs.filter((r) => r.verdict !== 'error');
  const okIn = ok(inResults);
  const okOod = ok(oodResults);
  return TEST_NAMES.flatMap((test) => {
    const pIn = okIn.map((r) => r.pValues[test]).filter((p): p is number => typeof p === 'number');
    const pOod = okOod.map((r) => r.pValues[test]).filter((p): p is number => typeof p === 'number');
    if (!pIn.length || !pOod.length) return [];
    const below = (ps: number[]) => ps.filter((p) => p < engine.alpha).length / ps.length;
    const why = engine.info.notUsed?.[test];
    const cut = engine.info.shareCut?.[test];
    return [{ test, name: TEST_LABELS[test].name, share: shares[test] ?? 0, falseAlarmRate: below(pIn), detectionRate: below(pOod), aurocPValue: detectionMetrics(pIn.map((p) => -p), pOod.map((p) => -p)).auroc, ...(why ? { notUsedBecause: why } : {}), ...(cut ? { shareCutBecause: cut } : {}) }];
  });
}

export function evaluate(engine: OodEngine, inResults: ImageResult[], oodResults: ImageResult[]): EvalReport {
  const c = compareSets(inResults, oodResults);
  return {
    pair: engine.info.name,
    alpha: engine.alpha,
    rule: engine.rule,
    inCount: c.inCount,
    oodCount: c.oodCount,
    metrics: c.detectors.map((d) => ({ detector: d.id, name: d.name, metrics: d.metrics })),
    falseAlarmRate: c.falseAlarmRate,
    detectionRate: c.detectionRate,
    tests: testRows(engine, inResults, oodResults),
    accuracy: accuracyFromLabels(inResults),
  };
}

export function formatEvalTable(report: EvalReport): string {
  const lines = [
    `pair: ${report.pair} · in: ${report.inCount} images · ood: ${report.oodCount} images`,
    '',
    '| score | AUROC | AUPR-in | AUPR-out | FPR@95%TPR |',
    '|---|---|---|---|---|',
    ...report.metrics.map((m) => `| ${m.name} | ${m.metrics.auroc.toFixed(4)} | ${m.metrics.auprIn.toFixed(4)} | ${m.metrics.auprOut.toFixed(4)} | ${m.metrics.fprAt95Tpr.toFixed(4)} |`),
    '',
    ...(report.tests.length
      ? [
          `each test alone at α = ${report.alpha} (share: its part of α in the verdict):`,
          '',
          '| test | share | AUROC (p-value) | false alarms | OOD detected |',
          '|---|---|---|---|---|',
          ...report.tests.map((t) => `| ${t.name} | ${t.share} | ${t.aurocPValue.toFixed(4)} | ${(100 * t.falseAlarmRate).toFixed(2)}% | ${(100 * t.detectionRate).toFixed(2)}% |`),
          '',
          ...report.tests.filter((t) => t.notUsedBecause).map((t) => `${t.name}: not used by this pair's verdict (fit's choice, from in-distribution data only): ${t.notUsedBecause}`),
          ...report.tests.filter((t) => t.shareCutBecause).map((t) => `${t.name}: a smaller share (fit's choice, from in-distribution data only): ${t.shareCutBecause}`),
          ...(report.tests.some((t) => t.notUsedBecause || t.shareCutBecause) ? [''] : []),
        ]
      : []),
    `verdict (rule ${report.rule}, α = ${report.alpha}): false alarms on the in-distribution set ${(100 * report.falseAlarmRate).toFixed(2)}% · OOD detected ${(100 * report.detectionRate).toFixed(2)}%`,
    ...(report.accuracy ? [`classifier accuracy on the in-distribution set: ${((100 * report.accuracy.correct) / report.accuracy.labelled).toFixed(2)}% (${report.accuracy.correct} of ${report.accuracy.labelled} labelled images; labels from ${report.accuracy.labels.join(', ')})`] : []),
  ];
  return lines.join('\n') + '\n';
}

export async function runEval(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...COMMON_OPTIONS, in: { type: 'string', multiple: true }, ood: { type: 'string', multiple: true }, limit: { type: 'string' }, format: { type: 'string' } },
  });
  if (!values.in?.length || !values.ood?.length) throw new UsageError('eval needs --in <folder|idx> and --ood <folder|idx>');
  const limit = values.limit ? Number(values.limit) : undefined;
  const engine = await OodEngine.create(engineOptions(values));
  try {
    if (!engine.info.calibrated) process.stderr.write('note: the pair is not calibrated; p-value rows are missing (run ood-lens calibrate)\n');
    const inResults = await collect(engine, values.in, { limit, progress: true });
    const oodResults = await collect(engine, values.ood, { limit, progress: true });
    // Metrics over an empty set are meaningless: refuse (exit 1) with why the images failed, never print 0 images and succeed.
    for (const [flag, set, results] of [['--in', values.in, inResults], ['--ood', values.ood, oodResults]] as const) {
      const scored = results.filter((r) => r.verdict !== 'error').length;
      if (scored === 0) {
        const reasons = [...new Set(results.map((r) => r.error).filter((e): e is string => !!e))].slice(0, 3);
        throw new Error(`${flag} ${set.join(' ')}: ${results.length ? `none of the ${results.length} images could be scored (${reasons.join('; ')})` : 'no images found'}; nothing to evaluate`);
      }
    }
    const report = evaluate(engine, inResults, oodResults);
    process.stdout.write(values.format === 'json' ? JSON.stringify(report, null, 2) + '\n' : formatEvalTable(report));
    const failed = [...inResults, ...oodResults].filter((r) => r.verdict === 'error').length;
    if (failed) process.stderr.write(`${failed} images could not be scored and are left out of the figures\n`);
    return failed ? 2 : 0;
  } finally {
    await engine.dispose();
  }
}
