/**
 * The engine behind every surface (CLI, extension worker, benchmarks): image → preprocess → classifier
 * and VAE in batches → scores → calibrated verdict. One call per image or a streamed folder.
 * OodEngine loads the pair and wires two parts together: batchScheduler.ts decides where and when batches
 * are read, prepared and scored; batchScoring.ts turns a batch's model outputs into scores and verdicts.
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { BatchScheduler, SHARD_MIN_BATCHES, shardCount } from './pipeline/batchScheduler';
import { ScoringShards } from './pipeline/scoringShards';
import type { ShardEngineOptions } from './pipeline/workerProtocol';
import { BatchScorer, checkCalibrationMatches } from './pipeline/batchScoring';
import { calibratedCount, type VerdictRule } from './pair/calibration';
import { checkCalibrationCanReject, countsOf } from './pair/calibrationCheck';
import { type Compressor, loadCompressor } from './detectors/complexity';
import type { EngineOptions, ImageResult, PairInfo, Pipeline, ScoreInput, ScoreInputs, StageTimings } from './engineTypes';
import { testChoiceLines, vaeTrainingLine } from './pair/fitRecords';
import { pairCompressor, pairShares, pairTrustWarning, resolveIn } from './pair/manifest';
import { type OodDetector, pairDetectors } from './detectors/oodDetectors';
import { ruleShares } from '../shared/rules';
import { builtInPairDir, describedPair, disposePair, type LoadedPair, loadPair } from './pair/pair';
import { DEFAULT_MAX_INPUT_PIXELS, type ModelImage, type RawImage } from './image/preprocess';
import { pairImageSpecs } from './image/fastpath';

export interface FeatureBatch {
  /** count × dims features of the inputs that could be read, in input order. */
  features: Float32Array;
  dims: number;
  /** The classifier's predicted class for each of them. */
  predictions: Int32Array;
  /** Earlier layers' pooled activations (count × their dims), one array per exposed layer (pair.names.layerOutputs). */
  layers: Float32Array[];
  /** Each one's index in the input sequence. */
  indices: Int32Array;
  errors: { index: number; path: string; message: string }[];
}


/** Largest file read by default, in bytes (a guard before decoding). */
const DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024;

/** Input values a batch may hold when the batch size is left to the engine (2.5M; 64 images of 28×28 are 50k). */
const AUTO_BATCH_VALUES = 2_500_000;

/**
 * The batch size when none is given: 64, or fewer for large inputs so that a batch's tensors and the model's
 * activations stay a few hundred MB (a 224×224 RGB model: 16 a batch; measured on MobileNetV3-Small, batch 64
 * peaks at 1.08 GB RSS and 16 at 0.52 GB with the same throughput).
 */
export function defaultBatchSize(inputs: { classifier: { width: number; height: number; channels: number }; vae?: { width: number; height: number; channels: number } }): number {
  const values = Math.max(...[inputs.classifier, inputs.vae].filter((s) => s !== undefined).map((s) => s!.width * s!.height * s!.channels));
  return Math.max(1, Math.min(64, 2 ** Math.floor(Math.log2(AUTO_BATCH_VALUES / values))));
}

/** Where `OodEngine.create` spent its time, in ms: the pair (manifest, model sessions, probe run, calibration and feature files), L(x)'s compressor, the calibration checks, the detectors (the KNN search session). */
export interface LoadTimings {
  pair: number;
  compressor: number;
  checks: number;
  detectors: number;
}

export type { EngineOptions, ImageResult, PairInfo, Pipeline, ScoreDetails, ScoreInput, ScoreInputChunks, ScoreInputs, StageTimings } from './engineTypes';

/**
 * The scoring shards, started before this thread loads the pair when the caller expects more inputs than the
 * shards are started for (EngineOptions.expectedInputs) and the pair will be scored sharded as far as can be told
 * without loading it (onnxruntime on the CPU): their load then overlaps this thread's instead of following it
 * (~0.3 s of a 10,000-image run on 2 cores). Each shard loads and checks the pair itself, as it would later.
 */
async function startShardsEarly(location: string, options: EngineOptions, preprocessWorkers: number): Promise<{ shards: Promise<ScoringShards> } | undefined> {
  const batch = options.batchSize && options.batchSize > 0 ? options.batchSize : 64; // 64: the largest default batch
  if (!options.expectedInputs || options.expectedInputs <= SHARD_MIN_BATCHES * batch) return undefined;
  if (preprocessWorkers === 0 || (options.pipeline ?? 'sharded') !== 'sharded' || options.provider === 'cuda') return undefined;
  if ((options.provider ?? 'auto') === 'auto' && (await import('./backends/onnx')).cudaProviderInstalled()) return undefined;
  // Each shard leaves L(x) out for a pair without a VAE itself, as this thread does; the batch size left to it is its default.
  const started = ScoringShards.start(shardCount(options.shards), shardEngineOptions(options, location, options.batchSize, options.complexity ?? true), !!options.releaseModelsWhileSharded);
  started.catch(() => undefined); // a failure is reported when the shards are first needed (BatchScheduler)
  return { shards: started };
}

/** What each scoring shard's engine is opened with: this engine's options and their defaults, for `pair`. */
function shardEngineOptions(options: EngineOptions, pair: string, batchSize: number | undefined, complexity: boolean): ShardEngineOptions {
  return {
    pair,
    alpha: options.alpha ?? 0.01,
    rule: options.rule ?? 'pair',
    batchSize,
    maxInputPixels: options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS,
    maxFileBytes: options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES,
    complexity,
    calibration: options.calibration,
    features: options.features,
  };
}

export class OodEngine {
  readonly timings: StageTimings = { read: 0, preprocess: 0, classifier: 0, vae: 0, complexity: 0, scoring: 0 };
  /** Milliseconds `create` spent per stage (logged by the extension's worker: where a cold start goes). */
  loadTimings: LoadTimings = { pair: 0, compressor: 0, checks: 0, detectors: 0 };
  readonly alpha: number;
  readonly rule: VerdictRule;
  readonly batchSize: number;
  /** The compressor behind L(x), from the pair manifest. */
  readonly compressor: Compressor;
  readonly pipeline: Pipeline;
  private readonly scorer: BatchScorer;
  private readonly scheduler: BatchScheduler;
  /** This thread's models were released while the shards score (releaseModelsWhileSharded); `reload` brings them back. */
  private modelsReleased = false;
  /** This thread never loaded the pair: `pair` is the shards' description of it (see create). */
  private describedOnly = false;
  private reloading?: Promise<void>;

  private constructor(readonly pair: LoadedPair, readonly detectors: OodDetector[], private readonly options: EngineOptions & { pipeline: Pipeline; preprocessWorkers: number; threads: number; spinning: boolean }, shardsStarted?: Promise<ScoringShards>) {
    this.alpha = options.alpha ?? 0.01;
    this.rule = options.rule ?? 'pair';
    this.batchSize = options.batchSize && options.batchSize > 0 ? options.batchSize : defaultBatchSize(pair.inputs);
    const maxInputPixels = options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
    const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    // L(x) is only used for S(x) = −ELBO − L(x): without a VAE it is not computed (a PNG encode per image).
    const useComplexity = (options.complexity ?? true) && pair.inputs.vae !== undefined;
    this.compressor = pairCompressor(pair.manifest);
    this.pipeline = options.pipeline;
    if (!(this.alpha > 0 && this.alpha < 1)) throw new Error(`alpha must be between 0 and 1 (got ${options.alpha})`);
    this.scorer = new BatchScorer(pair, { alpha: this.alpha, rule: this.rule, complexity: useComplexity, compressor: this.compressor, detectors, pairShares: pairShares(pair.manifest), beforeModels: () => this.reload() }, this.timings);
    this.scheduler = new BatchScheduler(this.scorer, this.timings, {
      specs: pairImageSpecs(pair.inputs),
      batchSize: this.batchSize,
      pipeline: this.pipeline,
      preprocessWorkers: options.preprocessWorkers,
      shards: options.shards,
      maxInputPixels,
      maxFileBytes,
      complexity: useComplexity ? this.compressor : false,
      shardOptions: shardEngineOptions(options, pair.manifestPath, this.batchSize, useComplexity),
      onNotice: options.onNotice,
      shardsStarted,
      ...(options.releaseModelsWhileSharded ? { onShardsScoring: () => this.releaseModels() } : {}),
    });
  }

  /** Disposes this thread's model sessions and detector indices; the pair's description stays (info, inputs). */
  private async releaseModels(): Promise<void> {
    if (this.modelsReleased || this.reloading) return;
    this.modelsReleased = true;
    await disposePair(this.pair);
    await Promise.allSettled(this.detectors.map((d) => d.dispose()));
  }

  /** Loads the released models again, the same way `create` did, into the same pair and detector list. */
  private reload(): Promise<void> {
    if (!this.modelsReleased) return Promise.resolve();
    this.reloading ??= (async () => {
      const o = this.options;
      const fresh = await loadPair(o.pair ?? builtInPairDir(), { provider: o.provider ?? 'auto', threads: o.threads, spinning: o.spinning, lowMemory: o.lowMemorySessions }, o.calibration, { features: o.features });
      let detectors: OodDetector[];
      try {
        detectors = await pairDetectors(fresh, { complexity: o.complexity ?? true });
      } catch (err) {
        await disposePair(fresh);
        throw err;
      }
      if (this.describedOnly) {
        // Everything, as if this thread had loaded the pair at the start (the fitted features' data included).
        Object.assign(this.pair, fresh);
        this.describedOnly = false;
      } else {
        this.pair.classifier = fresh.classifier;
        this.pair.vae = fresh.vae;
        this.pair.encoder = fresh.encoder;
        this.pair.decoder = fresh.decoder;
      }
      this.detectors.splice(0, this.detectors.length, ...detectors);
      this.modelsReleased = false;
    })().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
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
    let lap = performance.now();
    const took = () => {
      const now = performance.now();
      const ms = now - lap;
      lap = now;
      return Math.round(ms);
    };
    const loadTimings: LoadTimings = { pair: 0, compressor: 0, checks: 0, detectors: 0 };
    const location = options.pair ?? builtInPairDir();
    const shardsStarted = (await startShardsEarly(location, options, preprocessWorkers))?.shards;
    const stopEarlyShards = () => shardsStarted?.then((s) => s.dispose(), () => undefined);
    // With models released while sharded, this thread waits for the shards instead: they load and check the
    // pair as this thread would, and its description is all it needs until something is scored here (reload).
    // Shards that fail leave this thread to load the pair itself, which reports what is wrong with it.
    const described = options.releaseModelsWhileSharded ? await shardsStarted?.then((s) => s.pair, () => undefined) : undefined;
    if (described && Object.values(described.runners).every((r) => r.backend === 'onnxruntime-node' && r.provider === 'cpu')) {
      const engine = new OodEngine(describedPair(described), [], { ...options, preprocessWorkers, pipeline: 'sharded', threads, spinning }, shardsStarted);
      engine.modelsReleased = true;
      engine.describedOnly = true;
      loadTimings.pair = took();
      engine.loadTimings = loadTimings;
      return engine;
    }
    let pair: LoadedPair;
    try {
      pair = await loadPair(location, { provider: options.provider ?? 'auto', threads, spinning, lowMemory: options.lowMemorySessions }, options.calibration, { features: options.features });
    } catch (err) {
      await stopEarlyShards();
      throw err;
    }
    loadTimings.pair = took();
    let detectors: OodDetector[];
    try {
      const compressor = pairCompressor(pair.manifest);
      const hasVae = pair.inputs.vae !== undefined;
      if ((options.complexity ?? true) && hasVae) await loadCompressor(compressor);
      loadTimings.compressor = took();
      checkCalibrationMatches(pair, compressor);
      // A calibration the caller passed in (calibrate's placeholder, eval's split) is the caller's business.
      if (!options.calibration && pair.calibration) checkCalibrationCanReject(countsOf((t) => calibratedCount(pair.calibration, t)), pair.manifest.calibration ? resolveIn(pair, pair.manifest.calibration) : pair.manifestPath, options.rule ?? 'pair', options.alpha ?? 0.01, pairShares(pair.manifest));
      loadTimings.checks = took();
      detectors = await pairDetectors(pair, { complexity: options.complexity ?? true });
      loadTimings.detectors = took();
    } catch (err) {
      await disposePair(pair);
      await stopEarlyShards();
      throw err;
    }
    const runners = [pair.classifier, pair.vae, pair.encoder, pair.decoder].filter((r) => r !== undefined);
    const onnxOnCpu = runners.every((r) => r.backend === 'onnxruntime-node' && r.provider === 'cpu');
    const pipeline = options.pipeline ?? (preprocessWorkers > 0 && onnxOnCpu ? 'sharded' : 'overlapped');
    // Started on a guess that the pair turned out to contradict (a TensorFlow.js model, CUDA): not used.
    if (pipeline !== 'sharded') await stopEarlyShards();
    const engine = new OodEngine(pair, detectors, { ...options, preprocessWorkers, pipeline, threads, spinning }, pipeline === 'sharded' ? shardsStarted : undefined);
    engine.loadTimings = loadTimings;
    return engine;
  }

  /** Scoring shards running now (0 before the first large input, or when they could not start). */
  get activeShards(): number {
    return this.scheduler.activeShards;
  }

  /** Batches scored by `scoreAll` on the scoring shards and on this thread, for diagnostics and benchmarks. */
  get batchCounts(): { shards: number; here: number } {
    return this.scheduler.batchCounts;
  }

  /** Why the scoring shards could not start (scoring then runs in-process), for diagnostics. */
  get shardFailure(): string | null {
    return this.scheduler.shardFailure;
  }

  get info(): PairInfo {
    const m = this.pair.manifest;
    const cal = this.pair.calibration;
    const ci = this.pair.inputs.classifier;
    const vi = pairImageSpecs(this.pair.inputs).vae;
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
      input: { width: ci.width, height: ci.height, channels: ci.channels },
      ...(vi ? { vaeInput: { width: vi.width, height: vi.height, channels: vi.channels } } : {}),
      alpha: this.alpha,
      rule: this.rule,
      shares: ruleShares(this.rule, pairShares(m)),
      ...(m.vae?.training ? { vaeTraining: vaeTrainingLine(m.vae.training) } : {}),
      ...(m.fit?.testChoice ? { testChoice: testChoiceLines(m.fit.testChoice), notUsed: Object.fromEntries(m.fit.testChoice.tests.filter((t) => t.reason).map((t) => [t.test, t.reason!])), shareCut: Object.fromEntries(m.fit.testChoice.tests.filter((t) => t.shareCut).map((t) => [t.test, t.shareCut!])) } : {}),
      ...(m.fit?.check ? { fitCheck: { accuracy: m.fit.check.accuracy, floor: m.fit.check.floor, forced: m.fit.check.forced ?? null, warning: pairTrustWarning(m) } } : {}),
    };
  }

  async dispose(): Promise<void> {
    await this.scheduler.dispose();
    await this.reloading?.catch(() => undefined);
    if (this.modelsReleased) return;
    await Promise.allSettled(this.detectors.map((d) => d.dispose()));
    await disposePair(this.pair);
  }

  /**
   * Scores any mix of files and in-memory images, in order, with bounded memory (a few batches in flight);
   * stops between batches when `signal` aborts (batches already scored are still reported).
   */
  scoreAll(inputs: ScoreInputs, onResult: (r: ImageResult, index: number) => void | Promise<void>, options: { signal?: AbortSignal; withDetails?: boolean } = {}): Promise<void> {
    return this.scheduler.scoreAll(inputs, onResult, options);
  }

  /** One image: path → full result with the model input and reconstruction. */
  async scoreOne(input: ScoreInput): Promise<ImageResult> {
    const [prepared] = await this.scheduler.prepareAll([input]);
    const [result] = await this.scorer.scorePrepared([input.path], [prepared], true);
    return result;
  }

  /** Scores preprocessed images in batches of `batchSize` (model errors throw). */
  async scoreImages(images: ModelImage[], paths: string[], withDetails = false): Promise<ImageResult[]> {
    const results: ImageResult[] = [];
    for (let start = 0; start < images.length; start += this.batchSize) {
      const chunk = images.slice(start, start + this.batchSize);
      results.push(...(await this.scorer.scoreBatch(chunk, paths.slice(start, start + this.batchSize), withDetails)));
    }
    return results;
  }

  /** One batch start to finish on this thread, files read synchronously (a scoring shard's whole job). */
  scoreBatchInThisThread(inputs: ScoreInput[], withDetails: boolean): Promise<ImageResult[]> {
    return this.scheduler.scoreBatchInThisThread(inputs, withDetails);
  }

  /** Reads and preprocesses inputs as one batch (fast path for small PNGs and raw images). */
  prepareAll(inputs: ScoreInput[]): Promise<(ModelImage | Error)[]> {
    return this.scheduler.prepareAll(inputs);
  }

  /** Reads one input's bytes (or passes its in-memory image through); errors name the problem. */
  readSource(input: ScoreInput): Promise<Uint8Array | RawImage> {
    return this.scheduler.readSource(input);
  }

  /**
   * The classifier's penultimate features for each input, batch by batch in input order (create the engine
   * with `features: true` when the pair does not use features yet). Unreadable inputs are reported in
   * `errors` with their index in the input sequence and left out of `features`.
   */
  async extractFeatures(
    inputs: Iterable<ScoreInput> | AsyncIterable<ScoreInput>,
    onBatch: (batch: FeatureBatch) => void | Promise<void>,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    let seen = 0;
    await this.scheduler.forEachPrepared(
      inputs,
      async (paths, prepared) => {
        const first = seen;
        seen += paths.length;
        const ok: ModelImage[] = [];
        const indices: number[] = [];
        const errors: FeatureBatch['errors'] = [];
        prepared.forEach((img, i) => {
          if (img instanceof Error) errors.push({ index: first + i, path: paths[i], message: img.message });
          else {
            ok.push(img);
            indices.push(first + i);
          }
        });
        const out = ok.length ? await this.scorer.features(ok) : { features: new Float32Array(0), dims: 0, predictions: new Int32Array(0), layers: (this.pair.names.layerOutputs ?? []).map(() => new Float32Array(0)) };
        await onBatch({ ...out, indices: Int32Array.from(indices), errors });
      },
      options.signal,
    );
  }

  /**
   * Starts the scoring shards now and waits for them (they otherwise start with the first input of more than
   * 16 batches; once running they take every input); false when this engine does not shard or they could not
   * start.
   */
  startScoringShards(): Promise<boolean> {
    return this.scheduler.startScoringShards();
  }
}
