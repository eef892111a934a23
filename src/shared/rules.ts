/**
 * The verdict rules and their tests: pure data, shared by the engine (calibration.ts) and the webviews'
 * browser code (verdictText.ts), so no Node imports here.
 */
/**
 * `pair` (the default): the detectors and α shares the pair manifest lists (`detectors`), or `all` for a
 * pair that lists none. The others are fixed splits kept for pairs made before detector lists existed.
 */
export type VerdictRule = 'pair' | 'elbo' | 'complexity' | 'both' | 'all';

/**
 * The conformal tests, one per detector, each on a score where higher = more out-of-distribution: ELBO
 * unusually low, S(x) unusually high, classifier confidence (MSP) unusually low, energy unusually high, KNN
 * distance of the penultimate features unusually large, Mahalanobis distance unusually large, earlier conv
 * layers' Gaussian distance unusually large (`layers`), and `fisher`: the tests fit chose, together (Fisher's
 * method over their p-values against a reference half of the calibration images, calibrated on the other half).
 */
export type TestName = 'elbo' | 'complexity' | 'confidence' | 'energy' | 'knn' | 'mahalanobis' | 'layers' | 'fisher';

export const TEST_NAMES: readonly TestName[] = ['elbo', 'complexity', 'confidence', 'energy', 'knn', 'mahalanobis', 'layers', 'fisher'];

/** Each test's share of α: a weighted Bonferroni split (shares sum to at most 1), so false alarms stay at most α. */
export type AlphaShares = Partial<Record<TestName, number>>;

/**
 * Each test's share of α under each fixed rule. `all` gives the classifier-confidence test a small share: it
 * catches the images the likelihoods call plausible because they are simple (a drawing on a blank page is
 * 'in-distribution' for the MNIST VAE by both ELBO and S, yet its MSP is below every held-out digit's), while
 * ELBO and S keep nearly all of α. Measured on the built-in pairs, 10,000 + 10,000 test images (README, "Pairs").
 * `pair` has no fixed split: the pair's manifest gives it (`pairShares`).
 */
export const ALPHA_SHARES: Record<Exclude<VerdictRule, 'pair'>, AlphaShares> = {
  elbo: { elbo: 1 },
  complexity: { complexity: 1 },
  both: { elbo: 0.5, complexity: 0.5 },
  all: { elbo: 0.45, complexity: 0.45, confidence: 0.1 },
};

export const VERDICT_RULES: VerdictRule[] = ['pair', 'all', 'both', 'elbo', 'complexity'];

/** The shares a rule gives, given the pair's own list (`pair` without a list is `all`). */
export function ruleShares(rule: VerdictRule, pairShares: AlphaShares | undefined): AlphaShares {
  if (rule === 'pair') return pairShares && Object.keys(pairShares).length ? pairShares : ALPHA_SHARES.all;
  return ALPHA_SHARES[rule];
}

/** Each test in words, for tables and the verdict sentences. */
export const TEST_LABELS: Record<TestName, { name: string; what: string }> = {
  elbo: { name: 'ELBO', what: 'how likely the VAE finds the image' },
  complexity: { name: 'Complexity-corrected', what: 'likelihood relative to how complex the image is' },
  confidence: { name: 'Classifier confidence', what: 'how sure the classifier is, against held-out images' },
  energy: { name: 'Energy', what: 'the classifier logits\' free energy, against held-out images' },
  knn: { name: 'KNN feature distance', what: 'how far its features are from the nearest training image\'s' },
  mahalanobis: { name: 'Mahalanobis feature distance', what: 'how far its features are from every class\'s centre' },
  layers: { name: 'Earlier-layer feature distance', what: 'how far its conv layers\' pooled activations are from the training images\' (one Gaussian per layer)' },
  fisher: { name: 'Fisher combination of the chosen tests', what: 'how unusual it is on all the chosen tests together (Fisher\'s method), against held-out images' },
};
