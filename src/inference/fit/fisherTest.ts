/**
 * The `fisher` test: the tests fit chose, taken together. Each chosen test is strong on some images and blind
 * on others, and the verdict's weighted Bonferroni union (each test at its own share of α) only fires when
 * one test alone is extreme. Fisher's method adds the evidence: T(x) = −Σ w_t ln p_t(x) over the chosen tests,
 * each weighted by its share of α from the probes (weighted Fisher, Good 1955); readings of one model vote once
 * (ONE_MODEL_READINGS). Unweighted, a test the probes
 * barely passed (the classifier's confidence, AUROC 0.53 against MNIST) counts as much as the feature tests,
 * and its extremes, capped like every conformal p-value at 1/(n+1), drown theirs: measured on a FashionMNIST
 * pair fitted on 4,000 images, AUROC against MNIST 0.989 unweighted, 0.996 weighted by share.
 *
 * To keep T's own p-value conformal, the calibration part is split in two (seeded): the member p-values are
 * taken against one half (the reference, stored in calibration.json `fisherReference`), and T is calibrated
 * on the other half (`scores.fisher`). A new image and the second half's images are then exchangeable, so
 * T's false alarms stay at its share of α, whatever the members' dependence.
 *
 * Its share: measured on classifier-only pairs (issue 21: FashionMNIST classifier against MNIST, a per-test
 * best of 0.990), T alone reached 0.997 where the union reached 0.985; with 0.8 of α for T and the chosen
 * shares scaled into the remaining 0.2 (so a test that alone catches an extreme image still fires), the
 * verdict kept nearly all of T's gain. Pure functions; fit.ts runs them.
 */
import { calibrationValues, type FisherReference, fisherStatistic } from '../pair/calibration';
import { resultOodScore } from '../detectors/oodDetectors';
import { mulberry32 } from '../detectors/random';
import type { ImageResult } from '../engineTypes';
import type { TestName } from '../../shared/rules';
import type { TestChoiceRecord } from '../pair/manifest';

/**
 * Members that read one model, so vote once in T. The ELBO and S(x) both read the VAE (S(x) is the ELBO in bits less
 * the image's compressed size), and each is blind exactly where the other sees: on every fitted pair's probes the ELBO
 * ranks zoomed-out images (simpler than the fit images) as more likely than the fit images (AUROC 0.00–0.31) and S(x)
 * ranks noise so (0.00–0.32), each catching the other's kind at 0.98–1.00. As two members, the one blind to an image
 * adds null variance to T and no evidence: the classifier-only FashionMNIST pair's ELBO (AUROC 0.30 against MNIST,
 * the largest probe share) held T at 0.9929. As one vote, min(1, 2·min p) with the larger of the two weights, T
 * reached 0.9967 there and kept 0.9997 on the MNIST pair, whose S(x) is the blind one (0.20 against FashionMNIST).
 */
export const ONE_MODEL_READINGS: readonly (readonly TestName[])[] = [['elbo', 'complexity']];

/** T's share of α when fit adds it; the chosen tests share the rest in their chosen proportions. */
export const FISHER_SHARE = 0.8;
/** Fewest calibration images in each half (T needs both a reference and its own calibration). */
export const FISHER_MIN_HALF = 200;

export interface FisherCalibration {
  reference: FisherReference;
  /** T on the calibration half the reference does not hold (higher = more OOD). */
  values: number[];
}

/**
 * Splits the calibration images (seeded) into the reference half and T's calibration half, for `tests`
 * (at least two, each scored on every image) with their weights. Null when there are too few images for both halves.
 */
export function fisherCalibration(calibration: ImageResult[], tests: TestName[], weights: number[], seed: number): FisherCalibration | null {
  if (tests.length < 2 || tests.includes('fisher')) throw new Error(`the Fisher test combines two or more other tests (got ${tests.join(', ') || 'none'})`);
  if (weights.length !== tests.length || !weights.every((w) => w > 0)) throw new Error(`the Fisher test needs one positive weight a test (got ${weights.join(', ')} for ${tests.join(', ')})`);
  const usable = calibration.filter((r) => tests.every((t) => resultOodScore(t, r) !== null));
  const half = Math.floor(usable.length / 2);
  if (half < FISHER_MIN_HALF) return null;
  const order = Array.from({ length: usable.length }, (_, i) => i);
  const next = mulberry32(seed ^ 0xf15e);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const referenceRows = order.slice(0, half).map((i) => usable[i]);
  const calibrationRows = order.slice(half).map((i) => usable[i]);
  const scores: FisherReference['scores'] = {};
  for (const t of tests) {
    const { key, values } = calibrationValues(t, referenceRows.map((r) => resultOodScore(t, r)!));
    scores[key] = values.sort((a, b) => a - b);
  }
  const total = weights.reduce((a, b) => a + b, 0);
  const oneVote = ONE_MODEL_READINGS.map((group) => group.filter((t) => tests.includes(t))).filter((group) => group.length >= 2);
  const reference: FisherReference = { tests: [...tests], weights: weights.map((w) => Number((w / total).toFixed(6))), scores, ...(oneVote.length ? { oneVote } : {}) };
  const values = calibrationRows.map((r) => fisherStatistic(reference, Object.fromEntries(tests.map((t) => [t, resultOodScore(t, r)]))) as number);
  return { reference, values };
}

/** T for a result (its members' scores against the reference), null when a member has no score. */
export function fisherScoreOf(reference: FisherReference, r: ImageResult): number | null {
  return fisherStatistic(reference, Object.fromEntries(reference.tests.map((t) => [t, resultOodScore(t, r)])));
}

/**
 * The choice with T added: `fisherRow` is T's own row as chooseTests judged it on the probes. When T is used,
 * it gets FISHER_SHARE and every other test's share is scaled into the rest; when it is not (blind or
 * inverted on the probes), the choice stands and T is listed with share 0 and the reason.
 */
export function withFisher(choice: TestChoiceRecord, fisherRow: TestChoiceRecord['tests'][number]): TestChoiceRecord {
  const members = choice.tests.filter((t) => t.share > 0).map((t) => t.test);
  const votingOnce = ONE_MODEL_READINGS.map((group) => group.filter((t) => members.includes(t))).filter((group) => group.length >= 2);
  const once = votingOnce.map((group) => ` (${group.join(' and ')} read one model and vote once: min(1, ${group.length}·min p), the larger weight)`).join('');
  const note = `; fisher: Fisher's method over the used tests (${members.join(', ')}), weighted by their shares${once}, p-values against one seeded half of the calibration images and calibrated on the other, with ${FISHER_SHARE} of α when it passes the probes, the others scaled into the rest`;
  if (!fisherRow.used) return { ...choice, method: choice.method + note, tests: [...choice.tests, { ...fisherRow, share: 0 }] };
  const rest = 1 - FISHER_SHARE;
  return {
    ...choice,
    method: choice.method + note,
    tests: [...choice.tests.map((t) => ({ ...t, share: Math.floor(1000 * t.share * rest + 1e-9) / 1000 })), { ...fisherRow, share: FISHER_SHARE }],
  };
}
