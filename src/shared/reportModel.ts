/**
 * View model of the folder report: filtering, sorting, barcode ordering, histogram bins, counts and the
 * virtual-scroll window. Pure functions, bundled into the webview and unit-tested in Node.
 */
import type { FilterState, ReportData, ReportRow, RowSet, ScoreKey, SortState, Verdict } from './reportProtocol';
import { VERDICTS } from './reportProtocol';

export function filterRows(rows: readonly ReportRow[], filter: FilterState): ReportRow[] {
  const text = filter.text.trim().toLowerCase();
  return rows.filter(
    (r) =>
      (filter.verdict === 'all' || r.verdict === filter.verdict) &&
      (filter.set === 'all' || r.set === filter.set) &&
      (!text || r.rel.toLowerCase().includes(text) || (r.label ?? '').toLowerCase() === text || (r.error ?? '').toLowerCase().includes(text)),
  );
}

const VERDICT_RANK: Record<Verdict, number> = { 'out-of-distribution': 0, uncalibrated: 1, 'in-distribution': 2, error: 3 };
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/** Sorted copy; missing values (errors) always last whatever the direction; ties keep scan order. */
export function sortRows(rows: readonly ReportRow[], sort: SortState): ReportRow[] {
  const dir = sort.descending ? -1 : 1;
  const key = (r: ReportRow): number | string | null => {
    switch (sort.column) {
      case 'rel':
        return r.rel;
      case 'set':
        return r.set;
      case 'label':
        return r.label;
      case 'verdict':
        return VERDICT_RANK[r.verdict];
      default:
        return r[sort.column] ?? null;
    }
  };
  const keyed = rows.map((r) => ({ r, k: key(r) }));
  keyed.sort((a, b) => {
    if (a.k === null || b.k === null) return a.k === b.k ? a.r.id - b.r.id : a.k === null ? 1 : -1;
    const c = typeof a.k === 'number' && typeof b.k === 'number' ? a.k - b.k : collator.compare(String(a.k), String(b.k));
    return c !== 0 ? dir * c : a.r.id - b.r.id;
  });
  return keyed.map((x) => x.r);
}

export interface BarcodeLine {
  id: number;
  value: number;
  verdict: Verdict;
  set: RowSet;
}

/**
 * The barcode: every scored image as one line, ordered by a score ascending (lowest MSP / lowest ELBO —
 * the most suspicious — on the left). Images without the score are left out.
 */
export function barcodeOrder(rows: readonly ReportRow[], key: ScoreKey): BarcodeLine[] {
  const out: BarcodeLine[] = [];
  for (const r of rows) {
    const v = r[key] ?? null;
    if (v !== null && Number.isFinite(v)) out.push({ id: r.id, value: v, verdict: r.verdict, set: r.set });
  }
  out.sort((a, b) => a.value - b.value || a.id - b.id);
  return out;
}

export interface Histogram {
  /** bins + 1 edges, ascending. */
  edges: number[];
  /** One count array per group, each with `bins` entries. */
  counts: Record<string, number[]>;
}

/**
 * Equal-width bins over [min, max] of the finite values (or `range`); the last bin includes its right edge.
 * Values are grouped by `group(row)` (verdict or set) so the chart can stack them.
 */
/**
 * A display range that is not stretched by a few extreme values: [q-quantile, max] (ELBO has a long lower
 * tail: a handful of very unlikely images would squeeze everything else into one or two bins).
 */
export function robustRange(values: readonly (number | null)[], lowQuantile = 0.02): [number, number] | undefined {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const lo = v[Math.min(v.length - 1, Math.floor(lowQuantile * v.length))];
  return [lo, v[v.length - 1]];
}

/** With `clamp`, values outside `range` are counted in the first or last bin instead of being dropped. */
export function histogram(rows: readonly ReportRow[], key: ScoreKey, bins: number, group: (r: ReportRow) => string, range?: [number, number], clamp = false): Histogram {
  let lo = range?.[0] ?? Infinity;
  let hi = range?.[1] ?? -Infinity;
  if (!range) {
    for (const r of rows) {
      const v = r[key] ?? null;
      if (v === null || !Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (lo === Infinity) return { edges: [], counts: {} };
  if (hi === lo) {
    lo -= 0.5;
    hi += 0.5;
  }
  const width = (hi - lo) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, i) => lo + i * width);
  const counts: Record<string, number[]> = {};
  for (const r of rows) {
    let v = r[key] ?? null;
    if (v === null || !Number.isFinite(v)) continue;
    if (v < lo || v > hi) {
      if (!clamp) continue;
      v = Math.min(hi, Math.max(lo, v));
    }
    const g = group(r);
    const arr = (counts[g] ??= new Array(bins).fill(0));
    // The tiny epsilon keeps values on an edge (0.3 with width 0.1) in the bin that starts there.
    arr[Math.min(bins - 1, Math.floor((v - lo) / width + 1e-9))]++;
  }
  return { edges, counts };
}

export function verdictCounts(rows: readonly ReportRow[]): Record<Verdict, number> {
  const c = Object.fromEntries(VERDICTS.map((v) => [v, 0])) as Record<Verdict, number>;
  for (const r of rows) c[r.verdict]++;
  return c;
}

/** Rows [first, last) to put in the DOM for a scroll position (with `overscan` rows either side). */
export function visibleWindow(scrollTop: number, viewportHeight: number, rowHeight: number, total: number, overscan = 8): { first: number; last: number } {
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(total, Math.ceil((scrollTop + viewportHeight) / rowHeight) + overscan);
  return { first, last: Math.max(first, last) };
}

/** Thumbnail URL of a row: the folder's webview URI + the row's path, each segment percent-encoded. */
export function thumbnailUrl(base: string, rel: string): string {
  return `${base.replace(/\/$/, '')}/${rel.split('/').map(encodeURIComponent).join('/')}`;
}

export function formatNumber(v: number | null, digits = 3): string {
  if (v === null || !Number.isFinite(v)) return '–';
  if (v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 10 ** -digits)) return v.toExponential(2);
  return v.toFixed(digits);
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

/** How the report shows one score: its column title, the barcode's caption, the axis and the digits shown. */
export interface ScoreView {
  key: ScoreKey;
  /** The engine test it belongs to (its share of α is under this name). */
  test: string;
  column: string;
  barcode: string;
  axis: string;
  digits: number;
  /** Which end is out-of-distribution. */
  oodWhen: 'low' | 'high';
}

const FULL = 'full-height lines: out-of-distribution (by verdict) or the scored folder (by folder)';
export const SCORE_VIEWS: Record<ScoreKey, ScoreView> = {
  msp: { key: 'msp', test: 'confidence', column: 'MSP', barcode: `Sorted by MSP (max softmax probability, the confidence test) — lowest left; ${FULL}`, axis: 'MSP', digits: 3, oodWhen: 'low' },
  elbo: { key: 'elbo', test: 'elbo', column: 'ELBO', barcode: `Sorted by ELBO — least likely under the VAE left; ${FULL}`, axis: 'ELBO (nats)', digits: 1, oodWhen: 'low' },
  knn: { key: 'knn', test: 'knn', column: 'KNN dist.', barcode: `Sorted by KNN distance (the KNN test: how far the classifier's features are from the training images') — farthest right; ${FULL}`, axis: 'KNN distance', digits: 3, oodWhen: 'high' },
  complexity: { key: 'complexity', test: 'complexity', column: 'S (bits)', barcode: `Sorted by complexity-corrected S — most surprising right; ${FULL}`, axis: 'S(x), bits', digits: 1, oodWhen: 'high' },
  energy: { key: 'energy', test: 'energy', column: 'Energy', barcode: `Sorted by the energy of the logits (the energy test) — highest right; ${FULL}`, axis: 'energy', digits: 2, oodWhen: 'high' },
};

/**
 * The scores the report shows: the MSP always (the classifier's own confidence), and every other score whose
 * test can decide a verdict (a share of α above 0; every score with values when the report predates shares)
 * and that some image has. A classifier-only pair so gets no ELBO, and gets its KNN test.
 */
export function reportScoreKeys(data: Pick<ReportData, 'rows' | 'pair'>): ScoreKey[] {
  const shares = data.pair.shares;
  const has = (k: ScoreKey) => data.rows.some((r) => r[k] !== null && r[k] !== undefined && Number.isFinite(r[k] as number));
  const keys: ScoreKey[] = ['msp'];
  for (const k of ['elbo', 'complexity', 'knn', 'energy'] as const) {
    const deciding = shares ? (shares[SCORE_VIEWS[k].test] ?? 0) > 0 : k === 'elbo';
    if (deciding && has(k)) keys.push(k);
  }
  return keys;
}

const TEST_SHORT: Record<string, string> = { elbo: 'ELBO', complexity: 'S', knn: 'KNN', mahalanobis: 'Mahalanobis', layers: 'layers', fisher: 'Fisher', confidence: 'confidence', energy: 'energy' };

/** "Out-of-distribution (KNN)": the verdict with the tests that fired. */
export function verdictWithTests(verdictText: string, row: Pick<ReportRow, 'verdict' | 'firedBy'>): string {
  if (row.verdict !== 'out-of-distribution' || !row.firedBy?.length) return verdictText;
  return `${verdictText} (${row.firedBy.map((t) => TEST_SHORT[t] ?? t).join(', ')})`;
}
