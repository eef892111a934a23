/**
 * The engine worker (worker_threads): holds one OodEngine and answers the requests of
 * src/shared/engineProtocol.ts. Runs off the extension host's main thread, so loading a pair or scoring a
 * folder never blocks typing. Nothing throws out of here: every failure becomes an `error` response (or,
 * for an image, an ImageResult with verdict "error") whose message names the file and the problem.
 */
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { type ImageResult, OodEngine } from '../inference/engine';
import { resolveIn } from '../inference/pair/manifest';
import { inspectModel } from '../inference/fit/modelInspection';
import { previewInput, sampleImageSizes } from '../inference/fit/preview';
import type { CalibrationHistogram, EngineConfig, EnginePairInfo, FitRequest, InspectResult, PreviewResult, ScoreManySummary, WorkerRequest, WorkerResponse } from '../shared/engineProtocol';
import { blindConfidenceWarning, firingThreshold, type FitReport } from '../shared/fitReport';
import { readManifest, runFitJob, vaeSamples } from './fitJob';

type Post = (message: WorkerResponse) => void;

/** Magma-like colour map stops (dark = no error, bright = large error): perceptually ordered, colour-blind safe. */
const HEAT_STOPS: [number, number, number, number][] = [
  [0, 0, 0, 4],
  [0.25, 80, 18, 123],
  [0.5, 182, 54, 121],
  [0.75, 251, 136, 97],
  [1, 252, 253, 191],
];

export function heatColour(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, t));
  for (let i = 1; i < HEAT_STOPS.length; i++) {
    const [t1, r1, g1, b1] = HEAT_STOPS[i];
    if (x <= t1) {
      const [t0, r0, g0, b0] = HEAT_STOPS[i - 1];
      const f = (x - t0) / (t1 - t0);
      return [Math.round(r0 + f * (r1 - r0)), Math.round(g0 + f * (g1 - g0)), Math.round(b0 + f * (b1 - b0))];
    }
  }
  const last = HEAT_STOPS[HEAT_STOPS.length - 1];
  return [last[1], last[2], last[3]];
}

/**
 * Per-pixel |input − reconstruction| (mean over channels), coloured with a fixed scale (0 → 255 maps onto
 * the whole colour map) so that heatmaps of different images compare. Returns RGB, H×W×3.
 */
export function errorHeatmap(input: Uint8Array, reconstruction: Uint8Array, width: number, height: number, channels: number): Uint8Array {
  const plane = width * height;
  if (input.length !== plane * channels || reconstruction.length !== plane * channels) {
    throw new Error(`heatmap: input has ${input.length} values and the reconstruction ${reconstruction.length}; expected ${plane * channels}`);
  }
  const out = new Uint8Array(plane * 3);
  for (let q = 0; q < plane; q++) {
    let err = 0;
    for (let c = 0; c < channels; c++) err += Math.abs(input[q * channels + c] - reconstruction[q * channels + c]);
    const [r, g, b] = heatColour(err / channels / 255);
    out[q * 3] = r;
    out[q * 3 + 1] = g;
    out[q * 3 + 2] = b;
  }
  return out;
}

export async function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3): Promise<string> {
  let image = sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), { raw: { width, height, channels } });
  // Without this sharp writes one-channel input as RGB.
  if (channels === 1) image = image.toColourspace('b-w');
  const buffer = await image.png({ compressionLevel: 6 }).toBuffer();
  return buffer.toString('base64');
}

function quantile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Histogram of calibration values (any order); bin count by the Rice rule, 10–60 bins. */
export function calibrationHistogram(values: readonly number[]): CalibrationHistogram | null {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (!finite.length) return null;
  const bins = Math.min(60, Math.max(10, Math.round(2 * Math.cbrt(finite.length))));
  let min = finite[0];
  let max = finite[finite.length - 1];
  if (max - min < 1e-9) {
    min -= 0.5;
    max += 0.5;
  }
  const binWidth = (max - min) / bins;
  const counts = new Array<number>(bins).fill(0);
  for (const v of finite) counts[Math.min(bins - 1, Math.floor((v - min) / binWidth))]++;
  return { min, max, binWidth, counts, count: finite.length, p01: quantile(finite, 0.01), p50: quantile(finite, 0.5), p99: quantile(finite, 0.99) };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class EngineServer {
  private engine?: OodEngine;
  private loadError?: Error;
  /** Settles when the current configure has finished (successfully or not). */
  private loading: Promise<void> = Promise.resolve();
  private configured = false;
  private readonly jobs = new Map<number, { controller: AbortController; finished: Promise<void> }>();
  /** Running fits: independent of the loaded pair, so a configure does not stop them (shutdown does). */
  private readonly fits = new Map<number, { controller: AbortController; finished: Promise<unknown> }>();

  constructor(private readonly post: Post) {}

  /** Handles one request; always answers, never throws. */
  async handle(request: WorkerRequest): Promise<void> {
    try {
      switch (request.kind) {
        case 'configure':
          this.reply(request.id, await this.configure(request.config));
          return;
        case 'info':
          this.reply(request.id, this.pairInfo(await this.ready()));
          return;
        case 'inspect':
          this.reply(request.id, await this.inspect(await this.ready(), request.path));
          return;
        case 'scoreMany':
          this.reply(request.id, await this.scoreMany(request.id, await this.ready(), request.paths));
          return;
        case 'inspectModel':
          this.reply(request.id, await inspectModel(request.path, request.options));
          return;
        case 'sampleData':
          this.reply(request.id, await sampleImageSizes(request.data, { readManifest }));
          return;
        case 'preview': {
          const { modelInput, ...rest } = await previewInput(request.request, readManifest);
          const preview: PreviewResult = { ...rest, width: modelInput.width, height: modelInput.height, channels: modelInput.channels, modelInputPng: await encodePng(modelInput.pixels, modelInput.width, modelInput.height, modelInput.channels) };
          this.reply(request.id, preview);
          return;
        }
        case 'fit':
          this.reply(request.id, await this.fit(request.id, request.options));
          return;
        case 'shutdown':
          await this.shutdown();
          this.reply(request.id, true);
          return;
        case 'cancel': {
          const job = this.jobs.get(request.target) ?? this.fits.get(request.target);
          job?.controller.abort();
          this.reply(request.id, !!job);
          return;
        }
        default:
          this.post({ id: (request as { id: number }).id ?? 0, kind: 'error', message: `unknown request kind "${(request as { kind: string }).kind}"` });
      }
    } catch (err) {
      this.post({ id: request.id, kind: 'error', message: message(err), name: err instanceof Error ? err.name : undefined });
    }
  }

  private async shutdown(): Promise<void> {
    for (const fit of this.fits.values()) fit.controller.abort();
    await Promise.allSettled([...this.fits.values()].map((f) => f.finished));
    await this.loading;
    for (const job of this.jobs.values()) job.controller.abort();
    await Promise.allSettled([...this.jobs.values()].map((j) => j.finished));
    const engine = this.engine;
    this.engine = undefined;
    this.configured = false;
    await engine?.dispose().catch((err) => this.log('warn', `disposing the pair: ${message(err)}`));
  }

  private reply(id: number, value: unknown): void {
    this.post({ id, kind: 'ok', value });
  }

  private log(level: 'trace' | 'info' | 'warn' | 'error', text: string): void {
    this.post({ id: 0, kind: 'log', level, message: text });
  }

  private async ready(): Promise<OodEngine> {
    await this.loading;
    if (this.engine) return this.engine;
    if (this.loadError) {
      const err = new Error(`the pair could not be loaded: ${this.loadError.message}`);
      err.name = this.loadError.name;
      throw err;
    }
    throw new Error(this.configured ? 'the engine has no pair loaded' : 'the engine is not configured yet (no configure request)');
  }

  private async configure(config: EngineConfig): Promise<EnginePairInfo> {
    const previous = this.loading;
    let done!: () => void;
    this.loading = new Promise<void>((resolve) => (done = resolve));
    try {
      await previous;
      // Running folder scans belong to the old pair: stop them (they resolve with what they scored).
      for (const job of this.jobs.values()) job.controller.abort();
      await Promise.allSettled([...this.jobs.values()].map((j) => j.finished));
      const old = this.engine;
      this.engine = undefined;
      this.loadError = undefined;
      this.configured = true;
      if (old) await old.dispose().catch((err) => this.log('warn', `disposing the previous pair: ${message(err)}`));
      const started = Date.now();
      try {
        this.engine = await OodEngine.create({ pair: config.pair || undefined, provider: config.provider, alpha: config.alpha, rule: config.rule, batchSize: config.batchSize, onNotice: (m) => this.log('warn', m) });
      } catch (err) {
        this.loadError = err instanceof Error ? err : new Error(String(err));
        throw err;
      }
      const info = this.pairInfo(this.engine);
      const t = this.engine.loadTimings;
      this.log('info', `loaded pair "${info.name}" from ${info.manifestPath} (${info.backend}, ${info.provider}) in ${Date.now() - started} ms (models, calibration and feature files ${t.pair} ms, compressor ${t.compressor} ms, checks ${t.checks} ms, detectors ${t.detectors} ms)${info.calibrated ? `; calibrated on ${info.calibrationCount} images` : '; not calibrated'}`);
      if (config.provider === 'auto' && !/cuda/i.test(info.provider)) this.log('info', 'execution provider "auto": CUDA is not available here, running on CPU');
      return info;
    } finally {
      done();
    }
  }

  private pairInfo(engine: OodEngine): EnginePairInfo {
    const pair = engine.pair;
    const m = pair.manifest;
    const files = [pair.manifestPath, m.classifier.path, m.vae?.path, m.vae?.encoder?.path, m.vae?.decoder?.path, m.calibration]
      .filter((p): p is string => !!p)
      .map((p, i) => (i === 0 ? p : resolveIn(pair, p)));
    const info = engine.info;
    const scores = pair.calibration?.scores;
    const shares = info.shares ?? {};
    // The confidence test fires below the MSP at its share of α: near 1/K (two classes) it can hardly fire.
    const confidenceShare = shares.confidence ?? 0;
    const blind = scores?.msp.length ? blindConfidenceWarning(firingThreshold([...scores.msp].sort((a, b) => a - b), confidenceShare * info.alpha, 'low'), confidenceShare, info.labels.length, { count: scores.msp.length, alpha: info.alpha }) : null;
    return {
      ...info,
      calibrationElbo: scores ? calibrationHistogram(scores.elbo) : null,
      calibrationKnn: scores?.knn?.length ? calibrationHistogram(scores.knn) : null,
      hasVae: !!m.vae,
      warnings: blind ? [blind] : [],
      files: [...new Set(files)],
      description: m.description ?? null,
    };
  }

  private async inspect(engine: OodEngine, path: string): Promise<InspectResult> {
    const result = await engine.scoreOne({ path });
    const { details, ...rest } = result;
    const out: InspectResult = { ...rest };
    if (!details) return out;
    out.probabilities = details.probabilities;
    const { width, height, channels, pixels } = details.modelInput;
    const reconstruction = details.reconstruction;
    try {
      out.modelInputPng = await encodePng(pixels, width, height, channels);
      // A classifier-only pair has no reconstruction (and so no error heatmap). The reconstruction and the
      // heatmap are at the VAE's own size, against the image the VAE saw (its own when it differs).
      if (reconstruction) {
        const v = details.vaeInput ?? details.modelInput;
        [out.reconstructionPng, out.errorHeatmapPng] = await Promise.all([
          encodePng(reconstruction, v.width, v.height, v.channels),
          encodePng(errorHeatmap(v.pixels, reconstruction, v.width, v.height, v.channels), v.width, v.height, 3),
        ]);
      }
    } catch (err) {
      // The scores stand; only the pictures are missing.
      this.log('warn', `${path}: could not encode the inspection images: ${message(err)}`);
    }
    return out;
  }

  private async fit(id: number, options: FitRequest): Promise<FitReport> {
    const controller = new AbortController();
    const run = runFitJob(options, controller.signal, (event) => this.post({ id, kind: 'fitProgress', event }));
    this.fits.set(id, { controller, finished: run.catch(() => undefined) });
    try {
      const report = await run;
      if (report.vae) {
        // The panel's reconstructions: the pair is written, so a failure here only leaves them out (said in the panel).
        try {
          report.vae.samples = await vaeSamples(report, encodePng);
        } catch (err) {
          report.vae.samplesError = message(err);
          this.log('warn', `the new pair's VAE reconstructions could not be made: ${message(err)}`);
        }
      }
      return report;
    } finally {
      this.fits.delete(id);
    }
  }

  private async scoreMany(id: number, engine: OodEngine, paths: string[]): Promise<ScoreManySummary> {
    const controller = new AbortController();
    let finish!: () => void;
    this.jobs.set(id, { controller, finished: new Promise<void>((resolve) => (finish = resolve)) });
    const started = Date.now();
    const total = paths.length;
    let done = 0;
    let buffer: ImageResult[] = [];
    let lastPost = Date.now();
    const flush = () => {
      if (!buffer.length) return;
      this.post({ id, kind: 'progress', done, total, results: buffer });
      buffer = [];
      lastPost = Date.now();
    };
    try {
      await engine.scoreAll(
        paths.map((path) => ({ path })),
        (result) => {
          delete result.details;
          buffer.push(result);
          done++;
          // One progress message per batch (or at least every half second when batches are slow).
          if (buffer.length >= engine.batchSize || Date.now() - lastPost > 500) flush();
        },
        { signal: controller.signal },
      );
      flush();
      return { done, total, cancelled: controller.signal.aborted && done < total, seconds: (Date.now() - started) / 1000 };
    } finally {
      this.jobs.delete(id);
      finish();
    }
  }
}

if (parentPort) {
  const port = parentPort;
  const post: Post = (m) => {
    try {
      port.postMessage(m);
    } catch (err) {
      port.postMessage({ id: m.id, kind: 'error', message: `could not send the answer: ${message(err)}` } satisfies WorkerResponse);
    }
  };
  // EngineHost passes the time it started the thread: from then to here, the thread started and this bundle and its native modules (sharp) loaded.
  const spawnedAt = (workerData as { spawnedAt?: unknown } | null)?.spawnedAt;
  if (typeof spawnedAt === 'number') post({ id: 0, kind: 'log', level: 'info', message: `engine worker running ${Date.now() - spawnedAt} ms after it was started (thread, code and native modules)` });
  const server = new EngineServer(post);
  port.on('message', (request: WorkerRequest) => {
    void server.handle(request);
  });
  process.on('unhandledRejection', (reason) => post({ id: 0, kind: 'log', level: 'error', message: `unhandled rejection in the engine worker: ${reason instanceof Error ? reason.stack ?? reason.message : String(reason)}` }));
  process.on('uncaughtException', (err) => post({ id: 0, kind: 'log', level: 'error', message: `uncaught exception in the engine worker: ${err.stack ?? err.message}` }));
}
