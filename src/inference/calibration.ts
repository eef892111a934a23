/**
 * Calibration: each score's distribution on held-out in-distribution images, and the conformal p-values
 * computed against it. p = (1 + #{calibration scores at least as extreme}) / (n + 1).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Compressor } from './complexity';

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
  let data: Calibration;
  try {
    data = JSON.parse(readFileSync(path, 'utf8')) as Calibration;
  } catch (err) {
    throw new CalibrationError(path, `cannot read calibration: ${(err as Error).message}`);
  }
  const elbo = data?.scores?.elbo;
  if (data?.version !== 1 || !Array.isArray(elbo) || elbo.length === 0 || elbo.some((v) => typeof v !== 'number' || !Number.isFinite(v))) {
    throw new CalibrationError(path, 'not an OOD Lens calibration file (needs version 1 and a non-empty scores.elbo list of numbers)');
  }
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

export type VerdictRule = 'elbo' | 'complexity' | 'both';
export type Verdict = 'in-distribution' | 'out-of-distribution' | 'uncalibrated' | 'error';

export interface VerdictResult {
  verdict: Verdict;
  /** The p-value the verdict compares with α (Bonferroni-adjusted under `both`). */
  pValue: number | null;
  pValues: { elbo: number | null; complexity: number | null };
  /** Which tests came out below their threshold. */
  firedBy: ('elbo' | 'complexity')[];
  rule: VerdictRule;
}

/**
 * The verdict: `elbo` — OOD when p_elbo < α; `complexity` — OOD when p_S < α; `both` — OOD when either
 * p-value is below α/2 (Bonferroni), so false alarms stay at most α.
 */
export function decide(calibration: Calibration | undefined, elbo: number, complexity: number | null, alpha: number, rule: VerdictRule): VerdictResult {
  if (!calibration) return { verdict: 'uncalibrated', pValue: null, pValues: { elbo: null, complexity: null }, firedBy: [], rule };
  const cs = calibration.scores.complexity;
  const pElbo = lowerTailPValue(calibration.scores.elbo, elbo);
  const pS = cs && cs.length && complexity !== null ? upperTailPValue(cs, complexity) : null;
  const effective: VerdictRule = rule !== 'elbo' && pS === null ? 'elbo' : rule;
  const firedBy: ('elbo' | 'complexity')[] = [];
  let pValue: number;
  if (effective === 'elbo') {
    pValue = pElbo;
    if (pElbo < alpha) firedBy.push('elbo');
  } else if (effective === 'complexity') {
    pValue = pS!;
    if (pS! < alpha) firedBy.push('complexity');
  } else {
    pValue = Math.min(1, 2 * Math.min(pElbo, pS!));
    if (pElbo < alpha / 2) firedBy.push('elbo');
    if (pS! < alpha / 2) firedBy.push('complexity');
  }
  return {
    verdict: firedBy.length ? 'out-of-distribution' : 'in-distribution',
    pValue,
    pValues: { elbo: pElbo, complexity: pS },
    firedBy,
    rule: effective,
  };
}
