/**
 * Data-parallel scoring (the engine's `sharded` pipeline): one worker thread per core, each with its own
 * copy of the pair on onnxruntime's CPU provider with a single intra-op thread, each scoring whole batches
 * start to finish (read, decode, L(x), both models, scores, verdict). Measured on 2 cores: two
 * single-threaded sessions run the default pair's models at ~6,300–6,600 images/s together, against
 * ~5,500–6,500 for one session with two threads, and no thread ever waits on another inside a batch; the
 * caller's thread only hands out batches and puts the results back in order.
 */
import { deserialize } from 'node:v8';
import type { Worker } from 'node:worker_threads';
import type { ImageResult, StageTimings } from '../engineTypes';
import { startWorker } from './preprocessPool';
import type { ShardEngineOptions, ShardRequest, ShardResponse, WorkItem } from './workerProtocol';
import type { PairDescription } from '../pair/pair';

interface Shard {
  worker: Worker;
  /** Batches sent and not yet answered. */
  inFlight: number;
}

export interface ShardBatch {
  /** The batch's results, serialized: unpackResults reads them when they are reported. */
  results: Uint8Array;
  /** Time each stage took in the shard for this batch (ms). */
  timings: StageTimings;
}

/**
 * A shard's results for a batch, as objects. They cross from the shard as bytes and become objects only when
 * their turn to be reported comes: objects that waited for the batches before them in this thread's heap
 * survived its young-generation collections and filled its old space with garbage (measured on the built-in
 * pair, 100,000 PNGs: ~1 KB an image, a third of this thread's old-space growth), which only full collections free.
 */
export function unpackResults(bytes: Uint8Array): ImageResult[] {
  return deserialize(bytes) as ImageResult[];
}

export class ScoringShards {
  private readonly shards: Shard[] = [];
  private readonly pending = new Map<number, { shard: Shard; resolve: (r: ShardResponse) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private closing = false;
  /** The pair as the first shard loaded it (asked for with `describe`). */
  pair?: PairDescription;

  private constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const shard: Shard = { worker: startWorker(), inFlight: 0 };
      shard.worker.unref();
      shard.worker.on('message', (res: ShardResponse) => {
        const p = this.pending.get(res.id);
        if (!p) return;
        this.pending.delete(res.id);
        // An idle shard must not keep the process alive; a busy one must (its answer is awaited), and so must
        // one being closed (its exit is awaited: a late answer to its open must not let the process end first).
        if (--shard.inFlight === 0 && !this.closing) shard.worker.unref();
        if ('error' in res) p.reject(new Error(res.error));
        else p.resolve(res);
      });
      const retire = (err: Error) => {
        const index = this.shards.indexOf(shard);
        if (index >= 0) this.shards.splice(index, 1);
        for (const [id, p] of this.pending) {
          if (p.shard !== shard) continue;
          this.pending.delete(id);
          p.reject(err);
        }
      };
      shard.worker.on('error', retire);
      shard.worker.on('exit', (code) => retire(new Error(`scoring shard exited with code ${code}`)));
      this.shards.push(shard);
    }
  }

  /**
   * Starts `size` shards and loads the pair in each; rejects (and stops them all) if any cannot. `describe`:
   * the first shard also sends the pair's description (`pair`).
   */
  static async start(size: number, options: ShardEngineOptions, describe = false): Promise<ScoringShards> {
    const pool = new ScoringShards(size);
    try {
      const opened = await Promise.all(pool.shards.map((shard, i) => pool.request(shard, { kind: 'open', id: 0, options, describe: describe && i === 0 })));
      if (describe && 'opened' in opened[0]) pool.pair = opened[0].pair;
    } catch (err) {
      await pool.dispose();
      throw err;
    }
    return pool;
  }

  get size(): number {
    return this.shards.length;
  }

  get alive(): boolean {
    return this.shards.length > 0;
  }

  /** Scores one batch on the least busy shard; rejects when that shard fails or dies. */
  async score(items: WorkItem[], withDetails: boolean): Promise<ShardBatch> {
    if (!this.shards.length) throw new Error('no scoring shard is running');
    const shard = this.shards.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
    const res = await this.request(shard, { kind: 'score', id: 0, items, withDetails });
    if (!('results' in res)) throw new Error('scoring shard answered without results');
    return { results: res.results, timings: res.timings };
  }

  private request(shard: Shard, req: ShardRequest): Promise<ShardResponse> {
    const id = this.nextId++;
    if (shard.inFlight++ === 0) shard.worker.ref();
    return new Promise<ShardResponse>((resolve, reject) => {
      this.pending.set(id, { shard, resolve, reject });
      shard.worker.postMessage({ ...req, id });
    });
  }

  /**
   * Asks every shard to finish the batches it has, release its models and end its thread, and waits for
   * that. Never `terminate()`: a thread stopped from outside inside onnxruntime's native code aborts the
   * process (seen in this project's tests), and in VS Code that process is the extension host.
   */
  async dispose(): Promise<void> {
    this.closing = true;
    const shards = this.shards.splice(0);
    await Promise.all(
      shards.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.worker.threadId < 0) return resolve(); // already ended
            s.worker.once('exit', () => resolve());
            s.worker.ref(); // the exit is awaited
            s.worker.postMessage({ kind: 'close', id: 0 } satisfies ShardRequest);
          }),
      ),
    );
  }
}
