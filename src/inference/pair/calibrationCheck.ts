/**
 * Checks on a calibration that go beyond its shape: every stored score list holds finite numbers only, and
 * there are enough scores for the verdict rule to ever reject at α. With n calibration scores the smallest
 * conformal p-value is 1/(n+1), so a test whose threshold (its share of α) is at or below that can never fire:
 * with fewer than ~222 scores nothing is ever flagged at α = 0.01 under rule `all`, and every image — a cat
 * photo for an MNIST pair — would be reported in-distribution. Such a pair is refused.
 */
import { type AlphaShares, ruleShares, TEST_NAMES, type TestName, type VerdictRule } from '../../shared/rules';

/** Why a score list is unusable, naming the field and the first bad entry by index and type (never its value). */
export function scoreListProblem(field: string, list: unknown): string | null {
  if (!Array.isArray(list)) return `${field}: must be a list of numbers (found ${list === null ? 'null' : typeof list})`;
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    if (typeof v !== 'number') return `${field}[${i}]: must be a finite number (found ${v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v})`;
    if (!Number.isFinite(v)) return `${field}[${i}]: must be a finite number (found a number out of range, e.g. 1e999)`;
  }
  return null;
}

/** Problems with every list under `scores` (whatever detectors the file stores). */
export function calibrationScoreProblems(scores: unknown): string[] {
  if (!scores || typeof scores !== 'object' || Array.isArray(scores)) return ['scores: must be an object of score lists'];
  const problems: string[] = [];
  for (const [key, list] of Object.entries(scores as Record<string, unknown>)) {
    if (list === undefined) continue;
    const problem = scoreListProblem(`scores.${key}`, list);
    if (problem) problems.push(problem);
  }
  return problems;
}

/** Each test's calibration size, from a function giving it (calibration.calibratedCount). */
export function countsOf(count: (test: TestName) => number): Partial<Record<TestName, number>> {
  return Object.fromEntries(TEST_NAMES.map((t) => [t, count(t)]));
}

/** Smallest n for which the conformal p-value 1/(n+1) can fall below `threshold`. */
export function minimumScoresFor(threshold: number): number {
  let n = Math.max(0, Math.floor(1 / threshold));
  while (1 / (n + 1) >= threshold) n++;
  while (n > 0 && 1 / n < threshold) n--;
  return n;
}

export interface RejectionCheck {
  /** True when at least one of the rule's tests can fire with these calibration sizes. */
  canReject: boolean;
  /** The fewest scores with which the rule's easiest test can fire at α. */
  minimum: number;
  /** The rule actually applied (as calibration.decideTests: without S, a fixed rule that uses it is the ELBO test). */
  rule: VerdictRule;
  /** Scores calibrated for the easiest test. */
  count: number;
}

/**
 * Whether `rule` at `alpha` can ever reject, given how many held-out scores each test has (`counts`, as
 * calibration.calibratedCount gives them) and the pair's own shares for rule `pair`.
 */
export function rejectionCheck(counts: Partial<Record<TestName, number>>, rule: VerdictRule, alpha: number, pairShares?: AlphaShares): RejectionCheck {
  let effective: VerdictRule = rule === 'pair' && !(pairShares && Object.keys(pairShares).length) ? 'all' : rule;
  if (effective !== 'pair' && effective !== 'elbo' && !counts.complexity) effective = 'elbo';
  let best: { minimum: number; count: number } | null = null;
  let canReject = false;
  // A classifier-only pair (no ELBO, no S) under a fixed rule: the confidence test has all of α (as decideTests).
  const classifierOnly = effective !== 'pair' && !counts.elbo && !counts.complexity;
  const shares = classifierOnly ? ([['confidence', 1]] as [TestName, number][]) : (Object.entries(ruleShares(effective, pairShares)) as [TestName, number][]);
  for (const [test, share] of shares) {
    const count = counts[test] ?? 0;
    if (!count || !(share > 0)) continue;
    const minimum = minimumScoresFor(share * alpha);
    if (count >= minimum) canReject = true;
    if (!best || minimum < best.minimum) best = { minimum, count };
  }
  return { canReject, minimum: best?.minimum ?? minimumScoresFor(alpha), rule: effective, count: best?.count ?? 0 };
}

/** The message for a calibration too small to ever reject, or null when it can. */
export function tooSmallProblem(counts: Partial<Record<TestName, number>>, rule: VerdictRule, alpha: number, pairShares?: AlphaShares): string | null {
  const c = rejectionCheck(counts, rule, alpha, pairShares);
  if (c.canReject) return null;
  return (
    `the calibration has ${c.count} scores, too few to ever flag an image under rule ${c.rule} at α = ${alpha}: ` +
    `the smallest p-value with n scores is 1/(n+1), so the rule needs at least ${c.minimum}; ` +
    `calibrate on at least ${c.minimum} held-out images (a few thousand is better), or use a larger α`
  );
}

/**
 * Refuses a calibration too small for the rule to ever reject at α: it would call every image
 * in-distribution. `source` (the calibration file) starts the message.
 */
export function checkCalibrationCanReject(counts: Partial<Record<TestName, number>>, source: string, rule: VerdictRule, alpha: number, pairShares?: AlphaShares): void {
  if (!Object.values(counts).some((n) => n)) return;
  const problem = tooSmallProblem(counts, rule, alpha, pairShares);
  if (problem) throw new Error(`${source}: ${problem}`);
}
