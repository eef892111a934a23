/**
 * The engine worker's `fit` request: runs `fitPair` (src/inference/fit.ts) with progress and an AbortSignal,
 * then turns its result and the calibration it wrote into the FitReport the Create Pair panel shows.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { OodEngine, type ScoreInput } from '../inference/engine';
import { idxImages, type IdxImages, readIdxFile } from '../inference/io/idx';
import { vaeTrainingLine } from '../inference/pair/fitRecords';
import { calibrationValues, decideTests, readCalibration } from '../inference/pair/calibration';
import { FitError, type FitResult, fitPair, type ManifestReader } from '../inference/fit/fit';
import { parseManifest } from '../providers/datasetManifest';
import { type AlphaShares, TEST_NAMES, type VerdictRule } from '../shared/rules';
import type { FitEvent, FitRequest } from '../shared/engineProtocol';
import { type FitReport, type ScoreHistogram, scoreHistogram, testOfScore, type VaeSample } from '../shared/fitReport';

/** Dataset manifests for the data step, read with the extension's own parser (as `ood-lens fit` does). */
export const readManifest: ManifestReader = async (path, format, signal) => {
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
    classes: result.manifest.classifier.labels?.length,
    ...(result.manifest.vae ? { vae: { training: trainingOf(result), samples: [] } } : {}),
  };
}

function trainingOf(result: FitResult): NonNullable<FitReport['vae']>['training'] {
  const t = result.manifest.vae?.training;
  return t ? { line: vaeTrainingLine(t), epochs: t.epochs, lossCurve: t.lossCurve, heldOutElbo: t.heldOutElbo, seconds: t.seconds } : null;
}

/**
 * The held-out check part's first `count` images (split.json), as score inputs: files, or IDX images by index
 * ("file#i"). split.json names them relative to the data folder when the data was one folder.
 */
export function heldOutInputs(pairFolder: string, count: number): ScoreInput[] {
  const split = JSON.parse(readFileSync(join(pairFolder, 'split.json'), 'utf8')) as { data?: string[]; parts?: { check?: string[] } };
  const base = split.data?.length === 1 ? split.data[0] : pairFolder;
  const idx = new Map<string, IdxImages>();
  return (split.parts?.check ?? []).slice(0, count).map((name) => {
    const path = resolve(base, name);
    const m = /^(.*)#(\d+)$/.exec(path);
    if (!m) return { path };
    let images = idx.get(m[1]);
    if (!images) idx.set(m[1], (images = idxImages(readIdxFile(m[1]), m[1])));
    return { path, source: { width: images.width, height: images.height, channels: 1, data: images.image(Number(m[2])) } };
  });
}

/**
 * The new pair's VAE on a few held-out check images: each as the VAE sees it beside its reconstruction, for the
 * result panel (the reconstruction shows at once whether the VAE learnt the images' shapes or only a blur).
 */
export async function vaeSamples(report: FitReport, encodePng: (pixels: Uint8Array, width: number, height: number, channels: 1 | 3) => Promise<string>, count = 4): Promise<VaeSample[]> {
  // A handful of images: no preprocessing workers, one onnxruntime thread.
  const engine = await OodEngine.create({ pair: report.pairFolder, provider: 'cpu', preprocessWorkers: 0, threads: 1, spinning: false });
  try {
    const samples: VaeSample[] = [];
    const problems: string[] = [];
    for (const input of heldOutInputs(report.pairFolder, count)) {
      const r = await engine.scoreOne(input);
      const d = r.details;
      if (!d?.reconstruction) {
        problems.push(`${input.path}: ${r.error ?? 'the VAE gave no reconstruction'}`);
        continue;
      }
      const v = d.vaeInput ?? d.modelInput;
      const channels = v.channels as 1 | 3;
      samples.push({ path: input.path, width: v.width, height: v.height, elbo: r.elbo, inputPng: await encodePng(v.pixels, v.width, v.height, channels), reconstructionPng: await encodePng(d.reconstruction, v.width, v.height, channels) });
    }
    // None at all is said, never left blank: the panel shows why.
    if (!samples.length && problems.length) throw new Error(problems[0]);
    return samples;
  } finally {
    await engine.dispose();
  }
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
