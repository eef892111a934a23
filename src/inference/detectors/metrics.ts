/**
 * Detection metrics for scores where higher = more out-of-distribution (OOD is the positive class).
 * AUROC counts ties as half; AUPR is average precision; FPR at 95% TPR follows Hendrycks & Gimpel / ODIN:
 * the fraction of OOD images accepted when the threshold keeps 95% of in-distribution images.
 */

export interface DetectionMetrics {
  auroc: number;
  auprIn: number;
  auprOut: number;
  fprAt95Tpr: number;
}

/** AUROC via the Mann–Whitney U statistic with midranks for ties. */
export function auroc(inScores: number[], oodScores: number[]): number {
  const all = [...inScores.map((s) => ({ s, ood: false })), ...oodScores.map((s) => ({ s, ood: true }))].sort((a, b) => a.s - b.s);
  let rankSumOod = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j].s === all[i].s) j++;
    const midrank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) if (all[k].ood) rankSumOod += midrank;
    i = j;
  }
  const nOod = oodScores.length;
  const nIn = inScores.length;
  return (rankSumOod - (nOod * (nOod + 1)) / 2) / (nOod * nIn);
}

/** Average precision of `positives` against `negatives` (higher score = predicted positive); ties grouped. */
export function averagePrecision(positives: number[], negatives: number[]): number {
  const all = [...positives.map((s) => ({ s, p: true })), ...negatives.map((s) => ({ s, p: false }))].sort((a, b) => b.s - a.s);
  let tp = 0;
  let fp = 0;
  let ap = 0;
  let prevRecall = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j].s === all[i].s) {
      if (all[j].p) tp++;
      else fp++;
      j++;
    }
    const recall = tp / positives.length;
    ap += (recall - prevRecall) * (tp / (tp + fp));
    prevRecall = recall;
    i = j;
  }
  return ap;
}

export function fprAtTpr(inScores: number[], oodScores: number[], tpr = 0.95): number {
  // Threshold: the smallest t with at least `tpr` of in-distribution scores ≤ t (accepted).
  const sorted = [...inScores].sort((a, b) => a - b);
  const t = sorted[Math.min(sorted.length - 1, Math.ceil(tpr * sorted.length) - 1)];
  return oodScores.filter((s) => s <= t).length / oodScores.length;
}

export function detectionMetrics(inScores: number[], oodScores: number[]): DetectionMetrics {
  return {
    auroc: auroc(inScores, oodScores),
    auprOut: averagePrecision(oodScores, inScores),
    auprIn: averagePrecision(inScores.map((s) => -s), oodScores.map((s) => -s)),
    fprAt95Tpr: fprAtTpr(inScores, oodScores),
  };
}

/** Points of the ROC curve (false positive rate, true positive rate), at most `maxPoints` of them. */
export function rocCurve(inScores: number[], oodScores: number[], maxPoints = 200): { fpr: number; tpr: number }[] {
  const all = [...inScores.map((s) => ({ s, ood: false })), ...oodScores.map((s) => ({ s, ood: true }))].sort((a, b) => b.s - a.s);
  const points = [{ fpr: 0, tpr: 0 }];
  let tp = 0;
  let fp = 0;
  const step = Math.max(1, Math.floor(all.length / maxPoints));
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j].s === all[i].s) {
      if (all[j].ood) tp++;
      else fp++;
      j++;
    }
    if (points.length === 0 || j - 1 >= points.length * step || j === all.length) points.push({ fpr: fp / inScores.length, tpr: tp / oodScores.length });
    i = j;
  }
  return points;
}
