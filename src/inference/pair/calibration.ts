/**
 * Calibration: each score's distribution on held-out in-distribution images, and the conformal p-values
 * computed against it. p = (1 + #{calibration scores at least as extreme}) / (n + 1).
 */
import { writeFileAtomic } from '../io/atomicFile';
import { LIMITS, readBoundedTextSync } from '../io/boundedRead';
import { calibrationScoreProblems } from './calibrationCheck';
import { jsonSyntaxProblem } from '../io/jsonText';
import type { Compressor } from '../detectors/complexity';
import { ALPHA_SHARES, type AlphaShares, ruleShares, TEST_NAMES, type TestName, type VerdictRule } from '../../shared/rules';

/** Scores whose held-out distribution is stored. */
export interface CalibrationScores {
  /** ELBO in nats (higher = more in-distribution); empty for a pair without a VAE. */
  elbo: number[];
  /** Max softmax probability (higher = more in-distribution). */
  msp: number[];
  /** Complexity-corrected score S(x) in bits; higher = more out-of-distribution. */
  complexity?: number[];
  /** Energy −logsumexp(logits); higher = more out-of-distribution. */
  energy?: number[];
  /** k-th nearest-neighbour distance of the normalised features to the fit images'; higher = more OOD. */
  knn?: number[];
  /** Smallest class-conditional Mahalanobis distance² of the features; higher = more OOD. */
  mahalanobis?: number[];
  /** Earlier-layer Gaussian distance (standardised, averaged over layers); higher = more OOD. */
  layers?: number[];
  /**
   * Fisher's statistic −Σ ln p over the tests in `fisherReference` (p-values against that reference), on the
   * calibration images the reference does not hold; higher = more OOD.
   */
  fisher?: number[];
}

/**
 * The reference the `fisher` test's member p-values are taken against: the members' scores (stored as each
 * test stores them, see STORED) on one half of the calibration part. `scores.fisher` holds the statistic on
 * the other half, so a new image's Fisher p-value is conformal (its members' p-values never see the images
 * its own p-value is measured against).
 */
export interface FisherReference {
  tests: TestName[];
  /** Each test's weight in the sum (in `tests` order; weighted Fisher, Good 1955): fit uses its share of α. */
  weights: number[];
  scores: Partial<Record<keyof CalibrationScores, number[]>>;
  /**
   * Members that are readings of one model and vote once (see ONE_MODEL_READINGS in fit/fisherTest.ts): such a
   * group's p is min(1, k·min p) over its k readings (Bonferroni) and its weight the largest of theirs. Absent: every
   * member votes on its own.
   */
  oneVote?: TestName[][];
}

/**
 * How each test's scores are stored in a calibration file: under which key and whether negated, so that the
 * files written before every score had the out-of-distribution direction (ELBO and MSP stored as they are,
 * low = suspicious) keep working. Every other score is stored as its OOD score (high = suspicious).
 */
const STORED: Record<TestName, { key: keyof CalibrationScores; negated: boolean }> = {
  elbo: { key: 'elbo', negated: true },
  complexity: { key: 'complexity', negated: false },
  confidence: { key: 'msp', negated: true },
  energy: { key: 'energy', negated: false },
  knn: { key: 'knn', negated: false },
  mahalanobis: { key: 'mahalanobis', negated: false },
  layers: { key: 'layers', negated: false },
  fisher: { key: 'fisher', negated: false },
};

/** The values to store for a test, from held-out images' OOD scores (higher = more OOD). */
export function calibrationValues(test: TestName, oodScores: number[]): { key: keyof CalibrationScores; values: number[] } {
  const { key, negated } = STORED[test];
  return { key, values: negated ? oodScores.map((s) => -s) : oodScores.slice() };
}

/** Held-out images calibrated for this test, 0 when the calibration has none. */
export function calibratedCount(calibration: Calibration | undefined, test: TestName): number {
  return calibration?.scores[STORED[test].key]?.length ?? 0;
}

/**
 * Conformal p-value of an OOD score (higher = more out-of-distribution) against the test's calibration:
 * (1 + #{held-out scores at least as high}) / (n + 1); null when the calibration has none for the test.
 */
export function testPValue(calibration: Pick<Calibration, 'scores'>, test: TestName, oodScore: number | null): number | null {
  const { key, negated } = STORED[test];
  const sorted = calibration.scores[key];
  if (!sorted?.length || oodScore === null || !Number.isFinite(oodScore)) return null;
  return negated ? lowerTailPValue(sorted, -oodScore) : upperTailPValue(sorted, oodScore);
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
  /** The `fisher` test's reference (absent: the pair has no such test). */
  fisherReference?: FisherReference;
}

/**
 * Fisher's statistic for an image: −Σ w·ln p over the reference's votes, each p conformal against the
 * reference half, w the vote's weight (higher = more OOD). A member votes alone unless `oneVote` groups it with
 * other readings of its model: the group then votes once, p = min(1, k·min p), w = the largest of its weights.
 * Null when the calibration has no reference or the image lacks a member's score (the test then has no score and
 * is left out with its share, never passed).
 */
export function fisherStatistic(reference: FisherReference | undefined, oodScores: Partial<Record<TestName, number | null>>): number | null {
  if (!reference?.tests.length) return null;
  const pValues = new Map<TestName, number>();
  for (const test of reference.tests) {
    const p = testPValue({ scores: reference.scores as CalibrationScores }, test, oodScores[test] ?? null);
    if (p === null) return null;
    pValues.set(test, p);
  }
  const weightOf = (test: TestName) => reference.weights[reference.tests.indexOf(test)];
  let sum = 0;
  const grouped = new Set<TestName>();
  for (const group of reference.oneVote ?? []) {
    const p = Math.min(1, group.length * Math.min(...group.map((t) => pValues.get(t)!)));
    sum -= Math.max(...group.map(weightOf)) * Math.log(p);
    for (const t of group) grouped.add(t);
  }
  for (const test of reference.tests) if (!grouped.has(test)) sum -= weightOf(test) * Math.log(pValues.get(test)!);
  return sum;
}

/** The reference's problems (field named, never a value), for readCalibration. */
function fisherReferenceProblems(ref: unknown): string[] {
  const r = ref as FisherReference;
  if (!r || typeof r !== 'object' || !Array.isArray(r.tests) || !r.tests.length || !r.scores || typeof r.scores !== 'object') return ['fisherReference: needs a non-empty "tests" list and a "scores" object'];
  const problems: string[] = [];
  if (!Array.isArray(r.weights) || r.weights.length !== r.tests.length || r.weights.some((w) => typeof w !== 'number' || !Number.isFinite(w) || w < 0)) problems.push('fisherReference.weights: needs one finite weight ≥ 0 for each test');
  r.tests.forEach((t, i) => {
    if (!(TEST_NAMES as readonly string[]).includes(t) || t === 'fisher') problems.push(`fisherReference.tests[${i}]: not a test name`);
    else {
      const list = r.scores[STORED[t].key];
      if (!Array.isArray(list) || !list.length || list.some((x) => typeof x !== 'number' || !Number.isFinite(x))) problems.push(`fisherReference.scores.${STORED[t].key}: needs a non-empty list of finite numbers for test ${t}`);
    }
  });
  if (r.oneVote !== undefined) {
    const grouped = Array.isArray(r.oneVote) && r.oneVote.every((g) => Array.isArray(g) && g.length >= 2) ? r.oneVote.flat() : null;
    const fine = grouped !== null && grouped.every((t) => r.tests.includes(t)) && new Set(grouped).size === grouped.length;
    if (!fine) problems.push('fisherReference.oneVote: needs groups of two or more of its tests, each test in one group at most');
  }
  return problems;
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
  // Each list's first bad entry by index and type (never its value), before the shape check below.
  const problems = data?.version === 1 && data.scores && typeof data.scores === 'object' ? calibrationScoreProblems(data.scores) : [];
  if (data?.version === 1 && data.fisherReference !== undefined) problems.push(...fisherReferenceProblems(data.fisherReference));
  if (problems.length) throw new CalibrationError(path, problems.join('; '));
  const lists = data?.scores && typeof data.scores === 'object' ? Object.entries(data.scores) : [];
  const bad = lists.find(([, v]) => v !== undefined && (!Array.isArray(v) || v.some((x) => typeof x !== 'number' || !Number.isFinite(x))));
  if (data?.version !== 1 || !Array.isArray(data.scores?.elbo) || !lists.some(([, v]) => Array.isArray(v) && v.length > 0) || bad) {
    throw new CalibrationError(path, `not an OOD Lens calibration file (needs version 1, a scores.elbo list and at least one non-empty list of finite numbers${bad ? `; scores.${bad[0]} is not one` : ''})`);
  }
  // Sorted once here so every p-value is a binary search.
  for (const lists of [data.scores, data.fisherReference?.scores] as (Record<string, number[] | undefined> | undefined)[]) {
    for (const key of Object.keys(lists ?? {})) lists![key] = ascending(lists![key]);
  }
  return data;
}

/**
 * The finite numbers of `list` in ascending order: a typed array's native numeric sort, then a plain array
 * again. `Array.prototype.sort` with a comparator took 10–13 ms for the built-in pair's six lists of 5,000, in
 * every scoring shard's start; this ~1 ms. (−0 before 0 where the comparator kept them as found: no count differs.)
 */
function ascending(list: number[] | undefined): number[] | undefined {
  return list && Array.from(Float64Array.from(list).sort());
}

export function writeCalibration(path: string, calibration: Calibration): void {
  writeFileAtomic(path, JSON.stringify(calibration));
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
export { ALPHA_SHARES, type AlphaShares, type TestName, type VerdictRule };

export interface VerdictResult {
  verdict: Verdict;
  /** The adjusted p-value the verdict compares with α: min over the rule's tests of p / share (Bonferroni). */
  pValue: number | null;
  /** Every calibrated test's p-value (elbo, complexity, confidence always present; null when not available). */
  pValues: PValues;
  /** Which tests came out below their threshold (share × α). */
  firedBy: TestName[];
  /** The rule applied: the one asked for, less tests the calibration or the image has no score for. */
  rule: VerdictRule;
  /** Each applied test's threshold (share × α). */
  thresholds: Partial<Record<TestName, number>>;
  /** Fisher's statistic for the image, when the calibration has a `fisher` reference (see fisherStatistic). */
  fisherScore?: number | null;
}

export type PValues = { elbo: number | null; complexity: number | null; confidence: number | null } & Partial<Record<'energy' | 'knn' | 'mahalanobis' | 'layers' | 'fisher', number | null>>;

/**
 * The verdict over a list of detectors: OOD when any test in the rule's shares has its p-value below its share
 * of α. `oodScores`: each test's score for the image (higher = more out-of-distribution). Tests without a
 * score or a calibration are left out with their share (never handed to the others: false alarms stay ≤ α).
 * For the fixed rules (not `pair`) the old behaviour holds: without S a rule that uses it is the ELBO test alone.
 */
export function decideTests(calibration: Calibration | undefined, oodScores: Partial<Record<TestName, number | null>>, alpha: number, rule: VerdictRule, pairShares?: AlphaShares): VerdictResult {
  const pValues: PValues = { elbo: null, complexity: null, confidence: null };
  if (!calibration) return { verdict: 'uncalibrated', pValue: null, pValues, firedBy: [], rule, thresholds: {} };
  // Fisher's statistic is made here from the other tests' scores: it is no detector of its own.
  const fisherScore = calibration.fisherReference ? fisherStatistic(calibration.fisherReference, oodScores) : undefined;
  const scores = fisherScore === undefined ? oodScores : { ...oodScores, fisher: fisherScore };
  for (const test of TEST_NAMES) {
    const p = testPValue(calibration, test, scores[test] ?? null);
    if (p !== null || test === 'elbo' || test === 'complexity' || test === 'confidence') pValues[test] = p;
  }
  // `pair` on a pair without a detector list is `all`, with all's fallbacks.
  let effective: VerdictRule = rule === 'pair' && !(pairShares && Object.keys(pairShares).length) ? 'all' : rule;
  if (effective !== 'pair' && effective !== 'elbo' && pValues.complexity === null) effective = 'elbo';
  // A classifier-only pair (no ELBO, no S) under a fixed rule: the confidence test with all of α.
  const classifierOnly = effective !== 'pair' && pValues.elbo === null && pValues.complexity === null;
  const shares = classifierOnly ? ([['confidence', 1]] as [TestName, number][]).filter(([test]) => pValues[test] != null) : (Object.entries(ruleShares(effective, pairShares)) as [TestName, number][]).filter(([test, share]) => share > 0 && pValues[test] != null);
  // No test applies (nothing calibrated for what this image has): never a silent "in-distribution".
  const fisher = fisherScore === undefined ? {} : { fisherScore };
  if (!shares.length) return { verdict: 'uncalibrated', pValue: null, pValues, firedBy: [], rule: effective, thresholds: {}, ...fisher };
  const firedBy: TestName[] = [];
  const thresholds: Partial<Record<TestName, number>> = {};
  let pValue = 1;
  for (const [test, share] of shares) {
    const p = pValues[test]!;
    thresholds[test] = share * alpha;
    if (p < share * alpha) firedBy.push(test);
    pValue = Math.min(pValue, p / share);
  }
  return { verdict: firedBy.length ? 'out-of-distribution' : 'in-distribution', pValue: Math.min(1, pValue), pValues, firedBy, rule: effective, thresholds, ...fisher };
}

/**
 * The verdict from the three classic scores (kept for callers that have only these): `elbo` — p_elbo < α;
 * `complexity` — p_S < α; `both` — either below α/2; `all` — p_elbo or p_S below 0.45α, or p_MSP below 0.1α.
 */
export function decide(calibration: Calibration | undefined, elbo: number | null, complexity: number | null, alpha: number, rule: VerdictRule, msp: number | null = null): VerdictResult {
  return decideTests(calibration, { elbo: elbo === null ? null : -elbo, complexity, confidence: msp === null ? null : -msp }, alpha, rule);
}
