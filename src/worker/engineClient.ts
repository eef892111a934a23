/**
 * The client side of the engine worker protocol, without `vscode`: request ids, streamed progress,
 * cancellation, and restarting the worker when it dies. EngineHost (src/providers/engineHost.ts) wraps it
 * for VS Code; the worker tests drive it directly against the real worker.
 */
import type { Worker } from 'node:worker_threads';
import type { InspectModelOptions } from '../inference/fit/modelInspection';
import type { EngineConfig, EnginePairInfo, FitEvent, FitReport, FitRequest, ImageResult, InspectResult, ModelFacts, ScoreManySummary, WorkerRequest, WorkerResponse } from '../shared/engineProtocol';

export type LogLevel = 'trace' | 'info' | 'warn' | 'error';

export interface EngineClientOptions {
  /** Starts a new worker running dist/worker.js (or the sources under tsx in tests). */
  spawn: () => Worker;
  log: (level: LogLevel, message: string) => void;
  /** Called after a replacement worker was started and re-configured (with the new info or the load error). */
  onRestarted?: (result: EnginePairInfo | Error) => void;
  /** At most this many automatic restarts per minute; after that the next request restarts the worker. */
  maxRestartsPerMinute?: number;
  /** How long dispose() waits for the worker to release its models before ending it (default 10 s). */
  shutdownTimeoutMs?: number;
}

/** The answer to a fit cancelled before the worker began it. */
export const FIT_CANCELLED_BEFORE_START = 'fit was cancelled before it started; nothing was written';

/** The worker stopped while a request was in flight. */
export class EngineCrashedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineCrashedError';
  }
}

/** A request the worker answered with an error response. */
export class EngineRequestError extends Error {
  constructor(message: string, readonly kind: string, name?: string) {
    super(message);
    this.name = name && name !== 'Error' ? name : 'EngineRequestError';
  }
}

interface Pending {
  kind: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  onProgress?: (p: { done: number; total: number; results: ImageResult[] }) => void;
  onFitEvent?: (event: FitEvent) => void;
}

type RequestBody = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

export class EngineClient {
  private worker?: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private config?: EngineConfig;
  private lastConfigure?: Promise<EnginePairInfo>;
  private disposed = false;
  private readonly crashes: number[] = [];
  private lastWorkerError?: Error;
  /** Fits answered as cancelled before the worker began them: their late answers are logged, not delivered. */
  private readonly abandonedFits = new Set<number>();

  constructor(private readonly options: EngineClientOptions) {}

  /** Whether a worker is running now. */
  get running(): boolean {
    return !!this.worker;
  }

  /** (Re)loads the engine with this configuration; resolves with the pair's info or rejects with the load error. */
  configure(config: EngineConfig): Promise<EnginePairInfo> {
    this.config = config;
    this.lastConfigure = this.request<EnginePairInfo>({ kind: 'configure', config });
    // Callers that only want later requests to see the new pair need not handle this rejection.
    this.lastConfigure.catch(() => undefined);
    return this.lastConfigure;
  }

  info(): Promise<EnginePairInfo> {
    return this.request<EnginePairInfo>({ kind: 'info' });
  }

  inspect(path: string): Promise<InspectResult> {
    return this.request<InspectResult>({ kind: 'inspect', path });
  }

  /** Streams results through `onProgress`; aborting `signal` stops after the batch in flight and resolves with `cancelled: true`. */
  scoreMany(paths: string[], onProgress: (p: { done: number; total: number; results: ImageResult[] }) => void, signal?: AbortSignal): Promise<ScoreManySummary> {
    if (signal?.aborted) return Promise.resolve({ done: 0, total: paths.length, cancelled: true, seconds: 0 });
    let id = 0;
    const promise = this.request<ScoreManySummary>({ kind: 'scoreMany', paths }, onProgress, (assigned) => (id = assigned));
    if (signal) {
      const onAbort = () => {
        if (this.pending.has(id)) this.post({ id: this.nextId++, kind: 'cancel', target: id });
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const cleanup = () => signal.removeEventListener('abort', onAbort);
      promise.then(cleanup, cleanup);
    }
    return promise;
  }

  /** What a classifier file declares, read in the worker (the model is loaded and run once there). */
  inspectModel(path: string, options?: InspectModelOptions): Promise<ModelFacts> {
    return this.request<ModelFacts>({ kind: 'inspectModel', path, options });
  }

  /**
   * Creates a pair in the worker (fitPair). Events stream through `onEvent`; aborting `signal` cancels it, and
   * the promise then rejects with the worker's "cancelled; nothing was written" error — at once when the worker
   * has not begun the fit yet (no event for it so far, e.g. while the worker itself is still starting).
   */
  fit(options: FitRequest, onEvent: (event: FitEvent) => void, signal?: AbortSignal): Promise<FitReport> {
    let id = 0;
    let begun = false;
    const promise = this.request<FitReport>({ kind: 'fit', options }, undefined, (assigned) => (id = assigned), (event) => {
      begun = true;
      onEvent(event);
    });
    if (signal) {
      const onAbort = () => {
        const pending = this.pending.get(id);
        if (!pending) return;
        this.post({ id: this.nextId++, kind: 'cancel', target: id });
        // The worker has not begun this fit (it may still be starting: loading onnxruntime, sharp, TF.js): the
        // cancel reaches it before the fit does anything, so there is nothing to wait for. Answered now; the
        // worker's own answer for this id is then ignored.
        if (!begun) {
          this.pending.delete(id);
          this.abandonedFits.add(id);
          pending.reject(new EngineRequestError(FIT_CANCELLED_BEFORE_START, 'fit', 'FitError'));
        }
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      const cleanup = () => signal.removeEventListener('abort', onAbort);
      promise.then(cleanup, cleanup);
    }
    return promise;
  }

  /**
   * Stops the worker; pending requests reject. The worker first stops its scans and releases the models
   * (`shutdown`, at most `shutdownTimeoutMs`), so that no thread is ended inside onnxruntime's native code: that
   * aborts the whole process (the extension host), a known hazard of native addons in worker threads.
   */
  async dispose(): Promise<void> {
    this.disposed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.rejectAll(new EngineCrashedError('the engine was shut down'));
    if (!worker) return;
    const id = this.nextId++;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.options.shutdownTimeoutMs ?? 10_000);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      worker.on('message', (m: WorkerResponse) => m.id === id && done());
      worker.once('exit', done);
      try {
        worker.postMessage({ id, kind: 'shutdown' } satisfies WorkerRequest);
      } catch {
        done();
      }
    });
    await worker.terminate().catch(() => undefined);
  }

  private request<T>(body: RequestBody, onProgress?: Pending['onProgress'], onId?: (id: number) => void, onFitEvent?: Pending['onFitEvent']): Promise<T> {
    if (this.disposed) return Promise.reject(new EngineCrashedError('the engine was shut down'));
    this.ensureWorker(body.kind === 'configure');
    const id = this.nextId++;
    onId?.(id);
    const promise = new Promise<T>((resolve, reject) => {
      this.pending.set(id, { kind: body.kind, resolve: resolve as (v: unknown) => void, reject, onProgress, onFitEvent });
    });
    this.post({ ...body, id } as WorkerRequest);
    return promise;
  }

  private post(message: WorkerRequest): void {
    try {
      this.worker?.postMessage(message);
    } catch (err) {
      const pending = this.pending.get(message.id);
      this.pending.delete(message.id);
      pending?.reject(new EngineRequestError(`could not send the ${message.kind} request to the engine: ${(err as Error).message}`, message.kind));
    }
  }

  /** Starts a worker when none runs; a replacement is configured again before anything else is sent. */
  private ensureWorker(configuring: boolean): void {
    if (this.worker) return;
    const worker = this.options.spawn();
    this.worker = worker;
    this.lastWorkerError = undefined;
    worker.on('message', (m: WorkerResponse) => this.onMessage(m));
    worker.on('error', (err) => {
      this.lastWorkerError = err;
      this.options.log('error', `engine worker error: ${err.stack ?? err.message}`);
    });
    worker.on('messageerror', (err) => this.options.log('error', `engine worker sent an unreadable message: ${err.message}`));
    worker.on('exit', (code) => this.onExit(worker, code));
    worker.stdout?.on('data', (chunk: Buffer) => this.options.log('trace', `[worker stdout] ${chunk.toString().trimEnd()}`));
    worker.stderr?.on('data', (chunk: Buffer) => this.options.log('warn', `[worker stderr] ${chunk.toString().trimEnd()}`));
    if (!configuring && this.config) {
      const config = this.config;
      this.lastConfigure = this.request<EnginePairInfo>({ kind: 'configure', config });
      this.lastConfigure.then(
        (info) => this.options.onRestarted?.(info),
        (err: Error) => this.options.onRestarted?.(err),
      );
    }
  }

  private onMessage(m: WorkerResponse): void {
    if (m.kind === 'log') {
      this.options.log(m.level, m.message);
      return;
    }
    const pending = this.pending.get(m.id);
    if (!pending) {
      if (this.abandonedFits.has(m.id) && (m.kind === 'ok' || m.kind === 'error')) {
        this.abandonedFits.delete(m.id);
        // The worker's own end of a fit that was answered as cancelled when the user cancelled it.
        if (m.kind === 'ok') this.options.log('warn', `fit ${m.id}, cancelled before it started, completed in the worker anyway: ${(m.value as FitReport).manifestPath} was written`);
        else this.options.log('info', `fit ${m.id}, cancelled before it started, ended in the worker: ${m.message}`);
      }
      return;
    }
    if (m.kind === 'fitProgress') {
      try {
        pending.onFitEvent?.(m.event);
      } catch (err) {
        this.options.log('error', `fit progress handler failed: ${(err as Error).stack ?? (err as Error).message}`);
      }
      return;
    }
    if (m.kind === 'progress') {
      try {
        pending.onProgress?.({ done: m.done, total: m.total, results: m.results });
      } catch (err) {
        this.options.log('error', `progress handler failed: ${(err as Error).stack ?? (err as Error).message}`);
      }
      return;
    }
    this.pending.delete(m.id);
    if (m.kind === 'ok') pending.resolve(m.value);
    else pending.reject(new EngineRequestError(m.message, pending.kind, m.name));
  }

  private onExit(worker: Worker, code: number): void {
    if (this.worker !== worker) return; // an old worker that was replaced or terminated on purpose
    this.worker = undefined;
    if (this.disposed) return;
    const why = this.lastWorkerError ? `: ${this.lastWorkerError.message}` : '';
    const inFlight = [...new Set([...this.pending.values()].map((p) => p.kind))];
    this.options.log('error', `the engine worker stopped unexpectedly (exit code ${code})${why}${inFlight.length ? `; failed requests: ${inFlight.join(', ')}` : ''}`);
    this.rejectAll(new EngineCrashedError(`the engine stopped unexpectedly (exit code ${code})${why}`));
    const now = Date.now();
    this.crashes.push(now);
    while (this.crashes.length && now - this.crashes[0] > 60_000) this.crashes.shift();
    if (this.crashes.length <= (this.options.maxRestartsPerMinute ?? 3)) {
      this.options.log('info', 'restarting the engine worker');
      this.ensureWorker(false);
    } else {
      this.options.log('warn', `the engine worker stopped ${this.crashes.length} times within a minute; it will restart on the next request`);
    }
  }

  private rejectAll(err: Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(err);
  }
}
