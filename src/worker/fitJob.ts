/**
 * The engine worker's `fit` request: runs `fitPair` (src/inference/fit.ts) with progress and an AbortSignal,
 * then turns its result and the calibration it wrote into the FitReport the Create Pair panel shows.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { calibrationValues, decideTests, readCalibration } from '../inference/pair/calibration';
import { FitError, type FitResult, fitPair, type ManifestReader } from '../inference/fit/fit';
import { parseManifest } from '../providers/datasetManifest';
import { type AlphaShares, TEST_NAMES, type VerdictRule } from '../shared/rules';
import type { FitEvent, FitRequest } from '../shared/engineProtocol';
import { type FitReport, type ScoreHistogram, scoreHistogram, testOfScore } from '../shared/fitReport';

/** Dataset manifests for the data step, read with the extension's own parser (as `ood-lens fit` does). */
const readManifest: ManifestReader = async (path, format, signal) => {
  const parsed = await parseManifest(readFileSync(path, 'utf8'), { format, baseDir: dirname(path), signal });
  if (!parsed.isManifest) throw new FitError(`${path}: no column of image paths found in this ${format} file`);
  return parsed.rows.filter((r) => r.path !== null).map((r) => ({ path: r.path!, label: r.label }));
};

/** Histograms of every calibrated score, with each test's firing threshold under the pair's rule (default: its detector list). */
export function fitReportOf(result: FitResult, rule: VerdictRule = 'pair'): FitReport {
  const pairFolder = dirname(result.manifestPath);
  const calibrationFile = join(pairFolder, result.manifest.calibration ?? 'calibration.json');
  const calibration = readCalibration(calibrationFile);
  const scores = calibration.scores as unknown as Record<string, number[] | undefined>;
  const pairShares: AlphaShares | undefined = result.manifest.detectors?.length ? Object.fromEntries(result.manifest.detectors.map((d) => [d.test, d.share])) : undefined;
  // The thresholds the verdict applies (share × α per test, from any finite score), so the panel never disagrees with it.
  const thresholds = decideTests(calibration, Object.fromEntries(TEST_NAMES.map((t) => [t, 0])), result.alpha, rule, pairShares).thresholds as Record<string, number | undefined>;
  // Held-out check scores (OOD scores per test) in the calibration file's own form (key, MSP and ELBO un-negated),
  // so that both parts share one axis.
  const checkScores: Record<string, number[]> = Object.fromEntries(result.heldOutScores.map((h) => {
    const stored = calibrationValues(h.detector, h.check);
    return [stored.key, stored.values];
  }));
  const histograms: ScoreHistogram[] = [];
  for (const [score, values] of Object.entries(scores)) {
    if (!Array.isArray(values) || !values.length) continue;
    const t = thresholds[testOfScore(score)];
    const h = scoreHistogram(score, values, checkScores[score] ?? null, t === undefined ? 0 : t / result.alpha, result.alpha);
    if (h) histograms.push(h);
  }
  // The check images actually scored (failed ones are left out of the rate).
  const checkImages = result.heldOutScores[0]?.check.length ?? result.parts.check;
  return {
    name: result.manifest.name,
    manifestPath: result.manifestPath,
    pairFolder,
    alpha: result.alpha,
    checkImages,
    falseAlarms: result.checkOod,
    falseAlarmRate: result.heldOutFalseAlarmRate,
    heldOutAccuracy: result.heldOutAccuracy,
    parts: result.parts,
    failed: result.failed,
    failures: result.failures,
    decisions: result.decisions,
    seconds: result.seconds,
    classifierOnly: !result.manifest.vae,
    histograms,
  };
}

export async function runFitJob(options: FitRequest, signal: AbortSignal, emit: (event: FitEvent) => void): Promise<FitReport> {
  let lastScoring = 0;
  const result = await fitPair({
    ...options,
    readManifest,
    signal,
    onDecision: (line) => emit({ type: 'decision', line }),
    onNotice: (message) => emit({ type: 'notice', message }),
    onProgress: (progress) => {
      // Scoring reports every 256 images; other phases once each. At most ~4 messages a second cross threads.
      const now = Date.now();
      if (progress.phase === 'scoring' && progress.done < progress.total && now - lastScoring < 250) return;
      if (progress.phase === 'scoring') lastScoring = now;
      emit({ type: 'progress', progress });
    },
  });
  return fitReportOf(result);
}
