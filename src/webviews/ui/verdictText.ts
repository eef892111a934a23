/**
 * The verdict in plain words, from a scored image and the pair's settings. Pure (no vscode, no DOM): used by
 * the Inspect panel's browser script, hovers and notifications, and unit-tested on real numbers.
 */
import type { ImageResult } from '../../inference/engineTypes';
import { type AlphaShares, ruleShares, TEST_LABELS, TEST_NAMES, type TestName, type VerdictRule } from '../../shared/rules';
import { formatBitsPerDim, formatMsp, formatNats, formatP, formatPercent, TEST_P_LABEL, testPLabel } from '../../shared/format';

// The formatters live in src/shared/format.ts (one per quantity, used by every view); re-exported for the callers here.
export { formatMsp, formatNats, formatP, formatPercent };

export type VerdictTone = 'ok' | 'warn' | 'error' | 'info';

export interface VerdictText {
  tone: VerdictTone;
  /** Short label: "In-distribution", "Out-of-distribution", "Not calibrated", "Could not score". */
  headline: string;
  /** The sentence a user reads. */
  sentence: string;
  /** The headline p-value, "p = 0.00044": the verdict's combined p-value (ImageResult.pValue); null when there is none. */
  p: string | null;
  /** Which test decided and how (p-values against their thresholds), for the details line. */
  tests: string[];
}

export interface VerdictContext {
  alpha: number;
  /** Verdict rule the pair ran with. */
  rule: VerdictRule;
  /** Each test's share of α under that rule (PairInfo.shares); the fixed rule's shares when absent. */
  shares?: AlphaShares;
  /** Number of held-out calibration images (0 when uncalibrated). */
  calibrationCount: number;
  /** Pair folder, for the calibration command line. */
  pairDir?: string;
}

type Scored = Pick<ImageResult, 'verdict' | 'label' | 'prediction' | 'msp' | 'elbo' | 'reconstructionLogLik' | 'kl' | 'elboBitsPerDim' | 'pValue' | 'pValues' | 'firedBy' | 'error'>;

/** The prediction as quoted in sentences: "5 (99.9%)". */
export function predictionText(r: Pick<ImageResult, 'label' | 'prediction' | 'msp'>): string {
  const label = r.label ?? (r.prediction !== null ? String(r.prediction) : '?');
  return r.msp === null ? label : `${label} (${formatMsp(r.msp)})`;
}

/** "ELBO −105.4 nats = log p(x|z) −80.1 − KL 25.3 (0.19 bits/dim)". */
export function elboBreakdown(r: Pick<ImageResult, 'elbo' | 'reconstructionLogLik' | 'kl' | 'elboBitsPerDim'>): string {
  if (r.elbo === null) return 'ELBO: not available';
  let text = `ELBO ${formatNats(r.elbo)} nats`;
  if (r.reconstructionLogLik !== null && r.kl !== null) text += ` = reconstruction ${formatNats(r.reconstructionLogLik)} − KL ${formatNats(r.kl)}`;
  if (r.elboBitsPerDim !== null) text += ` (${formatBitsPerDim(r.elboBitsPerDim)} bits/dim)`;
  return text;
}

/**
 * Share of the n calibration images that score strictly better than this image, recovered from the
 * conformal p-value p = (1 + #{calibration ≤ x}) / (n + 1).
 */
export function shareBetter(p: number, n: number): number {
  if (n <= 0) return 0;
  const atMost = Math.min(n, Math.max(0, Math.round(p * (n + 1)) - 1));
  return (n - atMost) / n;
}

/** "α = 0.01", "α/2 = 0.005", "0.45α = 0.0045": a test's threshold under the rule. */
function thresholdText(share: number, alpha: number): string {
  const name = share === 1 ? 'α' : share === 0.5 ? 'α/2' : `${share}α`;
  return `${name} = ${formatP(share * alpha)}`;
}

const TESTS: { key: TestName; what: string }[] = TEST_NAMES.map((key) => ({ key, what: TEST_LABELS[key].what }));

function testLines(r: Scored, ctx: VerdictContext): string[] {
  const shares = ctx.shares ?? ruleShares(ctx.rule, undefined);
  const lines: string[] = [];
  for (const { key, what } of TESTS) {
    const p = r.pValues[key];
    if (p === null || p === undefined) continue;
    const share = shares[key];
    if (!share) {
      lines.push(`${testPLabel(key, p)} (${what}; not used by the "${ctx.rule}" rule)`);
      continue;
    }
    const fired = r.firedBy.includes(key);
    lines.push(`${testPLabel(key, p)} ${fired ? '<' : '≥'} ${thresholdText(share, ctx.alpha)}: ${fired ? 'fired' : 'did not fire'} (${what})`);
  }
  if (Object.keys(shares).length > 1 && r.pValue !== null) {
    lines.push(`Verdict p = ${formatP(r.pValue)}: the combined p-value (the smallest test p-value over its share of α, Bonferroni) against α = ${formatP(ctx.alpha)}`);
  }
  return lines;
}

export function verdictText(r: Scored, ctx: VerdictContext): VerdictText {
  const prediction = predictionText(r);
  switch (r.verdict) {
    case 'error':
      return { tone: 'error', headline: 'Could not score', sentence: `Could not score this image: ${r.error ?? 'unknown error'}.`.replace(/\.\.$/, '.'), p: null, tests: [] };
    case 'uncalibrated': {
      const elbo = r.elbo !== null ? `its ELBO (${formatNats(r.elbo)} nats)` : 'its ELBO';
      const cmd = `ood-lens calibrate <held-out training images> --pair ${ctx.pairDir ?? '<pair folder>'}`;
      return {
        tone: 'info',
        headline: 'Not calibrated',
        sentence: `This pair has no calibration, so there is no p-value or verdict: ${elbo} cannot be compared with held-out training images. The classifier says '${prediction}'. Calibrate the pair with \`${cmd}\`.`,
        p: null,
        tests: [],
      };
    }
    case 'out-of-distribution': {
      const n = ctx.calibrationCount;
      // The sentence follows the first test that fired: the ELBO, then S, then the classifier's confidence.
      const lead: TestName = (['fisher', 'elbo', 'complexity', 'knn', 'mahalanobis', 'layers', 'confidence', 'energy'] as TestName[]).find((t) => r.firedBy.includes(t)) ?? 'elbo';
      const testP = r.pValues[lead] ?? r.pValue ?? 0;
      const share = shareBetter(testP, n);
      const than = share >= 1 ? `all ${n.toLocaleString('en-US')}` : `${formatPercent(share)} of`;
      const claim =
        lead === 'elbo'
          ? `Less likely under the training data than ${than} held-out training images`
          : lead === 'complexity'
            ? `Less likely under the training data than its complexity explains, more so than for ${than} held-out training images`
            : lead === 'fisher'
              ? `Taken together, the chosen tests find it more unusual than ${than} held-out training images`
              : lead === 'knn' || lead === 'mahalanobis' || lead === 'layers'
              ? `The classifier's features for it are farther from the training images' than for ${than} held-out training images`
              : lead === 'energy'
                ? `The classifier's logits have a higher energy than for ${than} held-out training images`
                : `The classifier is less sure of it than of ${than} held-out training images, although the VAE finds it plausible — typical of blank or simple images unlike the training data`;
      return {
        tone: 'warn',
        headline: 'Out-of-distribution',
        // The number in the sentence is the test's own p-value, named as such; the headline p is the verdict's.
        sentence: `${claim} (${TEST_P_LABEL[lead]} = ${formatP(testP)}). Treat the prediction '${prediction}' as unreliable.`,
        p: r.pValue !== null ? `p = ${formatP(r.pValue)}` : null,
        tests: testLines(r, ctx),
      };
    }
    case 'in-distribution': {
      const p = r.pValue ?? 1;
      let sentence = `Typical of the training data (p = ${formatP(p)}): the prediction '${prediction}' can be trusted as far as the classifier can.`;
      if (r.msp !== null && r.msp < 0.5) sentence += ` The classifier itself is unsure (its top class has ${formatMsp(r.msp)}).`;
      return { tone: 'ok', headline: 'In-distribution', sentence, p: r.pValue !== null ? `p = ${formatP(r.pValue)}` : null, tests: testLines(r, ctx) };
    }
  }
}
