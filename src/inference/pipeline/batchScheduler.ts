/**
 * Batch scheduling: where and when each batch is read, decoded and scored. Three pipelines (see
 * EngineOptions.pipeline): `sharded` hands whole batches to scoring shards (worker threads with their own
 * models), `overlapped` and `phased` run the models on this thread while preprocessing workers prepare the
 * next batch. What a batch's model outputs mean is batchScoring.ts's business, not this module's.
 */
import { availableParallelism } from 'node:os';
import type { BatchScorer } from './batchScoring';
import type { Compressor } from '../detectors/complexity';
import type { ImageResult, Pipeline, ScoreInput, ScoreInputs, StageTimings } from '../engineTypes';
import { type PairImageSpecs, preparePairBatch } from '../image/fastpath';
import { PreprocessPool } from './preprocessPool';
import { ImageDecodeError, isRawImage, readChecked, readCheckedSync, type ImageSource, type ModelImage, type RawImage } from '../image/preprocess';
import { ScoringShards, unpackResults } from './scoringShards';
import type { ShardEngineOptions, WorkItem } from './workerProtocol';

/**
 * Up to this many batches an input is scored in-process unless the shards already run: starting them (a
 * worker, onnxruntime and the pair each, ~0.3 s on 2 cores) costs about what they save on ~1,000 MNIST-size
 * images. (Starting them in the background while the first batches are scored here was measured slower and
 * 50–80 MB larger at peak: the two compete for the cores and both hold their buffers.)
 */
export const SHARD_MIN_BATCHES = 16;

/** Scoring shards for the `sharded` pipeline: as asked, else one per core, up to 4. */
export function shardCount(asked?: number): number {
  return Math.max(1, asked ?? Math.min(availableParallelism(), 4));
}

/** An input as a worker receives it: a path to read there, or the bytes or pixels themselves. */
function workItem(input: ScoreInput): WorkItem {
  if (input.error !== undefined) return { path: input.path, error: input.error };
  if (!input.source) return input.fsPath ? { path: input.path, fsPath: input.fsPath } : { path: input.path };
  if (!isRawImage(input.source)) return { path: input.path, bytes: new Uint8Array(input.source) };
  // A view into a larger buffer (one image of an IDX file) would be posted with the whole buffer — the
  // entire IDX file copied to the worker once per batch, once per image at --batch-size 1 (measured 35×
  // slower than a PNG folder): post a compact copy of the image's own bytes instead.
  const raw = input.source;
  const compact = raw.data.byteLength === raw.data.buffer.byteLength ? raw : { ...raw, data: raw.data.slice() };
  return { path: input.path, raw: compact };
}

/** An in-memory input's bytes or pixels (no copy). */
function inMemory(source: ImageSource): Uint8Array | RawImage {
  return isRawImage(source) ? source : new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
}

export interface SchedulerOptions {
  /** The classifier's image, and the VAE's own when it differs (each file decoded once, resized for each). */
  specs: PairImageSpecs;
  batchSize: number;
  pipeline: Pipeline;
  preprocessWorkers: number;
  /** Scoring shards for the `sharded` pipeline (default: one per core, up to 4). */
  shards?: number;
  maxInputPixels: number;
  maxFileBytes: number;
  /** The compressor for L(x) computed in the preprocessing workers, or false to skip it. */
  complexity: Compressor | false;
  /** How each scoring shard opens its own copy of the pair. */
  shardOptions: ShardEngineOptions;
  /** Called when batches are about to go to running shards (the engine may release its own models then). */
  onShardsScoring?: () => Promise<void>;
  /** Shards the engine started while it loaded the pair (EngineOptions.expectedInputs): used instead of starting new ones. */
  shardsStarted?: Promise<ScoringShards>;
  onNotice?: (message: string) => void;
}

/** Reads, prepares and schedules batches over the cores; `scorer` turns each prepared batch into results. */
export class BatchScheduler {
  readonly batchSize: number;
  readonly pipeline: Pipeline;
  /** Batches scored by `scoreAll` on the scoring shards and on this thread, for diagnostics and benchmarks. */
  readonly batchCounts = { shards: 0, here: 0 };
  /** Why the scoring shards could not start (scoring then runs in-process), for diagnostics. */
  shardFailure: string | null = null;
  private readonly specs: PairImageSpecs;
  private readonly maxInputPixels: number;
  private readonly maxFileBytes: number;
  private readonly complexity: Compressor | false;
  private readonly preprocessWorkers: number;
  private readonly shardCount: number;
  private readonly shardOptions: ShardEngineOptions;
  private readonly onNotice?: (message: string) => void;
  private readonly onShardsScoring?: () => Promise<void>;
  private readonly noticesGiven = new Set<string>();
  private pool?: PreprocessPool;
  private shardsReady?: Promise<ScoringShards | null>;
  private shards: ScoringShards | null = null;
  private readonly shardsStarted?: Promise<ScoringShards>;

  constructor(private readonly scorer: BatchScorer, private readonly timings: StageTimings, options: SchedulerOptions) {
    this.specs = options.specs;
    this.batchSize = options.batchSize;
    this.pipeline = options.pipeline;
    this.preprocessWorkers = options.preprocessWorkers;
    this.shardCount = shardCount(options.shards);
    this.maxInputPixels = options.maxInputPixels;
    this.maxFileBytes = options.maxFileBytes;
    this.complexity = options.complexity;
    this.shardOptions = options.shardOptions;
    this.onNotice = options.onNotice;
    this.onShardsScoring = options.onShardsScoring;
    this.shardsStarted = options.shardsStarted;
    if (this.pipeline !== 'sharded' && this.preprocessWorkers > 0) this.pool = new PreprocessPool(this.preprocessWorkers);
  }

  /** Scoring shards running now (0 before the first large input, or when they could not start). */
  get activeShards(): number {
    return this.shards?.size ?? 0;
  }

  /** Stops the preprocessing workers and the scoring shards (each finishes the batch in hand). */
  async dispose(): Promise<void> {
    await this.pool?.dispose();
    // Shards started early but never used (the input was smaller than expected) are stopped too.
    const shards = await (this.shardsReady ?? this.shardsStarted?.catch(() => null));
    await shards?.dispose();
  }

  /** Reads one input's bytes (or passes its in-memory image through); errors name the problem. */
  async readSource(input: ScoreInput): Promise<Uint8Array | RawImage> {
    if (input.error !== undefined) throw new ImageDecodeError(input.error);
    if (input.source) return inMemory(input.source);
    return readChecked(input.fsPath ?? input.path, this.maxFileBytes);
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
        return readCheckedSync(input.fsPath ?? input.path, this.maxFileBytes);
      } catch (err) {
        return err as Error;
      }
    });
    this.timings.read += performance.now() - start;
    start = performance.now();
    // Images that onnxruntime enlarges go straight into the classifier's feed when nothing else reads them (no
    // details asked for): the 8-bit copy and the JS pass that scales it are spared (measured on the 224×224 pair).
    const deferEnlarging = !withDetails && this.scorer.classifierImagesFeedOnlyTheClassifier;
    const prepared = await preparePairBatch(sources, this.specs, this.maxInputPixels, { deferEnlarging }).catch((err: Error) => inputs.map(() => new ImageDecodeError(`could not prepare: ${err.message}`)));
    this.timings.preprocess += performance.now() - start;
    return this.scorer.scorePrepared(inputs.map((i) => i.path), prepared, withDetails);
  }

  /** Reads and preprocesses inputs as one batch (fast path for small PNGs and raw images). */
  async prepareAll(inputs: ScoreInput[]): Promise<(ModelImage | Error)[]> {
    let start = performance.now();
    const sources = await Promise.all(inputs.map((i) => this.readSource(i).catch((err: Error) => err)));
    this.timings.read += performance.now() - start;
    start = performance.now();
    try {
      return await preparePairBatch(sources, this.specs, this.maxInputPixels);
    } finally {
      this.timings.preprocess += performance.now() - start;
    }
  }

  private async prepareInPool(inputs: ScoreInput[]): Promise<(ModelImage | Error)[]> {
    const start = performance.now();
    const items = inputs.map(workItem);
    try {
      return await this.pool!.prepare(items, this.specs, { maxInputPixels: this.maxInputPixels, maxFileBytes: this.maxFileBytes, complexity: this.complexity });
    } catch {
      // A worker that failed (missing bundle file, crash) must never stall scoring: do it in-process.
      return this.prepareAll(inputs);
    } finally {
      this.timings.preprocess += performance.now() - start; // wall time in the worker, overlapping inference
    }
  }

  /**
   * Scores any mix of files and in-memory images, in order, with bounded memory (a few batches in flight).
   * `sharded`: batches go to the scoring shards, two per shard in flight, and their results come back here
   * to be reported in input order. `overlapped` / `phased`: the models run here on the batch that is ready
   * (onnxruntime's threads on every core) while the preprocessing workers prepare the next one, during or
   * after; this thread then turns the model outputs into results and reports them.
   */
  async scoreAll(inputs: ScoreInputs, onResult: (r: ImageResult, index: number) => void | Promise<void>, options: { signal?: AbortSignal; withDetails?: boolean } = {}): Promise<void> {
    const withDetails = options.withDetails ?? false;
    const aborted = () => options.signal?.aborted ?? false;
    const iterator = this.batchesOf(inputs, aborted)[Symbol.asyncIterator]();
    // Look ahead far enough to know whether the input is worth starting the shards for.
    const head: ScoreInput[][] = [];
    // Shards started with the engine (EngineOptions.expectedInputs) are used from the first input: they are loaded already.
    const running = (this.shards?.alive ?? false) || (this.shardsStarted !== undefined && !this.shardsReady);
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
    if (this.pipeline === 'sharded' && (running || !exhausted)) await this.runSharded(this.shards?.alive ? this.shards : await this.startShards(), batches(), emit, withDetails, aborted);
    else await this.runPipelined(batches(), emit, withDetails, aborted);
  }

  private async *batchesOf(inputs: ScoreInputs, aborted: () => boolean): AsyncGenerator<ScoreInput[]> {
    let batch: ScoreInput[] = [];
    if ('chunks' in inputs || Symbol.iterator in inputs) {
      // A plain list (one chunk), or each chunk, is cut into batches without an await per item (`for await` would add one).
      for await (const chunk of 'chunks' in inputs ? inputs.chunks : [inputs]) {
        for (const input of chunk) {
          batch.push(input);
          if (batch.length >= this.batchSize) {
            if (aborted()) return;
            yield batch;
            batch = [];
          }
        }
        if (aborted()) return;
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
   * Reads and prepares inputs batch by batch (the next batch is prepared while `work` handles this one) and
   * hands each batch, in order, to `work`: for jobs other than scoring, such as reading features to fit.
   */
  async forEachPrepared(inputs: Iterable<ScoreInput> | AsyncIterable<ScoreInput>, work: (paths: string[], prepared: (ModelImage | Error)[]) => Promise<void>, signal?: AbortSignal): Promise<void> {
    const aborted = () => signal?.aborted ?? false;
    let pending: { paths: string[]; prepared: Promise<(ModelImage | Error)[]> } | null = null;
    for await (const batch of this.batchesOf(inputs, aborted)) {
      const next = { paths: batch.map((b) => b.path), prepared: this.prepare(batch) };
      if (pending) await work(pending.paths, await pending.prepared);
      pending = next;
      if (aborted()) break;
    }
    if (pending && !aborted()) await work(pending.paths, await pending.prepared);
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
    this.shardsReady ??= (this.shardsStarted ?? ScoringShards.start(this.shardCount, this.shardOptions)).catch((err: Error) => {
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
   * Batches go to the shards, two per shard being scored, and are reported in order; without live shards (they
   * could not start, or all died) the rest is scored here, one batch at a time. A shard that finishes its batches
   * gets the next ones while an earlier batch is still being scored on another shard (its results wait, at most
   * four batches a shard held): waiting for the oldest batch before sending more left a shard idle whenever the
   * other was slower, as on 2 cores shared by 3 threads (10,000 PNGs, median of 5 runs: 6.21 → 5.65 s).
   */
  private async runSharded(shards: ScoringShards | null, batches: AsyncIterable<ScoreInput[]>, emit: (r: ImageResult[]) => Promise<void>, withDetails: boolean, aborted: () => boolean): Promise<void> {
    if (shards?.alive) await this.onShardsScoring?.();
    // Each batch's results, read when it is its turn (a shard's stay serialized until then: unpackResults).
    // `scoreOnShard` never rejects (a failed batch is scored here), so a race over them never throws.
    const queue: { done: boolean; results: Promise<() => ImageResult[]> }[] = [];
    const emitHead = async () => emit((await queue.shift()!.results)());
    const emitFinished = async () => {
      while (queue.length && queue[0].done) await emitHead();
    };
    const scoring = () => queue.filter((s) => !s.done);
    for await (const batch of batches) {
      if (aborted()) break;
      if (!shards?.alive) {
        while (queue.length) await emitHead();
        this.batchCounts.here++;
        await emit(await this.scoreHere(batch, withDetails));
        continue;
      }
      this.batchCounts.shards++;
      const slot = { done: false, results: this.scoreOnShard(shards, batch, withDetails) };
      void slot.results.then(() => (slot.done = true));
      queue.push(slot);
      await emitFinished();
      while (queue.length >= 4 * shards.size || scoring().length >= 2 * shards.size) {
        if (queue.length >= 4 * shards.size) await emitHead();
        else await Promise.race(scoring().map((s) => s.results));
        await emitFinished();
      }
    }
    // Batches already scored are reported even after a cancel: that work is done.
    while (queue.length) await emitHead();
  }

  /** One batch on this thread (through the preprocessing workers when there are any). */
  private async scoreHere(batch: ScoreInput[], withDetails: boolean): Promise<ImageResult[]> {
    return this.scorer.scorePrepared(batch.map((b) => b.path), await this.prepare(batch), withDetails);
  }

  /** Prepares a batch in the preprocessing workers when they run, else here; a failure is an error per image. */
  private prepare(batch: ScoreInput[]): Promise<(ModelImage | Error)[]> {
    return (this.pool?.alive ? this.prepareInPool(batch) : this.prepareAll(batch)).catch((err: Error) => batch.map(() => new ImageDecodeError(`could not prepare: ${err.message}`)));
  }

  private async scoreOnShard(shards: ScoringShards, batch: ScoreInput[], withDetails: boolean): Promise<() => ImageResult[]> {
    try {
      const { results, timings } = await shards.score(batch.map(workItem), withDetails);
      for (const stage of Object.keys(timings) as (keyof StageTimings)[]) this.timings[stage] += timings[stage];
      return () => unpackResults(results);
    } catch (err) {
      // A shard that failed or died must never stall scoring or drop the batch: score it here.
      this.notice(`a scoring shard failed a batch (${(err as Error).message}); it was scored on the caller's thread instead`);
      const results = await this.scoreHere(batch, withDetails);
      return () => results;
    }
  }

  private async runPipelined(batches: AsyncIterable<ScoreInput[]>, emit: (r: ImageResult[]) => Promise<void>, withDetails: boolean, aborted: () => boolean): Promise<void> {
    let ready: { paths: string[]; prepared: Promise<(ModelImage | Error)[]> } | null = null;
    const overlap = this.pipeline !== 'phased';
    const advance = async (next: ScoreInput[] | null) => {
      const current = ready;
      ready = null;
      let finish: (() => Promise<ImageResult[]>) | null = null;
      if (overlap && next && !aborted()) ready = { paths: next.map((b) => b.path), prepared: this.prepare(next) };
      if (current && !aborted()) finish = await this.scorer.inferPrepared(current.paths, await current.prepared, withDetails);
      if (!overlap && next && !aborted()) ready = { paths: next.map((b) => b.path), prepared: this.prepare(next) };
      if (finish) await emit(await finish());
    };
    for await (const batch of batches) await advance(batch);
    await advance(null);
  }
}
