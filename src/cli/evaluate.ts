/** `ood-lens eval`: how well each score separates an in-distribution set from an out-of-distribution one. */
import { parseArgs } from 'node:util';
import { compareSets, type Detector } from '../inference/detectors';
import { OodEngine, type ImageResult } from '../inference/engine';
import type { DetectionMetrics } from '../inference/metrics';
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
    `verdict (rule ${report.rule}, α = ${report.alpha}): false alarms on the in-distribution set ${(100 * report.falseAlarmRate).toFixed(2)}% · OOD detected ${(100 * report.detectionRate).toFixed(2)}%`,
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
    const report = evaluate(engine, inResults, oodResults);
    process.stdout.write(values.format === 'json' ? JSON.stringify(report, null, 2) + '\n' : formatEvalTable(report));
    return 0;
  } finally {
    await engine.dispose();
  }
}
