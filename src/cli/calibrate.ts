/** `ood-lens calibrate`: score held-out in-distribution images and store their score distributions. */
import { readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type Calibration, writeCalibration } from '../inference/pair/calibration';
import { writeFileAtomic } from '../inference/io/atomicFile';
import { OodEngine } from '../inference/engine';
import { pairShares, resolveIn, resolveManifestPath } from '../inference/pair/manifest';
import { resultOodScore } from '../inference/detectors/oodDetectors';
import { builtInPairDir } from '../inference/pair/pair';
import { countsOf, tooSmallProblem } from '../inference/pair/calibrationCheck';
import { FISHER_MIN_HALF, fisherCalibration } from '../inference/fit/fisherTest';
import { confinedPath } from '../inference/io/boundedRead';
import { collect } from './collect';
import { COMMON_OPTIONS, engineOptions, UsageError } from './options';

export async function runCalibrate(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...COMMON_OPTIONS, limit: { type: 'string' }, offset: { type: 'string' }, source: { type: 'string' }, out: { type: 'string' } },
  });
  if (positionals.length === 0) throw new UsageError('calibrate needs a folder or IDX file of held-out in-distribution images');
  const offset = values.offset ? Number(values.offset) : 0;
  const limit = values.limit ? Number(values.limit) : Infinity;
  if (!Number.isInteger(offset) || offset < 0) throw new UsageError('--offset must be a non-negative integer');
  if (!(limit > 0)) throw new UsageError('--limit must be a positive integer');
  const pairLocation = values.pair ?? builtInPairDir();
  const manifestPath = resolveManifestPath(pairLocation);
  // The manifest may only point inside its own folder (a pair must not read files elsewhere).
  if (values.out && confinedPath(dirname(manifestPath), relative(dirname(manifestPath), resolve(values.out))) === null) {
    throw new UsageError(`--out must be a file inside the pair folder ${dirname(manifestPath)} (the manifest may only point at files inside its folder)`);
  }
  // Calibrate from a clean slate: the pair's old calibration must not influence anything.
  // The file the manifest names may not exist yet: calibrate creates it (loading does not require it here).
  const placeholder: Calibration = { version: 1, pair: '', source: '', count: 1, createdAt: '', scores: { elbo: [0], msp: [0] } };
  const engine = await OodEngine.create({ ...engineOptions(values), pair: pairLocation, calibration: placeholder });
  try {
    const results = await collect(engine, positionals, { offset, limit, progress: true });
    const ok = results.filter((r) => r.verdict !== 'error');
    const failed = results.length - ok.length;
    if (ok.length === 0 || (ok.length < 20 && failed > 0)) {
      // Not a usage problem: say why the images failed (the first few reasons), not how to call the command.
      const reasons = [...new Set(results.filter((r) => r.verdict === 'error').map((r) => r.error))].slice(0, 3);
      throw new Error(`only ${ok.length} of ${results.length} images could be scored; calibration needs a few thousand${reasons.length ? `. Why: ${reasons.join('; ')}` : results.length === 0 ? '. No images were found in ' + positionals.join(', ') : ''}`);
    }
    const withVae = !!engine.pair.manifest.vae;
    // As many scores as the rule needs to ever reject at α (the smallest p-value with n scores is 1/(n+1)).
    const withComplexity = ok.every((r) => r.complexityScore !== null);
    // The fisher test (below) is calibrated on half the images, the other half being its reference.
    const withFisher = (engine.pair.manifest.detectors ?? []).some((d) => d.test === 'fisher' && d.share > 0);
    const counts = countsOf((t) => (t === 'fisher' ? (withFisher ? ok.length - Math.floor(ok.length / 2) : 0) : t === 'complexity' ? (withComplexity ? ok.length : 0) : (t === 'elbo' && withVae) || t === 'confidence' || engine.detectors.some((d) => d.test === t) ? ok.length : 0));
    const tooSmall = tooSmallProblem(counts, engine.rule, engine.alpha, pairShares(engine.pair.manifest));
    if (tooSmall) throw new UsageError(`only ${ok.length} images could be scored: ${tooSmall}`);
    const calibration: Calibration = {
      version: 1,
      pair: engine.info.name,
      source: values.source ?? `${positionals.map((p) => basename(p)).join(', ')}${offset || limit !== Infinity ? ` [images ${offset}–${offset + ok.length + failed - 1}]` : ''}`,
      count: ok.length,
      createdAt: new Date().toISOString(),
      compressor: engine.compressor,
      vaeSamples: engine.pair.manifest.vae?.samples ?? 0,
      scores: {
        elbo: withVae ? ok.map((r) => r.elbo!) : [],
        msp: ok.map((r) => r.msp!),
        complexity: withVae && ok.every((r) => r.complexityScore !== null) ? ok.map((r) => r.complexityScore!) : undefined,
      },
    };
    // Every other detector of the pair (energy, KNN, Mahalanobis): its held-out scores, stored its own way.
    for (const d of engine.detectors) {
      if (d.test === 'elbo' || d.test === 'complexity' || d.test === 'confidence') continue;
      const scores = ok.map((r) => resultOodScore(d.test, r));
      if (scores.some((v) => v === null)) continue;
      const { key, values } = d.calibrate(scores as number[]);
      (calibration.scores as unknown as Record<string, number[]>)[key] = values;
    }
    // The fisher test (fit/fisherTest.ts): a new reference half and T's calibration half, over the tests with a
    // share, weighted by them. Without it the pair's fisher share would be left out of every verdict.
    const listed = engine.pair.manifest.detectors ?? [];
    if (withFisher) {
      const members = listed.filter((d) => d.test !== 'fisher' && d.share > 0);
      const fisher = fisherCalibration(ok, members.map((d) => d.test), members.map((d) => d.share), 0);
      if (!fisher) throw new UsageError(`only ${ok.length} images could be scored: the pair's fisher test needs at least ${2 * FISHER_MIN_HALF} (one half for its reference, one for its calibration)`);
      calibration.scores.fisher = fisher.values;
      calibration.fisherReference = fisher.reference;
    }
    const fitSource = engine.pair.featureFit?.source;
    if (fitSource) process.stderr.write(`note: the feature detectors were fitted on ${fitSource}; calibrate on other images (held out from the fit), or their false alarms exceed α\n`);
    // The file the manifest already names (created when missing), else calibration.json beside it.
    const named = engine.pair.manifest.calibration;
    const outPath = values.out ?? (named ? resolveIn(engine.pair, named) : join(manifestPath, '..', 'calibration.json'));
    writeCalibration(outPath, calibration);
    // Point the manifest at it, keeping the rest of the manifest as written.
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    const relative = outPath.startsWith(join(manifestPath, '..') + '/') ? outPath.slice(join(manifestPath, '..').length + 1) : outPath;
    if (manifest.calibration !== relative) {
      manifest.calibration = relative;
      writeFileAtomic(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
    }
    process.stdout.write(`calibrated ${engine.info.name} on ${ok.length} images (${failed} could not be scored) → ${outPath}\n`);
    const quantiles = (name: string, values: number[], digits: number) => {
      if (!values.length) return;
      const sorted = [...values].sort((a, b) => a - b);
      const q = (p: number) => sorted[Math.floor(p * (sorted.length - 1))].toFixed(digits);
      process.stdout.write(`${name}: 1% ${q(0.01)} · 5% ${q(0.05)} · median ${q(0.5)} · 99% ${q(0.99)}\n`);
    };
    quantiles('ELBO (nats)', calibration.scores.elbo, 1);
    if (!withVae) quantiles('MSP', calibration.scores.msp, 4);
    return failed ? 2 : 0;
  } finally {
    await engine.dispose();
  }
}
