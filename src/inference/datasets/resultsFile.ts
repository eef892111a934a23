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
  /**
   * What identifies the input's file when it was scored (an IDX entry: its archive's): size in bytes and
   * modification time; null when it could not be read. `--resume` scores an input again when they changed.
   */
  inputSize?: number | null;
  inputMtimeMs?: number | null;
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

/** Longest line read from a result file: a result line is ~1 KB, a header with thousands of labels ~1 MB. */
export const MAX_RESULT_LINE_BYTES = 4 * 1024 * 1024;

const VERDICTS: readonly string[] = ['in-distribution', 'out-of-distribution', 'uncalibrated', 'error'];
const P_VALUE_KEYS: readonly string[] = ['elbo', 'complexity', 'confidence', 'energy', 'knn', 'mahalanobis', 'layers', 'fisher'];
const NUMBER_FIELDS = ['msp', 'entropy', 'energy', 'elbo', 'reconstructionLogLik', 'kl', 'elboBitsPerDim', 'logPxBound', 'complexityBits', 'complexityScore', 'knnDistance', 'mahalanobis', 'layerDistance', 'fisherScore'] as const;
/** Every field a result line may hold (an ImageResult's JSON fields, then its origin's). */
const RESULT_LINE_FIELDS = new Set<string>([
  'path', 'prediction', 'label', ...NUMBER_FIELDS, 'pValue', 'pValues', 'firedBy', 'verdict', 'error',
  'seq', 'arg', 'key', 'row', 'givenLabel', 'possibleLabelError', 'inputSize', 'inputMtimeMs',
]);

const isNat = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isProbability = (v: unknown) => typeof v === 'number' && v >= 0 && v <= 1;
const isNullOr = (v: unknown, check: (x: unknown) => boolean) => v === null || check(v);

/**
 * What is wrong with a parsed result line, in words naming the field, or null when every field is of its
 * kind: known verdicts and test names, p-values in [0, 1], finite numbers, text where text belongs. A file
 * is data from elsewhere (another machine, an edited file): nothing in it reaches a terminal or a table
 * unchecked.
 */
export function resultLineProblem(value: unknown): string | null {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  const r = value as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!RESULT_LINE_FIELDS.has(k)) return `unknown field ${JSON.stringify(k).slice(0, 60)}`;
  for (const k of ['path', 'verdict', 'key'] as const) if (typeof r[k] !== 'string') return `"${k}" must be text`;
  if (!isNat(r.seq)) return '"seq" must be a whole number ≥ 0';
  if (!isNat(r.arg)) return '"arg" must be a whole number ≥ 0';
  if (r.row !== undefined && !isNat(r.row)) return '"row" must be a whole number ≥ 0';
  if (!VERDICTS.includes(r.verdict as string)) return `"verdict" must be one of ${VERDICTS.join(', ')}`;
  if (!isNullOr(r.prediction, isNat)) return '"prediction" must be a class index or null';
  for (const k of ['label', 'error'] as const) if (!isNullOr(r[k], (v) => typeof v === 'string')) return `"${k}" must be text or null`;
  for (const k of NUMBER_FIELDS) if (r[k] !== undefined && !isNullOr(r[k], Number.isFinite)) return `"${k}" must be a finite number or null`;
  if (!isNullOr(r.msp, isProbability)) return '"msp" must be in [0, 1] or null';
  if (!isNullOr(r.pValue, isProbability)) return '"pValue" must be in [0, 1] or null';
  const pValues = r.pValues;
  if (!pValues || typeof pValues !== 'object' || Array.isArray(pValues)) return '"pValues" must be an object of p-values';
  for (const [k, v] of Object.entries(pValues)) {
    if (!P_VALUE_KEYS.includes(k)) return `"pValues" has an unknown test ${JSON.stringify(k).slice(0, 60)}`;
    if (!isNullOr(v, isProbability)) return `"pValues.${k}" must be in [0, 1] or null`;
  }
  if (!Array.isArray(r.firedBy) || !r.firedBy.every((t) => P_VALUE_KEYS.includes(t as string))) return `"firedBy" must be a list of test names (${P_VALUE_KEYS.join(', ')})`;
  if (r.givenLabel !== undefined && !isNullOr(r.givenLabel, (v) => typeof v === 'string')) return '"givenLabel" must be text or null';
  if (r.possibleLabelError !== undefined && typeof r.possibleLabelError !== 'boolean') return '"possibleLabelError" must be true or false';
  if (r.inputSize !== undefined && !isNullOr(r.inputSize, isNat)) return '"inputSize" must be a whole number ≥ 0 or null';
  if (r.inputMtimeMs !== undefined && !isNullOr(r.inputMtimeMs, Number.isFinite)) return '"inputMtimeMs" must be a number or null';
  return null;
}

/** What is wrong with a parsed header line (null when nothing): the fields merge and the report show or compare. */
export function headerProblem(h: Record<string, unknown>): string | null {
  const pair = h.pair as Record<string, unknown> | null;
  if (!pair || typeof pair !== 'object' || Array.isArray(pair)) return '"pair" must be an object';
  for (const k of ['name', 'manifestPath', 'backend', 'provider', 'rule'] as const) if (typeof pair[k] !== 'string') return `"pair.${k}" must be text`;
  if (typeof pair.alpha !== 'number' || !(pair.alpha > 0 && pair.alpha < 1)) return '"pair.alpha" must be a number in (0, 1)';
  if (typeof pair.calibrated !== 'boolean') return '"pair.calibrated" must be true or false';
  if (!Array.isArray(pair.labels) || !pair.labels.every((l) => typeof l === 'string')) return '"pair.labels" must be a list of text';
  if (typeof h.provider !== 'string') return '"provider" must be text';
  if (typeof h.pairFingerprint !== 'string') return '"pairFingerprint" must be text';
  if (!isNullOr(h.calibrationFingerprint, (v) => typeof v === 'string')) return '"calibrationFingerprint" must be text or null';
  if (!isNullOr(h.shard, (v) => typeof v === 'string' && /^\d+\/\d+$/.test(v))) return '"shard" must be "K/N" or null';
  if (!Array.isArray(h.inputs) || !h.inputs.every((i) => typeof i === 'string')) return '"inputs" must be a list of paths';
  if (typeof h.manifest !== 'boolean') return '"manifest" must be true or false';
  return null;
}

export interface ReadLinesOptions {
  onHeader?: (h: ResultsHeader) => void;
  /** A last line without its newline (a torn write): its 1-based line number and the byte offset where it starts. */
  onTorn?: (offset: number, line: number) => void;
  onEnd?: (completeBytes: number) => void;
}

/**
 * Reads a JSONL result file line by line (streamed, bounded memory, linear time: each byte is scanned once,
 * and a line's pieces are joined only once its newline is found): the header, then every complete result
 * line with its 1-based line number. A last line without its newline is a torn write: it is reported through
 * `onTorn` and not yielded. A line longer than MAX_RESULT_LINE_BYTES, a complete line that is not valid JSON,
 * or a record with a field of the wrong kind is an error naming the file and the line.
 */
export async function* readResultLines(path: string, options: ReadLinesOptions = {}): AsyncGenerator<{ line: number; record: ResultLine }> {
  let pieces: Buffer[] = []; // the current line's bytes so far, without a newline
  let pending = 0;
  let offset = 0; // bytes of the complete lines before the current one
  let line = 0;
  let sawHeader = false;
  const tooLong = () => new ResultsFileError(`${path}, line ${line + 1}: longer than ${MAX_RESULT_LINE_BYTES / (1024 * 1024)} MiB, the limit for a line of a result file; not a result file, or a damaged one`);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let at = 0;
    for (let k = chunk.indexOf(10, at); k >= 0; k = chunk.indexOf(10, at)) {
      if (pending + k - at > MAX_RESULT_LINE_BYTES) throw tooLong();
      const bytes = pending ? Buffer.concat([...pieces, chunk.subarray(at, k)]) : chunk.subarray(at, k);
      offset += bytes.length + 1;
      pieces = [];
      pending = 0;
      line++;
      at = k + 1;
      const text = bytes.toString('utf8').trim();
      if (!text) continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new ResultsFileError(`${path}, line ${line}: not a JSON result line (${(err as Error).message})`);
      }
      if (!sawHeader) {
        if (!isHeader(value)) throw new ResultsFileError(`${path}: not an OOD Lens result file (line 1 is no "${HEADER_MARK}" header; write it with --format jsonl)`);
        if (typeof value[HEADER_MARK] !== 'number' || value[HEADER_MARK] > RESULTS_FORMAT_VERSION) throw new ResultsFileError(`${path}: written by a newer OOD Lens (format ${String(value[HEADER_MARK]).slice(0, 20)}); update ood-lens`);
        const problem = headerProblem(value as unknown as Record<string, unknown>);
        if (problem) throw new ResultsFileError(`${path}, line ${line}: not a valid result header: ${problem}`);
        sawHeader = true;
        options.onHeader?.(value);
        continue;
      }
      const problem = resultLineProblem(value);
      if (problem) throw new ResultsFileError(`${path}, line ${line}: not a valid result line: ${problem}`);
      yield { line, record: value as ResultLine };
    }
    if (at < chunk.length) {
      if (pending + chunk.length - at > MAX_RESULT_LINE_BYTES) throw tooLong();
      pieces.push(chunk.subarray(at));
      pending += chunk.length - at;
    }
  }
  if (pending) options.onTorn?.(offset, line + 1);
  if (!sawHeader && !pending) throw new ResultsFileError(`${path}: empty, no result header`);
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
  const { seq, arg, key, row, givenLabel, possibleLabelError, inputSize, inputMtimeMs, ...result } = record as ResultLine & { row?: number };
  const origin: InputOrigin & { row?: number } = { seq, arg, key };
  if (row !== undefined) origin.row = row;
  if (inputSize !== undefined) origin.inputSize = inputSize;
  if (inputMtimeMs !== undefined) origin.inputMtimeMs = inputMtimeMs;
  if (givenLabel !== undefined) {
    origin.givenLabel = givenLabel;
    origin.possibleLabelError = possibleLabelError ?? false;
  }
  return { result: result as unknown as Omit<ImageResult, 'details'>, origin };
}

/** The records of several result files in one sequence ordered by `seq` (each file is in order: k-way merge). */
export async function* mergedRecords(files: string[], onTorn?: (file: string, line: number) => void): AsyncGenerator<{ record: ResultLine; file: string }> {
  const its = files.map((f) => readResultLines(f, { onTorn: (_offset, line) => onTorn?.(f, line) })[Symbol.asyncIterator]());
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

