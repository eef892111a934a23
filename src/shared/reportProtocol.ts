/**
 * Folder report webview protocol (viewType `oodLens.report`): the data the extension sends and the messages
 * each side posts. Used by src/webviews/reportPanel.ts (host) and src/webviews/ui/report.ts (webview).
 * No `vscode` and no Node imports: this file is bundled into the browser script too.
 */

export type Verdict = 'in-distribution' | 'out-of-distribution' | 'uncalibrated' | 'error';
export const VERDICTS: readonly Verdict[] = ['out-of-distribution', 'in-distribution', 'uncalibrated', 'error'];

/** Which folder a row comes from: the scored folder, or the reference in-distribution folder. */
export type RowSet = 'target' | 'reference';

export interface ReportRow {
  id: number;
  set: RowSet;
  /** Path relative to its folder ('/'-separated): shown in the table and used for the thumbnail URL. */
  rel: string;
  prediction: number | null;
  label: string | null;
  msp: number | null;
  entropy: number | null;
  energy: number | null;
  elbo: number | null;
  /** KNN distance and complexity-corrected S, for pairs with those tests (older reports: absent). */
  knn?: number | null;
  complexity?: number | null;
  pValue: number | null;
  verdict: Verdict;
  /** The tests that fired (engine test names: elbo, complexity, knn, mahalanobis, confidence, energy). */
  firedBy?: string[];
  error: string | null;
}

/** The per-image scores the report can draw as a barcode, a histogram and a column. */
export type ScoreKey = 'msp' | 'elbo' | 'knn' | 'complexity' | 'energy';

export interface DetectorMetricsView {
  id: string;
  name: string;
  auroc: number;
  auprIn: number;
  auprOut: number;
  fprAt95Tpr: number;
  roc: { fpr: number; tpr: number }[];
}

export interface Comparison {
  /** Reference (in-distribution) images and scored-folder images with scores. */
  inCount: number;
  oodCount: number;
  detectors: DetectorMetricsView[];
  /** Fraction of the reference set flagged OOD by the verdict, and of the scored folder. */
  falseAlarmRate: number;
  detectionRate: number;
}

export interface ReportPairInfo {
  name: string;
  backend: string;
  provider: string;
  alpha: number;
  rule: string;
  calibrated: boolean;
  labels: string[];
  /** Each test's share of α under the pair's rule (older reports: absent). */
  shares?: Record<string, number>;
}

export interface ReportData {
  id: string;
  title: string;
  createdAt: string;
  folder: string;
  referenceFolder: string | null;
  /** The folders as shown (relative to the workspace where inside it); the full paths when absent. */
  folderLabel?: string;
  referenceLabel?: string | null;
  pair: ReportPairInfo;
  /** Images found (both folders) and images scored before the run ended. */
  total: number;
  done: number;
  cancelled: boolean;
  seconds: number;
  /** Results served from the score cache. */
  cached: number;
  rows: ReportRow[];
  comparison: Comparison | null;
}

export type SortColumn = 'rel' | 'set' | 'label' | ScoreKey | 'pValue' | 'verdict';

export interface SortState {
  column: SortColumn;
  descending: boolean;
}

export interface FilterState {
  /** Case-insensitive substring of the path or the predicted label. */
  text: string;
  verdict: Verdict | 'all';
  set: RowSet | 'all';
}

/** What the webview keeps with vscode.setState (restored after reload by the panel serializer). */
export interface ReportViewState {
  reportId: string;
  sort?: SortState;
  filter?: FilterState;
  scrollTop?: number;
  colorBy?: 'verdict' | 'set';
}

export type HostToReport =
  | { type: 'load'; data: ReportData; thumbBase: { target: string; reference: string | null } }
  | { type: 'missing'; message: string }
  | { type: 'exported'; format: 'csv' | 'json'; path: string };

export type ReportToHost =
  | { type: 'ready' }
  | { type: 'open'; id: number }
  | { type: 'export'; format: 'csv' | 'json' };

export function isReportToHost(m: unknown): m is ReportToHost {
  if (!m || typeof m !== 'object') return false;
  const x = m as Record<string, unknown>;
  switch (x.type) {
    case 'ready':
      return true;
    case 'open':
      return typeof x.id === 'number' && Number.isInteger(x.id);
    case 'export':
      return x.format === 'csv' || x.format === 'json';
    default:
      return false;
  }
}
