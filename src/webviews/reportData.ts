/**
 * Builds the folder report from engine results (extension side, no `vscode` import): rows for the webview,
 * the reference comparison (AUROC, AUPR-in/out, FPR@95%TPR and ROC per detector) and the CSV/JSON exports
 * with the CLI's columns.
 */
import { relative, sep } from 'node:path';
import { csvCell } from '../inference/io/safeText';
import { compareSets } from '../inference/detectors/resultScores';
import type { ImageResult, PairInfo } from '../inference/engine';
import { csvText, jsonRecord, RESULT_COLUMNS, resultRecord } from '../inference/datasets/output';
import type { Comparison, ReportData, ReportRow, RowSet } from '../shared/reportProtocol';

/** What a scan produced; kept in workspace storage so that the report survives a reload. */
export interface StoredReport {
  version: 1;
  id: string;
  createdAt: string;
  folder: string;
  referenceFolder: string | null;
  pair: PairInfo;
  total: number;
  cancelled: boolean;
  seconds: number;
  cached: number;
  /** Results without details, in scan order; `sets[i]` says which folder result i came from. */
  results: Omit<ImageResult, 'details'>[];
  sets: RowSet[];
}

export function relativePath(root: string, path: string): string {
  const rel = relative(root, path);
  return (rel && !rel.startsWith('..') ? rel : path).split(sep).join('/');
}

export function compare(reference: ImageResult[], scored: ImageResult[]): Comparison | null {
  const c = compareSets(reference, scored, { roc: 200 });
  if (!c.detectors.length) return null;
  return { ...c, detectors: c.detectors.map((d) => ({ id: d.id, name: d.name, ...d.metrics, roc: d.roc ?? [] })) };
}

export function buildReportData(stored: StoredReport): ReportData {
  const rows: ReportRow[] = stored.results.map((r, id) => {
    const set = stored.sets[id] ?? 'target';
    return {
      id,
      set,
      rel: relativePath(set === 'reference' && stored.referenceFolder ? stored.referenceFolder : stored.folder, r.path),
      prediction: r.prediction,
      label: r.label,
      msp: r.msp,
      entropy: r.entropy,
      energy: r.energy,
      elbo: r.elbo,
      knn: r.knnDistance ?? null,
      complexity: r.complexityScore,
      pValue: r.pValue,
      verdict: r.verdict,
      firedBy: r.firedBy,
      error: r.error,
    };
  });
  let comparison: Comparison | null = null;
  if (stored.referenceFolder) {
    const ref = stored.results.filter((_, i) => stored.sets[i] === 'reference') as ImageResult[];
    const tgt = stored.results.filter((_, i) => stored.sets[i] !== 'reference') as ImageResult[];
    if (ref.length && tgt.length) comparison = compare(ref, tgt);
  }
  const p = stored.pair;
  const name = stored.folder.split(/[\\/]/).filter(Boolean).pop() ?? stored.folder;
  return {
    id: stored.id,
    title: `OOD report: ${name} — pair ${stored.pair.name}`,
    createdAt: stored.createdAt,
    folder: stored.folder,
    referenceFolder: stored.referenceFolder,
    pair: { name: p.name, backend: p.backend, provider: p.provider, alpha: p.alpha, rule: p.rule, calibrated: p.calibrated, labels: p.labels, ...(p.shares ? { shares: { ...p.shares } as Record<string, number> } : {}) },
    total: stored.total,
    done: stored.results.length,
    cancelled: stored.cancelled,
    seconds: stored.seconds,
    cached: stored.cached,
    rows,
    comparison,
  };
}

/** The CLI's CSV (RESULT_COLUMNS); with a reference folder a trailing `set` column says which folder. */
export function exportCsv(stored: StoredReport): string {
  const withSet = !!stored.referenceFolder;
  const header = withSet ? [...RESULT_COLUMNS, 'set'] : [...RESULT_COLUMNS];
  const rows = stored.results.map((r, i) => {
    const rec = resultRecord(r as ImageResult);
    const values: (string | number | null)[] = RESULT_COLUMNS.map((c) => csvCell(rec[c]));
    if (withSet) values.push(stored.sets[i]);
    return values;
  });
  return csvText([header, ...rows]);
}

/** The CLI's JSON document ({pair, provider, results, summary}); a reference folder adds `reference` and `comparison`. */
export function exportJson(stored: StoredReport): string {
  const target = stored.results.filter((_, i) => stored.sets[i] !== 'reference');
  const reference = stored.results.filter((_, i) => stored.sets[i] === 'reference');
  const count = (rs: typeof target, v: string) => rs.filter((r) => r.verdict === v).length;
  const summary = {
    count: target.length,
    scored: target.length - count(target, 'error'),
    errors: count(target, 'error'),
    inDistribution: count(target, 'in-distribution'),
    outOfDistribution: count(target, 'out-of-distribution'),
    uncalibrated: count(target, 'uncalibrated'),
    alpha: stored.pair.alpha,
    rule: stored.pair.rule,
    seconds: stored.seconds,
    imagesPerSecond: stored.seconds > 0 ? stored.results.length / stored.seconds : 0,
    total: stored.total,
    cancelled: stored.cancelled,
  };
  const doc: Record<string, unknown> = {
    pair: stored.pair,
    provider: stored.pair.provider,
    folder: stored.folder,
    results: target.map((r) => jsonRecord(r as ImageResult)),
    summary,
  };
  if (stored.referenceFolder) {
    doc.referenceFolder = stored.referenceFolder;
    doc.reference = reference.map((r) => jsonRecord(r as ImageResult));
    const cmp = buildReportData(stored).comparison;
    if (cmp) doc.comparison = { ...cmp, detectors: cmp.detectors.map(({ roc: _roc, ...m }) => m) };
  }
  return JSON.stringify(doc, null, 2) + '\n';
}
