/**
 * One interface per detector, one stated direction (as in pytorch-ood): `oodScore` is higher for images
 * that look more out-of-distribution. Used by `eval`, the reproduction report and the folder report.
 */
import type { ImageResult } from '../engineTypes';
import { type DetectionMetrics, detectionMetrics, rocCurve } from './metrics';

export interface Detector {
  id: 'msp' | 'entropy' | 'energy' | 'elbo' | 'iwBound' | 'complexity' | 'complexityIw' | 'knn' | 'mahalanobis' | 'layers' | 'fisher' | 'combined';
  name: string;
  oodScore(r: ImageResult): number | null;
}

export const DETECTORS: Detector[] = [
  { id: 'msp', name: 'Max softmax probability', oodScore: (r) => (r.msp === null ? null : -r.msp) },
  { id: 'entropy', name: 'Softmax entropy', oodScore: (r) => r.entropy },
  { id: 'energy', name: 'Energy (−logsumexp)', oodScore: (r) => r.energy },
  { id: 'elbo', name: 'ELBO (VAE)', oodScore: (r) => (r.elbo === null ? null : -r.elbo) },
  // Pairs with a split encoder/decoder and `vae.samples` K: the importance-weighted bound on log p(x).
  { id: 'iwBound', name: 'Importance-weighted bound (K samples)', oodScore: (r) => (r.logPxBound === null ? null : -r.logPxBound) },
  { id: 'complexity', name: 'Complexity-corrected S(x)', oodScore: (r) => r.complexityScore },
  {
    id: 'complexityIw',
    name: 'S(x) with the importance-weighted bound',
    oodScore: (r) => (r.logPxBound === null || r.complexityBits === null ? null : -r.logPxBound / Math.LN2 - r.complexityBits),
  },
  { id: 'knn', name: 'KNN feature distance', oodScore: (r) => r.knnDistance ?? null },
  { id: 'mahalanobis', name: 'Mahalanobis feature distance', oodScore: (r) => r.mahalanobis ?? null },
  { id: 'layers', name: 'Earlier-layer feature distance', oodScore: (r) => r.layerDistance ?? null },
  { id: 'fisher', name: 'Fisher combination of the chosen tests', oodScore: (r) => r.fisherScore ?? null },
  {
    id: 'combined',
    name: 'Conformal test (the verdict rule)',
    // The verdict's own adjusted p-value: the smallest p-value over its share of α under the engine's rule
    // (under `both`, twice the smaller of the ELBO and S p-values; under `all`, the classifier's too).
    oodScore: (r) => (r.pValue === null ? null : -r.pValue),
  },
];

/** Collects each detector's scores over a set of results, skipping errors. */
export function detectorScores(results: ImageResult[]): Record<Detector['id'], number[]> {
  const out = Object.fromEntries(DETECTORS.map((d) => [d.id, [] as number[]])) as Record<Detector['id'], number[]>;
  for (const r of results) {
    if (r.verdict === 'error') continue;
    for (const d of DETECTORS) {
      const s = d.oodScore(r);
      if (s !== null && Number.isFinite(s)) out[d.id].push(s);
    }
  }
  return out;
}

export interface DetectorComparison {
  id: Detector['id'];
  name: string;
  metrics: DetectionMetrics;
  /** ROC points, when `compareSets` was asked for them. */
  roc?: { fpr: number; tpr: number }[];
}

export interface SetComparison {
  /** Images scored without error in each set. */
  inCount: number;
  oodCount: number;
  /** The detectors with scores in both sets, in DETECTORS order. */
  detectors: DetectorComparison[];
  /** Fraction of each set (errors left out) that the verdict flags out-of-distribution. */
  falseAlarmRate: number;
  detectionRate: number;
}

/**
 * How well each detector separates an in-distribution set from an OOD one (OOD is the positive class),
 * and how the verdict does on each. `roc`: also the ROC curve, with at most that many points.
 * Used by `eval`, the reproduction report and the folder report's reference comparison.
 */
export function compareSets(inResults: ImageResult[], oodResults: ImageResult[], options: { roc?: number } = {}): SetComparison {
  const a = detectorScores(inResults);
  const b = detectorScores(oodResults);
  const detectors = DETECTORS.filter((d) => a[d.id].length && b[d.id].length).map((d) => {
    const c: DetectorComparison = { id: d.id, name: d.name, metrics: detectionMetrics(a[d.id], b[d.id]) };
    if (options.roc !== undefined) c.roc = rocCurve(a[d.id], b[d.id], options.roc);
    return c;
  });
  const okIn = inResults.filter((r) => r.verdict !== 'error');
  const okOod = oodResults.filter((r) => r.verdict !== 'error');
  const flagged = (rs: ImageResult[]) => rs.filter((r) => r.verdict === 'out-of-distribution').length / Math.max(1, rs.length);
  return { inCount: okIn.length, oodCount: okOod.length, detectors, falseAlarmRate: flagged(okIn), detectionRate: flagged(okOod) };
}
