/**
 * The manifest worker (dist/manifestWorker.js): parses dataset manifests for the editor off the extension
 * host's thread — from the file on disk when the document is saved, else from the text it is sent — with the
 * engine's streaming reader, and answers with the rows in compact form (manifestRows.ts). One parse at a
 * time per id; `cancel` stops a parse between chunks.
 */
import { parentPort } from 'node:worker_threads';
import { fileChunks, type ManifestFormat, readManifest, textChunks } from '../inference/datasets/datasetManifest';
import { CompactRowsBuilder } from '../inference/datasets/manifestRows';

export type ManifestWorkerRequest =
  | { type: 'parse'; id: number; format: ManifestFormat; baseDir: string; roots: string[]; restricted: boolean; text?: string; path?: string }
  | { type: 'cancel'; id: number };

const running = new Map<number, AbortController>();

async function parse(req: Extract<ManifestWorkerRequest, { type: 'parse' }>): Promise<void> {
  const abort = new AbortController();
  running.set(req.id, abort);
  try {
    const options = { format: req.format, baseDir: req.baseDir, roots: req.roots, restricted: req.restricted, signal: abort.signal, yieldEvery: 20_000 };
    const reader = readManifest(req.path ? fileChunks(req.path) : textChunks(req.text ?? '', 1024 * 1024), options);
    const builder = new CompactRowsBuilder();
    for await (const rows of reader.batches()) for (const r of rows) builder.add(r);
    const payload = builder.finish(options);
    parentPort!.postMessage(
      { type: 'parsed', id: req.id, info: reader.info, lineCount: reader.lineCount, problemCount: reader.problemCount, payload },
      [payload.positions.buffer, payload.offsets.rawPath.buffer, payload.offsets.label.buffer, payload.offsets.problem.buffer] as ArrayBuffer[],
    );
  } catch (err) {
    parentPort!.postMessage({ type: 'failed', id: req.id, name: (err as Error).name, message: (err as Error).message });
  } finally {
    running.delete(req.id);
  }
}

parentPort?.on('message', (req: ManifestWorkerRequest) => {
  if (req.type === 'cancel') running.get(req.id)?.abort();
  else void parse(req);
});
