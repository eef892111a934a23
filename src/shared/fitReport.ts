/**
 * What the Create Pair result panel shows: the outcome of `fit` (held-out false alarms, accuracy, the split,
 * what fit read and decided) and one histogram per calibrated score, with the score beyond which that test
 * flags an image. Pure (no Node, no vscode): built in the engine worker, drawn by the webview.
 */

/** One score's distribution: calibration part, and the held-out check part when fit reports it. */
export interface ScoreHistogram {
  /** Calibration key: "msp", "elbo", "complexity", or a detector name. */
  score: string;
  /** Human name, e.g. "Classifier confidence (MSP)". */
  label: string;
  /** Which end is out-of-distribution. */
  oodWhen: 'low' | 'high';
  /** Left edge of the first bin, bin width, bin count (shared by both series). */
  min: number;
  binWidth: number;
  bins: number;
  calibration: number[];
  /** Counts of the held-out check part, or null when fit did not report its scores. */
  check: number[] | null;
  calibrationCount: number;
  checkCount: number;
  /**
   * The test's share of α and the score at which it fires: images scoring beyond `threshold` (below it for
   * oodWhen "low", above it for "high") get a p-value under share × α. Null when the calibration part is too
   * small for this test to ever fire.
   */
  share: number;
  threshold: number | null;
}

export interface FitReport {
  name: string;
  manifestPath: string;
  pairFolder: string;
  alpha: number;
  /** Held-out check part: images, how many were flagged, and the share. */
  checkImages: number;
  falseAlarms: number;
  falseAlarmRate: number;
  heldOutAccuracy: number | null;
  parts: { fit: number; calibration: number; check: number };
  failed: number;
  failures: { path: string; error: string }[];
  decisions: string[];
  seconds: number;
  classifierOnly: boolean;
  histograms: ScoreHistogram[];
  /** The number of classes the classifier scores (older reports: absent). */
  classes?: number;
  /** The pair's VAE as the panel shows it: what fit recorded when it trained it, and how it reconstructs held-out images (absent: no VAE). */
  vae?: VaeReport;
}

export interface VaeReport {
  /** fit's training record (null: the user brought the VAE). */
  training: { line: string; epochs: number; lossCurve: number[]; heldOutElbo: number; seconds: number } | null;
  /** A few held-out check images as the VAE sees them and its reconstruction of each (base64 PNGs, the VAE's own size). */
  samples: VaeSample[];
  /** Why no reconstruction could be shown, when `samples` is empty. */
  samplesError?: string;
}

export interface VaeSample {
  path: string;
  inputPng: string;
  reconstructionPng: string;
  width: number;
  height: number;
  /** The image's ELBO in nats (null when the VAE gave none). */
  elbo: number | null;
}

interface ScoreMeta {
  label: string;
  oodWhen: 'low' | 'high';
}

/** The scores a calibration file holds today; detectors added later show with their own key as label. */
/** Calibration keys as calibration.ts stores them: MSP and ELBO as they are (low = suspicious), the rest as OOD scores. */
const KNOWN_SCORES: Record<string, ScoreMeta & { test: string }> = {
  msp: { label: 'Classifier confidence (MSP)', oodWhen: 'low', test: 'confidence' },
  elbo: { label: 'VAE likelihood (ELBO, nats)', oodWhen: 'low', test: 'elbo' },
  complexity: { label: 'Complexity-corrected S(x), bits', oodWhen: 'high', test: 'complexity' },
  energy: { label: 'Energy of the logits', oodWhen: 'high', test: 'energy' },
  knn: { label: 'KNN distance in feature space', oodWhen: 'high', test: 'knn' },
  mahalanobis: { label: 'Mahalanobis distance in feature space', oodWhen: 'high', test: 'mahalanobis' },
  layers: { label: 'Earlier-layer Gaussian distance (conv blocks)', oodWhen: 'high', test: 'layers' },
};

export function scoreMeta(score: string): ScoreMeta {
  return KNOWN_SCORES[score] ?? { label: score, oodWhen: 'high' };
}

export function testOfScore(score: string): string {
  return KNOWN_SCORES[score]?.test ?? score;
}

/**
 * The score at which a conformal test with threshold t = share × α fires, from the sorted calibration
 * values: lower tail, p = (1 + #{cal ≤ x}) / (n + 1) < t holds exactly for x < sorted[m − 1] with
 * m = ⌈t(n + 1) − 1⌉; upper tail mirrored. Null when m < 1 (too few calibration images for this t).
 */
export function firingThreshold(sortedAscending: readonly number[], t: number, oodWhen: 'low' | 'high'): number | null {
  const n = sortedAscending.length;
  const m = Math.ceil(t * (n + 1) - 1 - 1e-9);
  if (m < 1 || m > n) return null;
  return oodWhen === 'low' ? sortedAscending[m - 1] : sortedAscending[n - m];
}

/** The fewest calibration values with which a test at threshold t = share × α can fire at all (p ≥ 1/(n + 1)). */
export function calibrationNeeded(share: number, alpha: number): number {
  const t = share * alpha;
  return Math.floor(1 / t - 1 + 1e-9) + 1;
}

/**
 * When none of the verdict's tests can fire (too few calibration images for its share of α), what to say:
 * the verdict can then never be out-of-distribution. Null when some test can fire.
 */
export function cannotFireWarning(r: Pick<FitReport, 'histograms' | 'alpha' | 'parts'>): string | null {
  const active = r.histograms.filter((h) => h.share > 0);
  if (!active.length || active.some((h) => h.threshold !== null)) return null;
  const need = Math.min(...active.map((h) => calibrationNeeded(h.share, r.alpha)));
  return `With ${r.parts.calibration.toLocaleString('en-US')} calibration images no test of this pair can flag an image at α = ${r.alpha}: a p-value cannot go below 1/(n + 1). The smallest test share needs at least ${need.toLocaleString('en-US')} calibration images — run Create Pair again with more in-distribution images.`;
}

/**
 * A confidence test that can hardly fire on this model: the top-class probability (MSP) is never below 1/K with
 * K classes, and the test fires only below its threshold; when that threshold lies in the lowest fifth of the
 * range [1/K, 1] the MSP can take, only images the classifier finds a near coin-flip between classes reach it
 * (two classes: MSP ≥ 0.5, the issue's pair fired below ≈ 0.504). Says so, with the share of α it holds; null
 * when the test can fire in earnest (or the pair has none).
 */
export function blindConfidenceWarning(mspThreshold: number | null, share: number, classes: number | undefined, calibration?: { count: number; alpha: number }): string | null {
  if (!classes || classes < 2 || share <= 0) return null;
  // A share too small for the calibration to ever give a p-value below it: the test never fires at all.
  if (mspThreshold === null) {
    if (!calibration) return null;
    return `The confidence test cannot fire on this pair: its share of α (${+share.toFixed(3)}) needs at least ${calibrationNeeded(share, calibration.alpha).toLocaleString('en-US')} calibration images and the pair has ${calibration.count.toLocaleString('en-US')}. The other tests decide the verdicts.`;
  }
  const floor = 1 / classes;
  const position = (mspThreshold - floor) / (1 - floor);
  if (position > 0.2) return null;
  return `The confidence test can hardly fire on this model: with ${classes} classes the top-class probability is never below ${+floor.toFixed(3)}, and the test fires only below ${mspThreshold.toFixed(3)} (the lowest ${Math.max(1, Math.round(100 * position))}% of the range it can take). Its share of α (${+share.toFixed(3)}) is nearly spent for nothing: the other tests decide the verdicts.`;
}

/** The α shares of the tests that decide a verdict, said once: "KNN distance 0.5 · confidence 0.5 of α = 0.01". */
export function sharesSentence(histograms: readonly Pick<ScoreHistogram, 'score' | 'share'>[], alpha: number): string {
  const active = histograms.filter((h) => h.share > 0);
  if (!active.length) return 'No test of this pair decides verdicts.';
  const name = (score: string) => SHORT_NAMES[score] ?? score;
  return `The verdict: an image is out-of-distribution when any test fires. Each test has a share of α = ${alpha}: ${active.map((h) => `${name(h.score)} ${+h.share.toFixed(3)}`).join(' · ')} (it fires at p < share × α).`;
}

const SHORT_NAMES: Record<string, string> = { msp: 'confidence', elbo: 'ELBO', complexity: 'complexity S', energy: 'energy', knn: 'KNN distance', mahalanobis: 'Mahalanobis', layers: 'earlier layers', fisher: 'Fisher combination' };

/** Bins both series over their joint range; bin count by the Rice rule on the calibration part, 10–50. */
export function scoreHistogram(score: string, calibration: readonly number[], check: readonly number[] | null, share: number, alpha: number): ScoreHistogram | null {
  const cal = calibration.filter(Number.isFinite).sort((a, b) => a - b);
  if (!cal.length) return null;
  const chk = check ? check.filter(Number.isFinite) : null;
  let min = cal[0];
  let max = cal[cal.length - 1];
  for (const v of chk ?? []) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (max - min < 1e-12) {
    min -= 0.5;
    max += 0.5;
  }
  const bins = Math.min(50, Math.max(10, Math.round(2 * Math.cbrt(cal.length))));
  const binWidth = (max - min) / bins;
  const count = (values: readonly number[]) => {
    const counts = new Array<number>(bins).fill(0);
    for (const v of values) counts[Math.min(bins - 1, Math.max(0, Math.floor((v - min) / binWidth)))]++;
    return counts;
  };
  const meta = scoreMeta(score);
  return {
    score,
    label: meta.label,
    oodWhen: meta.oodWhen,
    min,
    binWidth,
    bins,
    calibration: count(cal),
    check: chk ? count(chk) : null,
    calibrationCount: cal.length,
    checkCount: chk?.length ?? 0,
    share,
    threshold: firingThreshold(cal, share * alpha, meta.oodWhen),
  };
}

/** "0.45%" with two decimals below 10%, one above. */
export function percent(rate: number): string {
  const p = 100 * rate;
  return `${p < 10 ? p.toFixed(2) : p.toFixed(1)}%`;
}

/** The sentence the panel and the notification lead with. */
export function falseAlarmSentence(r: Pick<FitReport, 'falseAlarms' | 'checkImages' | 'falseAlarmRate' | 'alpha'>): string {
  return `Held-out false alarms: ${r.falseAlarms.toLocaleString('en-US')} of ${r.checkImages.toLocaleString('en-US')} in-distribution images (${percent(r.falseAlarmRate)}) at α = ${r.alpha}`;
}

// ---------------------------------------------------------------------------------------------------------
// Messages of the result panel (webviews/fitResultPanel.ts ↔ webviews/ui/fitResult.ts)

export interface FitResultViewState {
  report: FitReport;
  /** Whether the new pair was made the active one. */
  selected: boolean;
  /** The user chose to only write the pair folder (not selected on purpose, not a failure to load). */
  kept?: boolean;
}

export type HostToFitResult = { type: 'load'; report: FitReport; selected: boolean; kept?: boolean };

export type FitResultToHost = { type: 'ready' } | { type: 'openManifest' } | { type: 'scoreFolder' } | { type: 'selectPair' };

const TO_HOST = new Set(['ready', 'openManifest', 'scoreFolder', 'selectPair']);

export function isFitResultToHost(m: unknown): m is FitResultToHost {
  return typeof m === 'object' && m !== null && TO_HOST.has((m as { type?: unknown }).type as string) && Object.keys(m).length === 1;
}

/** A report as restored from webview state (after a reload): only what the panel reads, with the right types. */
export function isFitReport(x: unknown): x is FitReport {
  const r = x as Partial<FitReport> | null;
  return (
    typeof r === 'object' && r !== null &&
    typeof r.name === 'string' && typeof r.manifestPath === 'string' && typeof r.pairFolder === 'string' &&
    typeof r.alpha === 'number' && typeof r.checkImages === 'number' && typeof r.falseAlarms === 'number' && typeof r.falseAlarmRate === 'number' &&
    Array.isArray(r.histograms) && Array.isArray(r.decisions) && typeof r.parts === 'object' && r.parts !== null
  );
}
