/**
 * JSON Lines result files (`--format jsonl`): the first line is a header naming the pair and its calibration,
 * then one result per line, in input order, appended as results come in. A run killed at any moment leaves
 * complete lines and at most one torn last line: `--resume` keeps the former and drops the latter; `merge`
 * combines shards; the extension's "Open Results…" shows them. The summary is not in the file: it is
 * printed on stderr (and recomputed by `merge` from the lines).
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { ImageResult, PairInfo } from '../engineTypes';

/** Marks the header line: a result line never has this field. */
export const HEADER_MARK = 'oodLensResults';
export const RESULTS_FORMAT_VERSION = 1;

export interface ResultsHeader {
  [HEADER_MARK]: number;
  pair: PairInfo;
  provider: string;
  /** SHA-256 of the pair manifest and every model file it names: equal on every machine holding the same pair. */
  pairFingerprint: string;
  /** SHA-256 of the calibration file, or null for an uncalibrated pair. */
  calibrationFingerprint: string | null;
  shard: string | null;
  /** The inputs as given on the command line (folders, files, IDX files, or the manifest). */
  inputs: string[];
  manifest: boolean;
  createdAt: string;
}

/** Where an input came from, written with each result line (see ListedInput). */
export interface InputOrigin {
  /** Position in the whole, unsharded input sequence: merge orders by it. */
  seq: number;
  arg: number;
  key: string;
  /** Dataset manifests: the row's label and whether the classifier confidently disagrees with it. */
  givenLabel?: string | null;
  possibleLabelError?: boolean;
}

/** A result line as read back: the JSON record of an ImageResult plus its origin. */
export type ResultLine = Record<string, unknown> & InputOrigin & { path: string; verdict: string };

function sha256File(path: string, hash: ReturnType<typeof createHash>): void {
  const st = statSync(path);
  if (st.isDirectory()) {
    for (const name of readdirSync(path).sort()) sha256File(join(path, name), hash);
    return;
  }
  hash.update(`${st.size}:`);
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

/**
 * Fingerprints of a pair (manifest + model files) and of its calibration, so that shards scored with
 * different models or calibrations are never merged or resumed into one another. Paths are not part of it:
 * the same pair mounted elsewhere on another node has the same fingerprint.
 */
export function pairFingerprints(manifestPath: string): { pair: string; calibration: string | null } {
  const text = readFileSync(manifestPath, 'utf8');
  const manifest = JSON.parse(text.replace(/^\uFEFF/, '')) as Record<string, unknown>;
  const dir = dirname(manifestPath);
  const at = (p: string) => (isAbsolute(p) ? p : join(dir, p));
  const models: string[] = [];
  // Every "path" under the model sections names a model file or folder; `features.fit` the fitted features.
  const walk = (v: unknown) => {
    if (!v || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v)) {
      if ((k === 'path' || k === 'fit') && typeof x === 'string') models.push(x);
      else walk(x);
    }
  };
  walk(manifest.classifier);
  walk(manifest.vae);
  walk(manifest.features);
  const pairHash = createHash('sha256').update(text);
  for (const m of models) {
    pairHash.update(`\0${m}\0`);
    if (existsSync(at(m))) sha256File(at(m), pairHash);
  }
  // The fitted features' data files (features-knn.f16, …) sit beside their features.json.
  const fit = (manifest.features as { fit?: unknown } | undefined)?.fit;
  if (typeof fit === 'string' && existsSync(at(fit))) {
    const fitDir = dirname(at(fit));
    for (const name of readdirSync(fitDir).sort()) if (name.startsWith('features') && join(fitDir, name) !== at(fit)) sha256File(join(fitDir, name), pairHash);
  }
  let calibration: string | null = null;
  if (typeof manifest.calibration === 'string' && existsSync(at(manifest.calibration))) {
    const h = createHash('sha256');
    sha256File(at(manifest.calibration), h);
    calibration = h.digest('hex');
  }
  return { pair: pairHash.digest('hex'), calibration };
}

export function isHeader(value: unknown): value is ResultsHeader {
  return !!value && typeof value === 'object' && HEADER_MARK in value;
}

export class ResultsFileError extends Error {}

/**
 * Reads a JSONL result file line by line (streamed, bounded memory): the header, then every complete result
 * line with its 1-based line number. A last line without its newline is a torn write: it is reported through
 * `onTorn` (with the byte offset where it starts) and not yielded. A complete line that is not valid JSON is
 * an error naming the file and the line.
 */
export async function* readResultLines(path: string, options: { onHeader?: (h: ResultsHeader) => void; onTorn?: (offset: number, text: string) => void; onEnd?: (completeBytes: number) => void } = {}): AsyncGenerator<{ line: number; record: ResultLine }> {
  let carry: Buffer = Buffer.alloc(0);
  let offset = 0; // bytes before `carry`
  let line = 0;
  let sawHeader = false;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    const buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    let at = 0;
    for (let k = buf.indexOf(10, at); k >= 0; k = buf.indexOf(10, at)) {
      line++;
      const text = buf.toString('utf8', at, k).trim();
      at = k + 1;
      if (!text) continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new ResultsFileError(`${path}, line ${line}: not a JSON result line (${(err as Error).message})`);
      }
      if (!sawHeader) {
        if (!isHeader(value)) throw new ResultsFileError(`${path}: not an OOD Lens result file (line 1 is no "${HEADER_MARK}" header; write it with --format jsonl)`);
        if (value[HEADER_MARK] > RESULTS_FORMAT_VERSION) throw new ResultsFileError(`${path}: written by a newer OOD Lens (format ${value[HEADER_MARK]}); update ood-lens`);
        sawHeader = true;
        options.onHeader?.(value);
        continue;
      }
      const rec = value as ResultLine;
      if (!rec || typeof rec !== 'object' || typeof rec.path !== 'string' || typeof rec.verdict !== 'string' || typeof rec.seq !== 'number' || typeof rec.key !== 'string') {
        throw new ResultsFileError(`${path}, line ${line}: not a result line (needs path, verdict, seq and key)`);
      }
      yield { line, record: rec };
    }
    offset += at;
    carry = buf.subarray(at);
  }
  if (carry.length) options.onTorn?.(offset, carry.toString('utf8'));
  if (!sawHeader && !carry.length) throw new ResultsFileError(`${path}: empty, no result header`);
  options.onEnd?.(offset);
}

/** The header of a result file (its first line). */
export async function readResultsHeader(path: string): Promise<ResultsHeader> {
  let header: ResultsHeader | undefined;
  const lines = readResultLines(path, { onHeader: (h) => (header = h) });
  await lines.next();
  await lines.return(undefined as never);
  if (!header) throw new ResultsFileError(`${path}: no complete header line`);
  return header;
}

/** Whether two result headers can be merged or resumed into each other; otherwise what differs. */
export function headerMismatch(a: ResultsHeader, b: ResultsHeader): string | null {
  if (a.pairFingerprint !== b.pairFingerprint) return `another pair (${b.pair.name} with other model files or manifest than ${a.pair.name})`;
  if (a.calibrationFingerprint !== b.calibrationFingerprint) return 'another calibration of the pair';
  if (a.pair.alpha !== b.pair.alpha) return `another α (${b.pair.alpha} against ${a.pair.alpha})`;
  if (a.pair.rule !== b.pair.rule) return `another verdict rule (${b.pair.rule} against ${a.pair.rule})`;
  if (a.manifest !== b.manifest) return a.manifest ? 'folder or file inputs, not a dataset manifest' : 'a dataset manifest, not folder or file inputs';
  return null;
}

/** Splits a line read back into the result and where its input came from. */
export function splitLine(record: ResultLine): { result: Omit<ImageResult, 'details'>; origin: InputOrigin & { row?: number } } {
  const { seq, arg, key, row, givenLabel, possibleLabelError, ...result } = record as ResultLine & { row?: number };
  const origin: InputOrigin & { row?: number } = { seq, arg, key };
  if (row !== undefined) origin.row = row;
  if (givenLabel !== undefined) {
    origin.givenLabel = givenLabel;
    origin.possibleLabelError = possibleLabelError ?? false;
  }
  return { result: result as unknown as Omit<ImageResult, 'details'>, origin };
}

/** The records of several result files in one sequence ordered by `seq` (each file is in order: k-way merge). */
export async function* mergedRecords(files: string[]): AsyncGenerator<{ record: ResultLine; file: string }> {
  const its = files.map((f) => readResultLines(f)[Symbol.asyncIterator]());
  const heads: ({ record: ResultLine; line: number } | null)[] = await Promise.all(its.map(async (it) => ((await it.next()).value ?? null) as never));
  for (;;) {
    let best = -1;
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i];
      if (h && (best < 0 || h.record.seq < heads[best]!.record.seq)) best = i;
    }
    if (best < 0) return;
    const cur = heads[best]!;
    yield { record: cur.record, file: files[best] };
    const n = await its[best].next();
    heads[best] = n.done ? null : n.value;
    if (heads[best] && heads[best]!.record.seq < cur.record.seq) {
      throw new ResultsFileError(`${files[best]}, line ${heads[best]!.line}: results are not in input order (seq ${heads[best]!.record.seq} after ${cur.record.seq}); was the file edited or concatenated? Sort it by "seq" or merge the original files`);
    }
  }
}

