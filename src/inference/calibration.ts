/**
 * Calibration: each score's distribution on held-out in-distribution images, and the conformal p-values
 * computed against it. p = (1 + #{calibration scores at least as extreme}) / (n + 1).
 */
import { renameSync, writeFileSync } from 'node:fs';
import { LIMITS, readBoundedTextSync } from './boundedRead';
import { calibrationScoreProblems } from './calibrationCheck';
import { jsonSyntaxProblem } from './jsonText';
import type { Compressor } from './complexity';
import { ALPHA_SHARES, type TestName, type VerdictRule } from './rules';

/** Scores whose held-out distribution is stored. */
export interface CalibrationScores {
  elbo: number[];
  msp: number[];
  /** Complexity-corrected score S(x) in bits; higher = more out-of-distribution. */
  complexity?: number[];
}

export interface Calibration {
  version: 1;
  pair: string;
  /** Where the held-out images came from, in words. */
  source: string;
  count: number;
  createdAt: string;
  /** The compressor behind the stored complexity scores (absent in older files: png). */
  compressor?: Compressor;
  /** Posterior samples behind the stored ELBOs (0: at the posterior mean); absent in older files. */
  vaeSamples?: number;
  scores: CalibrationScores;
}

export class CalibrationError extends Error {
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'CalibrationError';
  }
}

export function readCalibration(path: string): Calibration {
  let text: string;
  try {
    text = readBoundedTextSync(path, { maxBytes: LIMITS.calibrationBytes, what: 'calibration file' });
  } catch (err) {
    throw new CalibrationError(path, `cannot read calibration: ${(err as { reason?: string }).reason ?? (err as Error).message}`);
  }
  let data: Calibration;
  try {
    data = JSON.parse(text) as Calibration;
  } catch (err) {
    // The parser's own message quotes the file's first characters: never repeat the content.
    throw new CalibrationError(path, `cannot read calibration: ${jsonSyntaxProblem(err, text)}`);
  }
  const elbo = data?.scores?.elbo;
  const msp = data?.scores?.msp;
  // A classifier-only pair (no VAE) has no ELBOs: its calibration holds the classifier's scores alone.
  if (data?.version !== 1 || !Array.isArray(elbo) || (elbo.length === 0 && !(Array.isArray(msp) && msp.length))) {
    throw new CalibrationError(path, 'not an OOD Lens calibration file (needs version 1 and a non-empty scores.elbo list of numbers, or scores.msp for a classifier-only pair)');
  }
  const problems = calibrationScoreProblems(data.scores);
  if (problems.length) throw new CalibrationError(path, problems.join('; '));
  // Sorted once here so every p-value is a binary search.
  for (const key of Object.keys(data.scores) as (keyof CalibrationScores)[]) data.scores[key]?.sort((a, b) => a - b);
  return data;
}

export function writeCalibration(path: string, calibration: Calibration): void {
  writeFileAtomic(path, JSON.stringify(calibration));
}

export function writeFileAtomic(path: string, contents: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, path);
}

/** Number of values in ascending `sorted` that are ≤ x. */
export function countAtMost(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** p-value for "unusually low" (e.g. ELBO): (1 + #{cal ≤ x}) / (n + 1). */
export function lowerTailPValue(sorted: readonly number[], x: number): number {
  return (1 + countAtMost(sorted, x)) / (sorted.length + 1);
}

/** p-value for "unusually high" (e.g. complexity-corrected S): (1 + #{cal ≥ x}) / (n + 1). */
export function upperTailPValue(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return (1 + sorted.length - lo) / (sorted.length + 1);
}

export type Verdict = 'in-distribution' | 'out-of-distribution' | 'uncalibrated' | 'error';
export { ALPHA_SHARES, type TestName, type VerdictRule };

export interface VerdictResult {
  verdict: Verdict;
  /** The adjusted p-value the verdict compares with α: min over the rule's tests of p / share (Bonferroni). */
  pValue: number | null;
  pValues: { elbo: number | null; complexity: number | null; confidence: number | null };
  /** Which tests came out below their threshold (share × α). */
  firedBy: TestName[];
  /** The rule applied: the one asked for, less tests the calibration or the image has no score for. */
  rule: VerdictRule;
  /** Each applied test's threshold (share × α). */
  thresholds: Partial<Record<TestName, number>>;
}

/**
 * The verdict: OOD when any of the rule's tests has its p-value below its share of α (ALPHA_SHARES).
 * `elbo` — p_elbo < α; `complexity` — p_S < α; `both` — either below α/2; `all` (the default) — p_elbo or
 * p_S below 0.45α, or p_MSP below 0.1α. Without S (a calibration or compressor that has none), a rule
 * that uses it is the ELBO test alone; without a calibrated MSP, `all` leaves that test and its share out.
 */
export function decide(calibration: Calibration | undefined, elbo: number | null, complexity: number | null, alpha: number, rule: VerdictRule, msp: number | null = null): VerdictResult {
  if (!calibration) return { verdict: 'uncalibrated', pValue: null, pValues: { elbo: null, complexity: null, confidence: null }, firedBy: [], rule, thresholds: {} };
  const cs = calibration.scores.complexity;
  const cm = calibration.scores.msp;
  const pValues = {
    elbo: elbo !== null && calibration.scores.elbo.length ? lowerTailPValue(calibration.scores.elbo, elbo) : null,
    complexity: cs && cs.length && complexity !== null ? upperTailPValue(cs, complexity) : null,
    confidence: cm && cm.length && msp !== null ? lowerTailPValue(cm, msp) : null,
  };
  // Without S, a rule that uses it is the ELBO test alone; without a calibrated MSP, `all` drops that test.
  const effective: VerdictRule = rule !== 'elbo' && pValues.complexity === null ? 'elbo' : rule;
  // A classifier-only pair (no VAE scores) has the confidence test alone, with all of α.
  const classifierOnly = pValues.elbo === null && pValues.complexity === null;
  const shares = classifierOnly ? ([['confidence', 1]] as [TestName, number][]).filter(([test]) => pValues[test] !== null) : (Object.entries(ALPHA_SHARES[effective]) as [TestName, number][]).filter(([test]) => pValues[test] !== null);
  if (!shares.length) return { verdict: 'uncalibrated', pValue: null, pValues, firedBy: [], rule, thresholds: {} };
  const firedBy: TestName[] = [];
  const thresholds: Partial<Record<TestName, number>> = {};
  let pValue = 1;
  for (const [test, share] of shares) {
    const p = pValues[test]!;
    thresholds[test] = share * alpha;
    if (p < share * alpha) firedBy.push(test);
    pValue = Math.min(pValue, p / share);
  }
  return { verdict: firedBy.length ? 'out-of-distribution' : 'in-distribution', pValue: Math.min(1, pValue), pValues, firedBy, rule: effective, thresholds };
}
