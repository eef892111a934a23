/**
 * One interface per detector, one stated direction (as in pytorch-ood): `oodScore` is higher for images
 * that look more out-of-distribution. Used by `eval`, the reproduction report and the folder report.
 */
import type { ImageResult } from './engine';

export interface Detector {
  id: 'msp' | 'entropy' | 'energy' | 'elbo' | 'complexity' | 'combined';
  name: string;
  oodScore(r: ImageResult): number | null;
}

export const DETECTORS: Detector[] = [
  { id: 'msp', name: 'Max softmax probability', oodScore: (r) => (r.msp === null ? null : -r.msp) },
  { id: 'entropy', name: 'Softmax entropy', oodScore: (r) => r.entropy },
  { id: 'energy', name: 'Energy (−logsumexp)', oodScore: (r) => r.energy },
  { id: 'elbo', name: 'ELBO (VAE)', oodScore: (r) => (r.elbo === null ? null : -r.elbo) },
  { id: 'complexity', name: 'Complexity-corrected S(x)', oodScore: (r) => r.complexityScore },
  {
    id: 'combined',
    name: 'Two-score conformal test',
    // Smaller of the two p-values (each calibrated); ties broken by the raw scores' ranks is unnecessary here.
    oodScore: (r) => (r.pValues.elbo === null || r.pValues.complexity === null ? null : -Math.min(r.pValues.elbo, r.pValues.complexity)),
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
