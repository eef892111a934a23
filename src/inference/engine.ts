/**
 * The engine behind every surface (CLI, extension worker, benchmarks): image → preprocess → classifier
 * and VAE in batches → scores → calibrated verdict. One call per image or a streamed folder.
 */
import { type Calibration, decide, type TestName, type Verdict, type VerdictRule } from './calibration';
import { type Compressor, complexityBits, complexityCorrectedScore, loadCompressor } from './complexity';
import type { ExecutionProviderSetting, FloatTensor } from './backends/types';
import { type Layout, pairCompressor, resolveIn } from './manifest';
import { tooSmallProblem } from './calibrationCheck';
import { builtInPairDir, disposePair, type LoadedPair, loadPair } from './pair';
import { availableParallelism } from 'node:os';
import { prepareBatch } from './fastpath';
import { PreprocessPool } from './preprocessPool';
import type { ShardEngineOptions, WorkItem } from './preprocessWorker';
import { DEFAULT_MAX_INPUT_PIXELS, ImageDecodeError, type ImageSource, isRawImage, readChecked, readCheckedSync, type ModelImage, type RawImage, toTensorData } from './preprocess';
import { ScoringShards } from './scoringShards';
import * as S from './scores';

export interface EngineOptions {
  /** Pair folder or manifest; default: the built-in MNIST pair. */
  pair?: string;
  provider?: ExecutionProviderSetting;
  alpha?: number;
  rule?: VerdictRule;
  batchSize?: number;
  /** onnxruntime intra-op threads per model (0 = runtime default). */
  threads?: number;
  /** onnxruntime threads spin while idle (default: not while preprocessing workers need the cores). */
  spinning?: boolean;
  /**
   * How scoreAll uses the cores:
   *  - `sharded` (default for ONNX pairs on the CPU with 2+ cores): one scoring shard per core (up to 4),
   *    each a worker thread with its own single-threaded copy of the models that scores whole batches;
   *    started by the first input of more than 16 batches (smaller ones are scored here, without the shards'
   *    start-up), then used for every input.
   *  - `overlapped` (default otherwise: CUDA, TensorFlow.js): the models run on this thread with every core,
   *    while preprocessing workers prepare the next batch;
   *  - `phased`: as overlapped, but the workers prepare only while the models are not running.
   * BENCHMARKS.md measures all three.
   */
  pipeline?: Pipeline;
  /** Scoring shards for the `sharded` pipeline (default: one per core, up to 4). */
  shards?: number;
  maxInputPixels?: number;
  /** Largest file read, in bytes (a guard before decoding). */
  maxFileBytes?: number;
  /** Use this calibration instead of the pair's own (used by `calibrate` and `eval`). */
  calibration?: Calibration;
  /** Skip the complexity score (it costs one PNG encode per image). */
  complexity?: boolean;
  /**
   * Worker threads that read, decode and resize folders while the models run (onnxruntime-node runs
   * inference synchronously on this thread). Default one per core, up to 4, on machines with 2+ cores;
   * 0 = all in-process.
   */
  preprocessWorkers?: number;
  /**
   * Told (once per distinct message) when scoring carries on in a slower way than asked: the scoring shards
   * could not start, or a shard failed a batch that was then scored here. Results are unaffected.
   */
  onNotice?: (message: string) => void;
}

export interface ScoreDetails {
  /** The 8-bit image the models saw (after resize/inversion), H×W×C. */
  modelInput: ModelImage;
  /** The decoder's mean image, 8-bit, same shape as modelInput. */
  reconstruction: Uint8Array;
  probabilities: number[];
}

export interface ImageResult {
  path: string;
  prediction: number | null;
  label: string | null;
  msp: number | null;
  entropy: number | null;
  energy: number | null;
  elbo: number | null;
  reconstructionLogLik: number | null;
  kl: number | null;
  elboBitsPerDim: number | null;
  /** Importance-weighted bound on log p(x) (nats) with K posterior samples; split VAEs only. */
  logPxBound: number | null;
  complexityBits: number | null;
  complexityScore: number | null;
  pValue: number | null;
  pValues: { elbo: number | null; complexity: number | null; confidence: number | null };
  firedBy: TestName[];
  verdict: Verdict;
  error: string | null;
  details?: ScoreDetails;
}

export interface PairInfo {
  name: string;
  manifestPath: string;
  backend: string;
  provider: string;
  calibrated: boolean;
  calibrationCount: number;
  calibrationSource: string | null;
  labels: string[];
  input: { width: number; height: number; channels: number };
  alpha: number;
  rule: VerdictRule;
}

/** `error`: the input could not even be listed or parsed (a folder that cannot be read, an IDX archive that is truncated); it becomes that path's error record. */
export type ScoreInput = { path: string; source?: ImageSource; error?: string };

export type Pipeline = 'sharded' | 'overlapped' | 'phased';

/**
 * Up to this many batches an input is scored in-process unless the shards already run: starting them (a
 * worker, onnxruntime and the pair each, ~0.3 s on 2 cores) costs about what they save on ~1,000 MNIST-size
 * images. (Starting them in the background while the first batches are scored here was measured slower and
 * 50–80 MB larger at peak: the two compete for the cores and both hold their buffers.)
 */
const SHARD_MIN_BATCHES = 16;

/** An input as a worker receives it: a path to read there, or the bytes or pixels themselves. */
function workItem(input: ScoreInput): WorkItem {
  if (input.error !== undefined) return { path: input.path, error: input.error };
  if (!input.source) return { path: input.path };
  return isRawImage(input.source) ? { path: input.path, raw: input.source } : { path: input.path, bytes: new Uint8Array(input.source) };
}

/** An in-memory input's bytes or pixels (no copy). */
function inMemory(source: ImageSource): Uint8Array | RawImage {
  return isRawImage(source) ? source : new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
}

function errorResult(path: string, message: string): ImageResult {
  return {
    path,
    prediction: null,
    label: null,
    msp: null,
    entropy: null,
    energy: null,
    elbo: null,
    reconstructionLogLik: null,
    kl: null,
    elboBitsPerDim: null,
    logPxBound: null,
    complexityBits: null,
    complexityScore: null,
    pValue: null,
    pValues: { elbo: null, complexity: null, confidence: null },
    firedBy: [],
    verdict: 'error',
    error: message,
  };
}

/**
 * Scores calibrated one way cannot be compared with scores computed another (another compressor, another
 * ELBO estimate): refuse the mix with a message that says how to fix it.
 */
function checkCalibrationMatches(pair: LoadedPair, compressor: Compressor): void {
  const cal = pair.calibration;
  const samples = pair.manifest.vae.samples ?? 0;
  // A sampled ELBO sits below the posterior-mean one: compared with the other's calibration, false alarms
  // drift (measured 1.4% instead of 0.88% at α = 0.01 with K = 16 on the MNIST pair).
  if (cal?.vaeSamples !== undefined && cal.vaeSamples !== samples) {
    const what = (k: number) => (k ? `${k} posterior samples` : 'the posterior mean');
    throw new Error(`${pair.manifestPath}: the calibration's ELBOs were computed at ${what(cal.vaeSamples)}, but the manifest's vae.samples asks for ${what(samples)}; run \`ood-lens calibrate\` again`);
  }
  if (!cal?.scores.complexity?.length) return;
  const calibrated = cal.compressor ?? 'png';
  if (calibrated !== compressor) {
    throw new Error(`${pair.manifestPath}: the calibration's complexity scores were computed with ${calibrated}, but the manifest's complexity.compressor is ${compressor}; run \`ood-lens calibrate\` again`);
  }
}

/**
 * A calibration too small for the rule to ever reject at α (the smallest p-value is 1/(n+1)) would call
 * every image in-distribution: refuse the pair, naming the minimum.
 */
function checkCalibrationCanReject(pair: LoadedPair, rule: VerdictRule, alpha: number): void {
  const cal = pair.calibration;
  if (!cal) return;
  const problem = tooSmallProblem({ elbo: cal.scores.elbo.length, complexity: cal.scores.complexity?.length, msp: cal.scores.msp?.length }, rule, alpha);
  if (problem) throw new Error(`${pair.manifest.calibration ? resolveIn(pair, pair.manifest.calibration) : pair.manifestPath}: ${problem}`);
}

/** Small deterministic PRNG (mulberry32) + Box–Muller: the same posterior samples for every run. */
function gaussianStream(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const u = Math.max(uniform(), 1e-12);
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/** Milliseconds spent per stage since the engine was created (stages overlap in time when pipelined). */
export interface StageTimings {
  read: number;
  preprocess: number;
  classifier: number;
  vae: number;
  complexity: number;
  scoring: number;
}

interface ModelOutputs {
  classifierOut: Record<string, FloatTensor>;
  vaeOut: Awaited<ReturnType<OodEngine['runVae']>>;
  bits: number[] | null;
}

export class OodEngine {
  readonly timings: StageTimings = { read: 0, preprocess: 0, classifier: 0, vae: 0, complexity: 0, scoring: 0 };
  readonly alpha: number;
  readonly rule: VerdictRule;
  readonly batchSize: number;
  private readonly maxInputPixels: number;
  private readonly maxFileBytes: number;
  private readonly useComplexity: boolean;
  private pool?: PreprocessPool;
  private readonly preprocessWorkers: number;
  /** The compressor behind L(x), from the pair manifest. */
  readonly compressor: Compressor;
  readonly pipeline: Pipeline;
  private readonly shardCount: number;
  private readonly shardOptions: ShardEngineOptions;
  private shardsReady?: Promise<ScoringShards | null>;
  /** Batches scored by `scoreAll` on the scoring shards and on this thread, for diagnostics and benchmarks. */
  readonly batchCounts = { shards: 0, here: 0 };
  /** Why the scoring shards could not start (scoring then runs in-process), for diagnostics. */
  shardFailure: string | null = null;
  private readonly onNotice?: (message: string) => void;
  private readonly noticesGiven = new Set<string>();

  private shards: ScoringShards | null = null;
  /** The input spec maps pixels to [0, 1] unnormalised: the VAE's feed is then the likelihood's target. */
  private readonly unitInput: boolean;

  private constructor(readonly pair: LoadedPair, options: EngineOptions & { pipeline: Pipeline; preprocessWorkers: number }) {
    this.alpha = options.alpha ?? 0.01;
    this.rule = options.rule ?? 'all';
    this.batchSize = Math.max(1, options.batchSize ?? 64);
    this.maxInputPixels = options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
    this.maxFileBytes = options.maxFileBytes ?? 256 * 1024 * 1024;
    this.useComplexity = options.complexity ?? true;
    this.compressor = pairCompressor(pair.manifest);
    const { range = [0, 1], mean, std } = pair.manifest.input;
    this.unitInput = range[0] === 0 && range[1] === 1 && !mean && !std;
    this.pipeline = options.pipeline;
    this.preprocessWorkers = options.preprocessWorkers;
    this.shardCount = Math.max(1, options.shards ?? Math.min(availableParallelism(), 4));
    this.onNotice = options.onNotice;
    this.shardOptions = {
      pair: pair.manifestPath,
      alpha: this.alpha,
      rule: this.rule,
      batchSize: this.batchSize,
      maxInputPixels: this.maxInputPixels,
      maxFileBytes: this.maxFileBytes,
      complexity: this.useComplexity,
      calibration: options.calibration,
    };
    if (!(this.alpha > 0 && this.alpha < 1)) throw new Error(`alpha must be between 0 and 1 (got ${options.alpha})`);
    if (this.pipeline !== 'sharded' && this.preprocessWorkers > 0) this.pool = new PreprocessPool(this.preprocessWorkers);
  }

  static async create(options: EngineOptions = {}): Promise<OodEngine> {
    const cores = availableParallelism();
    // One preprocessing worker per core (up to 4): a batch is split across them (see scoreAll).
    const preprocessWorkers = options.preprocessWorkers ?? (cores >= 2 ? Math.min(cores, 4) : 0);
    // onnxruntime gets every core, with its idle threads sleeping instead of spinning, so that the
    // preprocessing worker runs in the gaps (measured on 2 cores, MNIST folder: 3,615 images/s; 3,229 with
    // one intra-op thread; 2,259 with two spinning threads).
    const threads = options.threads ?? (preprocessWorkers > 0 ? cores : 0);
    const spinning = options.spinning ?? preprocessWorkers === 0;
    const pair = await loadPair(options.pair ?? builtInPairDir(), { provider: options.provider ?? 'auto', threads, spinning }, options.calibration);
    try {
      const compressor = pairCompressor(pair.manifest);
      if (options.complexity ?? true) await loadCompressor(compressor);
      checkCalibrationMatches(pair, compressor);
      // A calibration the caller passed in (calibrate's placeholder, eval's split) is the caller's business.
      if (!options.calibration) checkCalibrationCanReject(pair, options.rule ?? 'all', options.alpha ?? 0.01);
    } catch (err) {
      await disposePair(pair);
      throw err;
    }
    const runners = [pair.classifier, pair.vae, pair.encoder, pair.decoder].filter((r) => r !== undefined);
    const onnxOnCpu = runners.every((r) => r.backend === 'onnxruntime-node' && r.provider === 'cpu');
    const pipeline = options.pipeline ?? (preprocessWorkers > 0 && onnxOnCpu ? 'sharded' : 'overlapped');
    return new OodEngine(pair, { ...options, preprocessWorkers, pipeline });
  }

  /** Scoring shards running now (0 before the first large input, or when they could not start). */
  get activeShards(): number {
    return this.shards?.size ?? 0;
  }

  get info(): PairInfo {
    const m = this.pair.manifest;
    const cal = this.pair.calibration;
    const runners = [this.pair.classifier, this.pair.vae ?? this.pair.encoder].filter(Boolean);
    return {
      name: m.name,
      manifestPath: this.pair.manifestPath,
      backend: [...new Set(runners.map((r) => r!.backend))].join(' + '),
      provider: [...new Set(runners.map((r) => r!.provider))].join(' + '),
      calibrated: !!cal,
      calibrationCount: cal?.count ?? 0,
      calibrationSource: cal?.source ?? null,
      labels: m.classifier.labels,
      input: { width: m.input.width, height: m.input.height, channels: m.input.channels },
      alpha: this.alpha,
      rule: this.rule,
    };
  }

  async dispose(): Promise<void> {
    await this.pool?.dispose();
    const shards = await this.shardsReady;
    await shards?.dispose();
    await disposePair(this.pair);
  }

  /** Reads one input's bytes (or passes its in-memory image through); errors name the problem. */
  async readSource(input: ScoreInput): Promise<Uint8Array | RawImage> {
    if (input.error !== undefined) throw new ImageDecodeError(input.error);
    if (input.source) return inMemory(input.source);
    return readChecked(input.path, this.maxFileBytes);
  }

  /**
   * One batch start to finish on this thread, files read synchronously: a scoring shard's whole job (the
   * shard's thread has nothing else to do meanwhile, and a synchronous read costs a quarter of an async one).
   */
  async scoreBatchInThisThread(inputs: ScoreInput[], withDetails: boolean): Promise<ImageResult[]> {
    let start = performance.now();
    const sources = inputs.map((input) => {
      if (input.error !== undefined) return new ImageDecodeError(input.error);
      if (input.source) return inMemory(input.source);
      try {
        return readCheckedSync(input.path, this.maxFileBytes);
      } catch (err) {
        return err as Error;
      }
    });
    this.timings.read += performance.now() - start;
    start = performance.now();
    const prepared = await prepareBatch(sources, this.pair.manifest.input, this.maxInputPixels).catch((err: Error) => inputs.map(() => new ImageDecodeError(`could not prepare: ${err.message}`)));
    this.timings.preprocess += performance.now() - start;
    return this.scorePrepared(inputs.map((i) => i.path), prepared, withDetails);
  }

  /** Reads and preprocesses inputs as one batch (fast path for small PNGs and raw images). */
  async prepareAll(inputs: ScoreInput[]): Promise<(ModelImage | Error)[]> {
    let start = performance.now();
    const sources = await Promise.all(inputs.map((i) => this.readSource(i).catch((err: Error) => err)));
    this.timings.read += performance.now() - start;
    start = performance.now();
    try {
      return await prepareBatch(sources, this.pair.manifest.input, this.maxInputPixels);
    } finally {
      this.timings.preprocess += performance.now() - start;
    }
  }

  private async prepareInPool(inputs: ScoreInput[]): Promise<(ModelImage | Error)[]> {
    const start = performance.now();
    const items = inputs.map(workItem);
    try {
      return await this.pool!.prepare(items, this.pair.manifest.input, { maxInputPixels: this.maxInputPixels, maxFileBytes: this.maxFileBytes, complexity: this.useComplexity ? this.compressor : false });
    } catch {
      // A worker that failed (missing bundle file, crash) must never stall scoring: do it in-process.
      return this.prepareAll(inputs);
    } finally {
      this.timings.preprocess += performance.now() - start; // wall time in the worker, overlapping inference
    }
  }

  /** Scores preprocessed images in one batch (split into batchSize chunks). */
  async scoreImages(images: ModelImage[], paths: string[], withDetails = false): Promise<ImageResult[]> {
    const results: ImageResult[] = [];
    for (let start = 0; start < images.length; start += this.batchSize) {
      const chunk = images.slice(start, start + this.batchSize);
      results.push(...(await this.scoreBatch(chunk, paths.slice(start, start + this.batchSize), withDetails)));
    }
    return results;
  }

  /** Scores prepared images, turning failures into error records; results in input order. */
  private async scorePrepared(paths: string[], prepared: (ModelImage | Error)[], withDetails: boolean): Promise<ImageResult[]> {
    return (await this.inferPrepared(paths, prepared, withDetails))();
  }

  /**
   * Runs the models on the prepared images now and returns the rest of the work (scores, verdicts, error
   * records for failures, in input order) as a function, so that a pipeline can run it while the next
   * batch is being prepared.
   */
  private async inferPrepared(paths: string[], prepared: (ModelImage | Error)[], withDetails: boolean): Promise<() => ImageResult[]> {
    const ok: ModelImage[] = [];
    const okPaths: string[] = [];
    prepared.forEach((img, i) => {
      if (!(img instanceof Error)) {
        ok.push(img);
        okPaths.push(paths[i]);
      }
    });
    const merge = (scored: ImageResult[]) => {
      let k = 0;
      return prepared.map((img, i) => (img instanceof Error ? errorResult(paths[i], img.message) : scored[k++]));
    };
    if (!ok.length) return () => merge([]);
    let outputs: ModelOutputs;
    try {
      outputs = await this.runModels(ok);
    } catch (err) {
      return () => merge(okPaths.map((p) => errorResult(p, (err as Error).message)));
    }
    return () => {
      const start = performance.now();
      try {
        return merge(this.finishBatch(ok, okPaths, withDetails, outputs));
      } catch (err) {
        return merge(okPaths.map((p) => errorResult(p, (err as Error).message)));
      } finally {
        this.timings.scoring += performance.now() - start;
      }
    };
  }

  /**
   * Scores any mix of files and in-memory images, in order, with bounded memory (a few batches in flight).
   * `sharded`: batches go to the scoring shards, two per shard in flight, and their results come back here
   * to be reported in input order. `overlapped` / `phased`: the models run here on the batch that is ready
   * (onnxruntime's threads on every core) while the preprocessing workers prepare the next one, during or
   * after; this thread then turns the model outputs into results and reports them.
   */
  async scoreAll(inputs: Iterable<ScoreInput> | AsyncIterable<ScoreInput>, onResult: (r: ImageResult, index: number) => void | Promise<void>, options: { signal?: AbortSignal; withDetails?: boolean } = {}): Promise<void> {
    const withDetails = options.withDetails ?? false;
    const aborted = () => options.signal?.aborted ?? false;
    const iterator = this.batchesOf(inputs, aborted)[Symbol.asyncIterator]();
    // Look ahead far enough to know whether the input is worth starting the shards for.
    const head: ScoreInput[][] = [];
    const running = this.shards?.alive ?? false;
    let exhausted = this.pipeline !== 'sharded' || running;
    while (!exhausted && head.length <= SHARD_MIN_BATCHES) {
      const next = await iterator.next();
      if (next.done) exhausted = true;
      else head.push(next.value);
    }
    async function* batches() {
      yield* head;
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    }
    let index = 0;
    const emit = async (results: ImageResult[]) => {
      for (const r of results) {
        const pending = onResult(r, index++);
        if (pending) await pending; // a synchronous callback costs no await per result
      }
    };
    if (this.pipeline === 'sharded' && (running || !exhausted)) await this.runSharded(running ? this.shards : await this.startShards(), batches(), emit, withDetails, aborted);
    else await this.runPipelined(batches(), emit, withDetails, aborted);
  }

  private async *batchesOf(inputs: Iterable<ScoreInput> | AsyncIterable<ScoreInput>, aborted: () => boolean): AsyncGenerator<ScoreInput[]> {
    let batch: ScoreInput[] = [];
    // A plain list is cut into batches without an await per item (`for await` would add one).
    if (Symbol.iterator in inputs) {
      for (const input of inputs) {
        batch.push(input);
        if (batch.length >= this.batchSize) {
          if (aborted()) return;
          yield batch;
          batch = [];
        }
      }
    } else {
      for await (const input of inputs) {
        if (aborted()) return;
        batch.push(input);
        if (batch.length >= this.batchSize) {
          yield batch;
          batch = [];
        }
      }
    }
    if (batch.length && !aborted()) yield batch;
  }

  /**
   * Starts the scoring shards now and waits for them (they otherwise start with the first input of more than
   * SHARD_MIN_BATCHES batches; once running they take every input); false when this engine does not shard or
   * they could not start.
   */
  async startScoringShards(): Promise<boolean> {
    return this.pipeline === 'sharded' && (await this.startShards()) !== null;
  }

  /** Tells `onNotice` that scoring fell back to a slower way, once per distinct message. */
  private notice(message: string): void {
    if (this.noticesGiven.has(message)) return;
    this.noticesGiven.add(message);
    try {
      this.onNotice?.(message);
    } catch {
      // a listener's failure must not stop scoring
    }
  }

  /** The shards, started on first use; null (scoring stays in-process) when they cannot start or all died. */
  private async startShards(): Promise<ScoringShards | null> {
    this.shardsReady ??= ScoringShards.start(this.shardCount, this.shardOptions).catch((err: Error) => {
      this.shardFailure = err.message;
      this.notice(`the scoring shards could not start (${err.message}); scoring on one thread instead, which is slower`);
      return null;
    });
    const shards = (this.shards = await this.shardsReady);
    if (shards?.alive) return shards;
    // Without shards, preprocessing workers still keep decoding off this thread where they can start.
    if (!this.pool && this.preprocessWorkers > 0) this.pool = new PreprocessPool(this.preprocessWorkers);
    return null;
  }

  /**
   * Batches go to the shards, two per shard in flight, and are reported in order; without live shards (they
   * could not start, or all died) the rest is scored here, one batch at a time.
   */
  private async runSharded(shards: ScoringShards | null, batches: AsyncIterable<ScoreInput[]>, emit: (r: ImageResult[]) => Promise<void>, withDetails: boolean, aborted: () => boolean): Promise<void> {
    const inFlight: Promise<ImageResult[]>[] = [];
    for await (const batch of batches) {
      if (aborted()) break;
      if (!shards?.alive) {
        while (inFlight.length) await emit(await inFlight.shift()!);
        this.batchCounts.here++;
        await emit(await this.scoreHere(batch, withDetails));
        continue;
      }
      this.batchCounts.shards++;
      inFlight.push(this.scoreOnShard(shards, batch, withDetails));
      if (inFlight.length >= 2 * shards.size) await emit(await inFlight.shift()!);
    }
    // Batches already scored are reported even after a cancel: that work is done.
    while (inFlight.length) await emit(await inFlight.shift()!);
  }

  /** One batch on this thread (through the preprocessing workers when there are any). */
  private async scoreHere(batch: ScoreInput[], withDetails: boolean): Promise<ImageResult[]> {
    return this.scorePrepared(batch.map((b) => b.path), await this.prepare(batch), withDetails);
  }

  /** Prepares a batch in the preprocessing workers when they run, else here; a failure is an error per image. */
  private prepare(batch: ScoreInput[]): Promise<(ModelImage | Error)[]> {
    return (this.pool?.alive ? this.prepareInPool(batch) : this.prepareAll(batch)).catch((err: Error) => batch.map(() => new ImageDecodeError(`could not prepare: ${err.message}`)));
  }

  private async scoreOnShard(shards: ScoringShards, batch: ScoreInput[], withDetails: boolean): Promise<ImageResult[]> {
    try {
      const { results, timings } = await shards.score(batch.map(workItem), withDetails);
      for (const stage of Object.keys(timings) as (keyof StageTimings)[]) this.timings[stage] += timings[stage];
      return results;
    } catch (err) {
      // A shard that failed or died must never stall scoring or drop the batch: score it here.
      this.notice(`a scoring shard failed a batch (${(err as Error).message}); it was scored on the caller's thread instead`);
      return this.scoreHere(batch, withDetails);
    }
  }

  private async runPipelined(batches: AsyncIterable<ScoreInput[]>, emit: (r: ImageResult[]) => Promise<void>, withDetails: boolean, aborted: () => boolean): Promise<void> {
    let ready: { paths: string[]; prepared: Promise<(ModelImage | Error)[]> } | null = null;
    const overlap = this.pipeline !== 'phased';
    const advance = async (next: ScoreInput[] | null) => {
      const current = ready;
      ready = null;
      let finish: (() => ImageResult[]) | null = null;
      if (overlap && next && !aborted()) ready = { paths: next.map((b) => b.path), prepared: this.prepare(next) };
      if (current && !aborted()) finish = await this.inferPrepared(current.paths, await current.prepared, withDetails);
      if (!overlap && next && !aborted()) ready = { paths: next.map((b) => b.path), prepared: this.prepare(next) };
      if (finish) await emit(finish());
    };
    for await (const batch of batches) await advance(batch);
    await advance(null);
  }

  /** One image: path → full result with the model input and reconstruction. */
  async scoreOne(input: ScoreInput): Promise<ImageResult> {
    const [prepared] = await this.prepareAll([input]);
    const [result] = await this.scorePrepared([input.path], [prepared], true);
    return result;
  }

  private batchTensor(images: ModelImage[], layout: Layout, unit = false): FloatTensor {
    const spec = this.pair.manifest.input;
    const { width, height, channels } = spec;
    const size = width * height * channels;
    const data = new Float32Array(images.length * size);
    const unitSpec = { ...spec, range: [0, 1] as [number, number], mean: undefined, std: undefined };
    images.forEach((img, i) => toTensorData(img, unit ? unitSpec : spec, layout, data, i * size));
    const dims = layout === 'NCHW' ? [images.length, channels, height, width] : [images.length, height, width, channels];
    return { data, dims };
  }

  private async scoreBatch(images: ModelImage[], paths: string[], withDetails: boolean): Promise<ImageResult[]> {
    const outputs = await this.runModels(images);
    const scoringStart = performance.now();
    try {
      return this.finishBatch(images, paths, withDetails, outputs);
    } finally {
      this.timings.scoring += performance.now() - scoringStart;
    }
  }

  /** Both models on one batch, and the complexity of images that do not carry it yet. */
  private async runModels(images: ModelImage[]): Promise<ModelOutputs> {
    const p = this.pair;
    const n = images.length;
    const classifierFeed = this.batchTensor(images, p.classifierLayout);
    const sameLayout = p.vaeLayout === p.classifierLayout;
    const vaeFeed = sameLayout ? classifierFeed : this.batchTensor(images, p.vaeLayout);
    // The likelihood's target is the input in [0, 1]: the VAE's own feed when the input spec maps to it.
    const target = this.unitInput ? vaeFeed : this.batchTensor(images, p.vaeLayout, true);
    const t = this.timings;
    const timed = async <T>(stage: keyof StageTimings, work: () => Promise<T>): Promise<T> => {
      const start = performance.now();
      try {
        return await work();
      } finally {
        t[stage] += performance.now() - start;
      }
    };
    // One after the other: onnxruntime-node runs each on this thread with its own intra-op threads.
    const classifierOut = await timed('classifier', () => p.classifier.run({ [p.names.classifierInput]: classifierFeed }, [p.names.classifierOutput]));
    const vaeOut = await timed('vae', () => this.runVae(vaeFeed, target, n));
    const start = performance.now();
    const bits = this.useComplexity ? images.map((img) => img.complexityBits ?? complexityBits(img, this.compressor)) : null;
    t.complexity += performance.now() - start;
    return { classifierOut, vaeOut, bits };
  }

  private finishBatch(images: ModelImage[], paths: string[], withDetails: boolean, { classifierOut, vaeOut, bits }: ModelOutputs): ImageResult[] {
    const p = this.pair;
    const m = p.manifest;
    const n = images.length;
    const logits = classifierOut[p.names.classifierOutput];
    const classes = logits.data.length / n;
    if (!Number.isInteger(classes) || classes !== m.classifier.labels.length) {
      throw new Error(`${p.classifier.source}: classifier output has ${classes} values per image but the manifest lists ${m.classifier.labels.length} labels`);
    }
    const dims = m.input.width * m.input.height * m.input.channels;
    const vaeScores = vaeOut.perImage();
    return images.map((img, i) => {
      const v = vaeScores[i];
      if (!Number.isFinite(v.elbo)) return errorResult(paths[i], `the VAE produced a non-finite ELBO (${v.elbo}); the model output is invalid`);
      const cs = S.classifierScores(logits.data.subarray(i * classes, (i + 1) * classes), m.classifier.outputKind);
      const cBits = bits ? bits[i] : null;
      const cScore = cBits !== null ? complexityCorrectedScore(v.elbo, cBits) : null;
      const verdict = decide(p.calibration, v.elbo, cScore, this.alpha, this.rule, cs.msp);
      const result: ImageResult = {
        path: paths[i],
        prediction: cs.prediction,
        label: m.classifier.labels[cs.prediction] ?? String(cs.prediction),
        msp: cs.msp,
        entropy: cs.entropy,
        energy: cs.energy,
        elbo: v.elbo,
        reconstructionLogLik: v.logLik,
        kl: v.kl,
        elboBitsPerDim: S.bitsPerDim(v.elbo, dims),
        logPxBound: v.logPxBound,
        complexityBits: cBits,
        complexityScore: cScore,
        pValue: verdict.pValue,
        pValues: verdict.pValues,
        firedBy: verdict.firedBy,
        verdict: verdict.verdict,
        error: null,
      };
      if (withDetails) {
        result.details = { modelInput: img, reconstruction: vaeOut.reconstruction(i, img), probabilities: Array.from(cs.probabilities) };
      }
      return result;
    });
  }

  /** Log-likelihood of x (one image, `dims` values) under the decoder output (and log-scales) at `offset`. */
  private logLik(x: Float32Array, out: Float32Array, offset: number, dims: number, logScale: Float32Array | null): number {
    const v = this.pair.manifest.vae;
    const kind = v.reconstructionKind;
    switch (v.likelihood.type) {
      case 'discretized-logistic':
        return S.discretizedLogisticLogLik(x, out, kind === 'logits', logScale, v.likelihood.scale ?? 1, offset, dims, v.likelihood.levels ?? 256);
      case 'bernoulli':
        return kind === 'logits' ? S.bernoulliLogLikFromLogits(x, out, offset, dims) : S.bernoulliLogLikFromProbs(x, out, offset, dims);
      case 'continuous-bernoulli': {
        const probs = kind === 'logits' ? Float32Array.from(out.subarray(offset, offset + dims), S.sigmoid) : out.subarray(offset, offset + dims);
        return S.continuousBernoulliLogLik(x, probs, 0, dims);
      }
      case 'gaussian':
        return S.gaussianLogLik(x, out, v.likelihood.sigma!, offset, dims);
    }
  }

  private toDisplay(out: Float32Array, offset: number, dims: number, image: ModelImage): Uint8Array {
    // Decoder mean as an 8-bit image in H×W×C order (the VAE output follows the VAE's layout).
    const kind = this.pair.manifest.vae.reconstructionKind;
    const { width, height, channels } = image;
    const plane = width * height;
    const pixels = new Uint8Array(plane * channels);
    for (let c = 0; c < channels; c++) {
      for (let q = 0; q < plane; q++) {
        const src = offset + (this.pair.vaeLayout === 'NCHW' ? c * plane + q : q * channels + c);
        const mean = kind === 'logits' ? S.sigmoid(out[src]) : out[src];
        pixels[q * channels + c] = Math.round(255 * Math.min(1, Math.max(0, mean)));
      }
    }
    return pixels;
  }

  private async runVae(feed: FloatTensor, target: FloatTensor, n: number) {
    const p = this.pair;
    const v = p.manifest.vae;
    const dims = target.data.length / n;
    const samples = v.samples ?? 0;
    if (p.vae && samples === 0) {
      const names = v.outputs!;
      const out = await p.vae.run({ [p.names.vaeInput!]: feed }, [names.reconstruction, names.mu, names.logvar, ...(names.logScale ? [names.logScale] : [])]);
      const recon = out[names.reconstruction];
      const mu = out[names.mu];
      const logvar = out[names.logvar];
      const logScale = names.logScale ? out[names.logScale].data : null;
      if (recon.data.length !== target.data.length) {
        throw new Error(`${p.vae.source}: reconstruction has ${recon.data.length / n} values per image, the input has ${dims}`);
      }
      if (logScale && logScale.length !== target.data.length) {
        throw new Error(`${p.vae.source}: ${names.logScale} has ${logScale.length / n} values per image, the input has ${dims}`);
      }
      const latent = mu.data.length / n;
      // Computed when the results are built, so that a pipeline can start the next batch first.
      const perImage = () =>
        Array.from({ length: n }, (_, i) => {
          const logLik = this.logLik(target.data.subarray(i * dims, (i + 1) * dims), recon.data, i * dims, dims, logScale);
          const kl = S.gaussianKl(mu.data, logvar.data, i * latent, latent);
          return { logLik, kl, elbo: logLik - kl, logPxBound: null as number | null };
        });
      return { perImage, reconstruction: (i: number, img: ModelImage) => this.toDisplay(recon.data, i * dims, dims, img) };
    }
    return this.runSampledVae(feed, target, n, Math.max(1, samples));
  }

  /**
   * Split VAE with K posterior samples z_k = μ + σ·ε_k (fixed seed): ELBO = mean_k log p(x|z_k) − KL, and the
   * importance-weighted bound log p(x) ≥ logsumexp_k[log p(x|z_k) + log p(z_k) − log q(z_k|x)] − log K.
   */
  private async runSampledVae(feed: FloatTensor, target: FloatTensor, n: number, k: number) {
    const p = this.pair;
    const v = p.manifest.vae;
    const enc = v.encoder!;
    const dec = v.decoder!;
    const dims = target.data.length / n;
    const eOut = await p.encoder!.run({ [p.names.encoderInput!]: feed }, [enc.outputs.mu, enc.outputs.logvar]);
    const mu = eOut[enc.outputs.mu].data;
    const logvar = eOut[enc.outputs.logvar].data;
    const latent = mu.length / n;
    const z = new Float32Array(n * k * latent);
    const logPzMinusLogQ = new Float64Array(n * k);
    for (let i = 0; i < n; i++) {
      const noise = gaussianStream(v.seed ?? 0);
      for (let s = 0; s < k; s++) {
        let acc = 0;
        for (let j = 0; j < latent; j++) {
          const eps = noise();
          const sd = Math.exp(0.5 * logvar[i * latent + j]);
          const zj = mu[i * latent + j] + sd * eps;
          z[(i * k + s) * latent + j] = zj;
          // log N(z; 0, 1) − log N(z; μ, σ²): the 0.5·log 2π terms cancel.
          acc += -0.5 * zj * zj + 0.5 * eps * eps + 0.5 * logvar[i * latent + j];
        }
        logPzMinusLogQ[i * k + s] = acc;
      }
    }
    const dOut = await p.decoder!.run({ [p.names.decoderInput!]: { data: z, dims: [n * k, latent] } }, [dec.output, ...(dec.logScaleOutput ? [dec.logScaleOutput] : [])]);
    const recon = dOut[dec.output].data;
    const logScale = dec.logScaleOutput ? dOut[dec.logScaleOutput].data : null;
    if (recon.length !== n * k * dims) throw new Error(`${p.decoder!.source}: decoder output has ${recon.length / (n * k)} values per sample, the input has ${dims}`);
    if (logScale && logScale.length !== n * k * dims) throw new Error(`${p.decoder!.source}: ${dec.logScaleOutput} has ${logScale.length / (n * k)} values per sample, the input has ${dims}`);
    const perImage = () => Array.from({ length: n }, (_, i) => {
      const x = target.data.subarray(i * dims, (i + 1) * dims);
      const lls: number[] = [];
      const weights: number[] = [];
      for (let s = 0; s < k; s++) {
        const ll = this.logLik(x, recon, (i * k + s) * dims, dims, logScale);
        lls.push(ll);
        weights.push(ll + logPzMinusLogQ[i * k + s]);
      }
      const logLik = lls.reduce((a, b) => a + b, 0) / k;
      const kl = S.gaussianKl(mu, logvar, i * latent, latent);
      return { logLik, kl, elbo: logLik - kl, logPxBound: S.logSumExp(weights) - Math.log(k) };
    });
    return {
      perImage,
      reconstruction: (i: number, img: ModelImage) => {
        // Average decoder mean over the samples, for display.
        const mean = new Float32Array(dims);
        for (let s = 0; s < k; s++) {
          const disp = this.toDisplay(recon, (i * k + s) * dims, dims, img);
          for (let q = 0; q < dims; q++) mean[q] += disp[q] / k;
        }
        return Uint8Array.from(mean, (x) => Math.round(x));
      },
    };
  }
}
