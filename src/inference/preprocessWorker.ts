/**
 * Worker-thread side of the preprocessing pool and of the scoring shards.
 *  - `prepare`: reads files, decodes and resizes them (fast path where it applies) and computes their
 *    complexity, so that this work overlaps inference, which onnxruntime-node runs synchronously on the
 *    engine's thread (the `overlapped` and `phased` pipelines).
 *  - `open` + `score`: a scoring shard (the `sharded` pipeline, scoringShards.ts) — this thread loads its
 *    own copy of the pair with one onnxruntime thread and scores whole batches, start to finish.
 */
import { serialize } from 'node:v8';
import { parentPort } from 'node:worker_threads';
import { complexityBits, loadCompressor } from './detectors/complexity';
import type { OodEngine } from './engine';
import type { ScoreInput, StageTimings } from './engineTypes';
import { preparePairBatch } from './image/fastpath';
import { ImageDecodeError, readCheckedSync } from './image/preprocess';
import type { PreparedMessage, PreprocessRequest, PreprocessResponse, ShardRequest, ShardResponse } from './pipeline/workerProtocol';

async function prepare(req: PreprocessRequest): Promise<{ response: PreprocessResponse; transfer: ArrayBuffer[] }> {
  // Synchronous reads: this thread has nothing else to do meanwhile, and they cost a quarter of async ones.
  const sources = req.items.map((item) => {
    if ('error' in item) return new ImageDecodeError(item.error);
    if ('raw' in item) return item.raw;
    if ('bytes' in item) return item.bytes;
    try {
      return readCheckedSync('fsPath' in item && item.fsPath ? item.fsPath : item.path, req.maxFileBytes);
    } catch (err) {
      return err as Error;
    }
  });
  const prepared = await preparePairBatch(sources, req.specs, req.maxInputPixels);
  if (req.complexity) await loadCompressor(req.complexity);
  const transfer: ArrayBuffer[] = [];
  const results = prepared.map((p): PreparedMessage => {
    if (p instanceof Error) return { error: p.message };
    // Own buffer per image so that it can be transferred, not copied.
    const own = (px: Uint8Array) => {
      const mine = px.byteOffset === 0 && px.byteLength === px.buffer.byteLength ? px : px.slice();
      transfer.push(mine.buffer as ArrayBuffer);
      return mine;
    };
    // L(x) of the image the VAE sees: S(x) sets it against the VAE's −log p(x).
    const bits = req.complexity ? complexityBits(p.forVae ?? p, req.complexity) : undefined;
    return { pixels: own(p.pixels), ...(p.forVae ? { vaePixels: own(p.forVae.pixels) } : {}), complexityBits: bits };
  });
  return { response: { id: req.id, results }, transfer };
}

let shardEngine: Promise<OodEngine> | undefined;

async function shard(req: Exclude<ShardRequest, { kind: 'close' }>): Promise<ShardResponse> {
  if (req.kind === 'open') {
    // Loaded on demand, so that preprocessing-only workers never load onnxruntime.
    const { OodEngine } = await import('./engine');
    // One intra-op thread: the shards are the parallelism (one per core), and a single-threaded session
    // never waits on another thread inside a batch. Low-memory sessions (no memory patterns; LoadOptions.lowMemory).
    shardEngine = OodEngine.create({ ...req.options, provider: 'cpu', threads: 1, spinning: false, preprocessWorkers: 0, pipeline: 'overlapped', lowMemorySessions: true });
    const engine = await shardEngine;
    if (!req.describe) return { id: req.id, opened: true };
    const { describePair } = await import('./pair/pair');
    return { id: req.id, opened: true, pair: describePair(engine.pair) };
  }
  if (!shardEngine) throw new Error('this shard has no pair loaded');
  const engine = await shardEngine;
  const before = { ...engine.timings };
  const inputs: ScoreInput[] = req.items.map((item) => ('error' in item ? { path: item.path, error: item.error } : 'raw' in item ? { path: item.path, source: item.raw } : 'bytes' in item ? { path: item.path, source: item.bytes } : { path: item.path, fsPath: item.fsPath }));
  const results = serialize(await engine.scoreBatchInThisThread(inputs, req.withDetails));
  const timings = Object.fromEntries(Object.entries(engine.timings).map(([k, v]) => [k, v - before[k as keyof StageTimings]])) as unknown as StageTimings;
  return { id: req.id, results, timings };
}

/** Shard requests being worked on: a close waits for them. */
const inHand = new Set<Promise<unknown>>();

/**
 * Ends a shard thread only once no onnxruntime call is running in it: terminating a thread from outside while
 * it is inside native inference code aborts the whole process.
 */
async function close(): Promise<never> {
  while (inHand.size) await Promise.allSettled([...inHand]);
  const engine = await shardEngine?.catch(() => undefined);
  await engine?.dispose().catch(() => undefined);
  process.exit(0); // in a worker thread: ends this thread only
}

if (parentPort) {
  const port = parentPort;
  port.on('message', (req: PreprocessRequest | ShardRequest) => {
    if (req.kind === 'close') {
      void close();
      return;
    }
    if (req.kind === 'prepare') {
      prepare(req).then(
        ({ response, transfer }) => port.postMessage(response, transfer),
        (err: Error) => port.postMessage({ id: req.id, results: req.items.map(() => ({ error: `preprocessing failed: ${err.message}` })) }),
      );
      return;
    }
    const work = shard(req).then(
      // The serialized results are copied, not transferred: a buffer malloc'd here and freed by the other thread
      // goes back to this thread's malloc arena from there (measured: more system time and a higher peak RSS at 100k).
      (response) => port.postMessage(response),
      (err: Error) => port.postMessage({ id: req.id, error: err.message } satisfies ShardResponse),
    );
    inHand.add(work);
    void work.finally(() => inHand.delete(work));
  });
}
