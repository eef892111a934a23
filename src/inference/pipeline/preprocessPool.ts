/**
 * A small pool of preprocessing worker threads (see preprocessWorker.ts). From the bundle it starts
 * dist/preprocessWorker.js; from the TypeScript sources (tests, tsx) it starts the .ts entry through tsx.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { prepareOrtEnvironment } from '../backends/onnx';
import type { Compressor } from '../detectors/complexity';
import type { PairImageSpecs } from '../image/fastpath';
import { ImageDecodeError, type ModelImage } from '../image/preprocess';
import type { PreprocessRequest, PreprocessResponse, WorkItem } from './workerProtocol';

type Item = WorkItem;

/** Starts the worker script shared by the preprocessing pool and the scoring shards. */
/**
 * V8's young generation per worker (MB). The default lets each of the 2–4 worker isolates grow tens of MB of
 * nursery that their small per-batch garbage does not need: measured on the built-in MNIST pair, 10k PNGs
 * (2 shards), peak RSS 415–440 MB → 372–399 MB at the same CPU time (within 1–2%).
 */
export const WORKER_YOUNG_GENERATION_MB = 4;

export function startWorker(): Worker {
  prepareOrtEnvironment(); // the worker may start onnxruntime before this thread does
  const resourceLimits = { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB };
  const bundled = join(__dirname, 'preprocessWorker.js');
  if (existsSync(bundled)) return new Worker(bundled, { resourceLimits });
  // Running from sources: register tsx in the worker (the CommonJS hook for require(), the ESM hooks for the
  // engine's dynamic import()s), then load the TypeScript entry.
  const entry = join(__dirname, '..', 'preprocessWorker.ts'); // the worker is an engine entry point, one level up
  // (tsx's ESM API is imported by file URL: its CommonJS wrapper cannot find its loader from an eval'd worker.)
  const esmApi = pathToFileURL(join(dirname(require.resolve('tsx/esm/api')), 'index.mjs')).href;
  const bootstrap = `require('tsx/cjs'); import(${JSON.stringify(esmApi)}).then((tsx) => { tsx.register(); require(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { eval: true, resourceLimits });
}

export class PreprocessPool {
  /** Live workers; one that fails or exits is removed, and with none left `prepare` rejects at once. */
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (r: PreprocessResponse) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private turn = 0;

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const worker = startWorker();
      worker.unref();
      worker.on('message', (res: PreprocessResponse) => {
        this.pending.get(res.id)?.resolve(res);
        this.pending.delete(res.id);
      });
      const retire = (err: Error) => {
        const index = this.workers.indexOf(worker);
        if (index >= 0) this.workers.splice(index, 1);
        this.failAll(err);
      };
      worker.on('error', retire);
      worker.on('exit', (code) => retire(new Error(`preprocessing worker exited with code ${code}`)));
      this.workers.push(worker);
    }
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /** Splits the batch across every live worker (contiguous parts, so that the order is kept). */
  async prepare(items: Item[], specs: PairImageSpecs, options: { maxInputPixels: number; maxFileBytes: number; complexity: Compressor | false }): Promise<(ModelImage | Error)[]> {
    if (this.workers.length === 0) throw new Error('no preprocessing worker is running');
    const parts = Math.max(1, Math.min(this.workers.length, Math.floor(items.length / 8)));
    const size = Math.ceil(items.length / parts);
    const chunks = Array.from({ length: parts }, (_, k) => items.slice(k * size, (k + 1) * size));
    const responses = await Promise.all(chunks.map((chunk) => this.send(chunk, specs, options)));
    const c = specs.classifier;
    const v = specs.vae;
    return responses.flatMap((response) =>
      response.results.map((r): ModelImage | Error => {
        if ('error' in r) return new ImageDecodeError(r.error);
        if (!v) return { width: c.width, height: c.height, channels: c.channels, pixels: r.pixels, complexityBits: r.complexityBits };
        // L(x) belongs to the image the VAE sees.
        return { width: c.width, height: c.height, channels: c.channels, pixels: r.pixels, forVae: { width: v.width, height: v.height, channels: v.channels, pixels: r.vaePixels!, complexityBits: r.complexityBits } };
      }),
    );
  }

  private send(items: Item[], specs: PairImageSpecs, options: { maxInputPixels: number; maxFileBytes: number; complexity: Compressor | false }): Promise<PreprocessResponse> {
    const id = this.nextId++;
    const worker = this.workers[this.turn++ % this.workers.length];
    return new Promise<PreprocessResponse>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ kind: 'prepare', id, items, specs, ...options } satisfies PreprocessRequest);
    });
  }

  get alive(): boolean {
    return this.workers.length > 0;
  }

  async dispose(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
