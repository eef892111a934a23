/**
 * Parses dataset manifests for the editor in the manifest worker (src/worker/manifestWorker.ts), so that a
 * manifest of a million rows never stalls the extension host: the host sends a path (saved documents: the
 * worker reads the file) or the text, and receives compact rows. No vscode import (tests drive it in Node).
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ManifestFormat } from '../inference/datasets/datasetManifest';
import { CompactRows, type CompactRowsPayload, type EditorManifest } from '../inference/datasets/manifestRows';
import type { ManifestWorkerRequest } from '../worker/manifestWorker';

type Answer =
  | { type: 'parsed'; id: number; info: Omit<EditorManifest, 'rows' | 'problemCount' | 'lineCount'>; lineCount: number; problemCount: number; payload: CompactRowsPayload }
  | { type: 'failed'; id: number; name: string; message: string };

export interface ManifestParseRequest {
  format: ManifestFormat;
  baseDir: string;
  roots: string[];
  restricted: boolean;
  /** The saved file to read (preferred: the text never passes through the host), or the document's text. */
  path?: string;
  text?: string;
  signal?: AbortSignal;
}

export class ManifestParser {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (m: EditorManifest) => void; reject: (e: Error) => void }>();

  /** `script`: the worker bundle (dist/manifestWorker.js beside dist/extension.js), or a loader for the sources in tests. */
  constructor(private readonly script = join(__dirname, 'manifestWorker.js'), private readonly workerOptions: ConstructorParameters<typeof Worker>[1] = {}) {}

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.script, this.workerOptions);
    w.unref();
    w.on('message', (m: Answer) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'parsed') p.resolve({ ...m.info, lineCount: m.lineCount, problemCount: m.problemCount, rows: new CompactRows(m.payload) });
      else p.reject(Object.assign(new Error(m.message), { name: m.name }));
    });
    const fail = (err: Error) => {
      this.worker = null;
      for (const p of this.pending.values()) p.reject(new Error(`the manifest worker stopped: ${err.message}`));
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    this.worker = w;
    return w;
  }

  parse(req: ManifestParseRequest): Promise<EditorManifest> {
    const id = this.nextId++;
    const worker = this.ensureWorker();
    return new Promise<EditorManifest>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const { signal, ...rest } = req;
      if (signal) {
        if (signal.aborted) return reject(Object.assign(new Error('manifest parsing was cancelled'), { name: 'AbortError' }));
        signal.addEventListener('abort', () => worker.postMessage({ type: 'cancel', id } satisfies ManifestWorkerRequest), { once: true });
      }
      worker.postMessage({ type: 'parse', id, ...rest } satisfies ManifestWorkerRequest);
    });
  }

  dispose(): void {
    void this.worker?.terminate();
    this.worker = null;
  }
}
