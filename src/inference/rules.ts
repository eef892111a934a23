/**
 * The verdict rules and their tests: pure data, shared by the engine (calibration.ts) and the webviews'
 * browser code (verdictText.ts), so no Node imports here.
 */
export type VerdictRule = 'elbo' | 'complexity' | 'both' | 'all';
/** The conformal tests: ELBO unusually low, S(x) unusually high, classifier confidence (MSP) unusually low. */
export type TestName = 'elbo' | 'complexity' | 'confidence';

/**
 * Each test's share of α under each rule: a weighted Bonferroni split (the shares sum to 1), so false alarms
 * stay at most α. `all` gives the classifier-confidence test a small share: it catches the images the
 * likelihoods call plausible because they are simple (a drawing on a blank page is 'in-distribution' for
 * the MNIST VAE by both ELBO and S, yet its MSP is below every held-out digit's), while ELBO and S keep
 * nearly all of α. Measured on the built-in pairs, 10,000 + 10,000 test images (README, "Pairs").
 */
export const ALPHA_SHARES: Record<VerdictRule, Partial<Record<TestName, number>>> = {
  elbo: { elbo: 1 },
  complexity: { complexity: 1 },
  both: { elbo: 0.5, complexity: 0.5 },
  all: { elbo: 0.45, complexity: 0.45, confidence: 0.1 },
};

export const VERDICT_RULES = Object.keys(ALPHA_SHARES) as VerdictRule[];
