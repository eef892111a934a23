/**
 * Score cache: an image's scores keyed by the SHA-256 of its bytes and the identity of the pair that scored
 * it, so that a renamed or copied image is not scored twice and a change of pair, calibration, α or rule
 * never serves stale verdicts. A path index (path → size, mtime, key) answers "what do we know about this
 * file" without reading it — hovers and Explorer badges use it.
 *
 * Stored as an append-only log (JSON Lines: a header, then one record per change — a score, a path entry,
 * a use), so that a save appends only what changed since the last one. Loading streams the log and gives
 * the event loop back every few thousand records. When the log holds more than twice the live records it
 * is compacted: rewritten from memory in slices, to a temp file that is fsynced and renamed over the log.
 * Several windows may append to the same log (each append is one write of whole lines). Bounded by least
 * recent use (replaying the log reproduces the order). A torn last line (a crash mid-append) or a
 * malformed record is skipped and logged; a log with a bad header is discarded. No `vscode` import.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomicAsync } from '../inference/io/atomicFile';
import type { ImageResult } from '../inference/engine';

export { writeFileAtomicAsync };

/**
 * 2: the classifier-confidence p-value (pValueConfidence) was added; 3: the append-only log (the JSON file
 * of versions 1-2 is not read). Files of another version are rebuilt.
 */
export const CACHE_VERSION = 3;
const CACHE_FORMAT = 'ood-lens-score-cache';

/** A cached score: an ImageResult without its path and without the per-image details. */
export type CachedScore = Omit<ImageResult, 'path' | 'details'>;

const FIELDS = [
  'prediction', 'label', 'msp', 'entropy', 'energy', 'elbo', 'reconstructionLogLik', 'kl', 'elboBitsPerDim', 'logPxBound',
  'complexityBits', 'complexityScore', 'pValue', 'pValueElbo', 'pValueComplexity', 'firedBy', 'verdict', 'error', 'pValueConfidence',
] as const;
type Packed = (string | number | null | string[])[];

function pack(r: CachedScore): Packed {
  return [
    r.prediction, r.label, r.msp, r.entropy, r.energy, r.elbo, r.reconstructionLogLik, r.kl, r.elboBitsPerDim, r.logPxBound,
    r.complexityBits, r.complexityScore, r.pValue, r.pValues.elbo, r.pValues.complexity, r.firedBy, r.verdict, r.error, r.pValues.confidence,
  ];
}

const VERDICTS = new Set(['in-distribution', 'out-of-distribution', 'uncalibrated', 'error']);

function unpack(p: unknown): CachedScore {
  if (!Array.isArray(p) || p.length !== FIELDS.length) throw new Error('entry has the wrong shape');
  const num = (i: number): number | null => {
    const v = p[i];
    if (v === null || typeof v === 'number') return v as number | null;
    throw new Error(`${FIELDS[i]} is not a number`);
  };
  const str = (i: number): string | null => {
    const v = p[i];
    if (v === null || typeof v === 'string') return v as string | null;
    throw new Error(`${FIELDS[i]} is not a string`);
  };
  const verdict = str(16);
  if (!verdict || !VERDICTS.has(verdict)) throw new Error(`unknown verdict ${verdict}`);
  const firedBy = p[15];
  if (!Array.isArray(firedBy) || firedBy.some((f) => f !== 'elbo' && f !== 'complexity' && f !== 'confidence')) throw new Error('firedBy is not a list');
  return {
    prediction: num(0), label: str(1), msp: num(2), entropy: num(3), energy: num(4), elbo: num(5), reconstructionLogLik: num(6), kl: num(7),
    elboBitsPerDim: num(8), logPxBound: num(9), complexityBits: num(10), complexityScore: num(11), pValue: num(12),
    pValues: { elbo: num(13), complexity: num(14), confidence: num(18) }, firedBy: firedBy as CachedScore['firedBy'], verdict: verdict as CachedScore['verdict'], error: str(17),
  };
}

function toCached(r: ImageResult | CachedScore): CachedScore {
  const { path: _path, details: _details, ...rest } = r as ImageResult;
  return rest;
}

interface PathEntry {
  size: number;
  mtimeMs: number;
  key: string;
}

/**
 * Log records: `["s", key, packed score]` (stored, now most recent), `["p", path, size, mtimeMs, key]`
 * (path entry, most recent), `["u", key]` (used: most recent).
 */
type LogRecord = ['s', string, Packed] | ['p', string, number, number, string] | ['u', string];

/** Records between yields to the event loop while loading or compacting. */
const SLICE_RECORDS = 1000;

function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export interface ScoreCacheOptions {
  maxEntries: number;
  /** One line per notable event (load, discard, write failure). */
  log?: (message: string) => void;
  /** Delay before a change is written (ms); 0 writes only on flush(). */
  saveDelayMs?: number;
  /** Compaction when the log holds more than `compactFactor` × the live records (+ 1,000); default 2. */
  compactFactor?: number;
}

export interface ScoreCacheStats {
  /** Records in the log file as far as this instance knows (its own appends included). */
  logRecords: number;
  /** Records appended by the last save. */
  lastAppended: number;
  compactions: number;
  /** Malformed or torn records skipped by the last load. */
  skippedOnLoad: number;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** SHA-256 of a file's bytes (streamed for large files). */
export async function hashFile(path: string): Promise<string> {
  const st = await stat(path);
  if (st.size <= 16 * 1024 * 1024) return sha256Hex(await readFile(path));
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function parseRecord(line: string): LogRecord {
  return toRecord(JSON.parse(line));
}

function toRecord(r: unknown): LogRecord {
  if (!Array.isArray(r)) throw new Error('not a record');
  if (r[0] === 's' && r.length === 3 && typeof r[1] === 'string') return r as LogRecord;
  if (r[0] === 'p' && r.length === 5 && typeof r[1] === 'string' && typeof r[2] === 'number' && typeof r[3] === 'number' && typeof r[4] === 'string') return r as LogRecord;
  if (r[0] === 'u' && r.length === 2 && typeof r[1] === 'string') return r as LogRecord;
  throw new Error(`unknown record ${JSON.stringify(r[0])}`);
}

function headerLine(): string {
  return JSON.stringify({ format: CACHE_FORMAT, version: CACHE_VERSION, fields: FIELDS });
}

export class ScoreCache {
  private readonly entries = new Map<string, CachedScore>();
  private readonly paths = new Map<string, PathEntry>();
  private identityHash = '';
  private maxEntries: number;
  private timer: NodeJS.Timeout | undefined;
  /** Log lines not yet appended. */
  private pending: string[] = [];
  /** Keys already recorded as used since the last save (one "u" record each is enough). */
  private readonly usedSinceSave = new Set<string>();
  /** Everything must be rewritten (clear, a discarded file, a log that needs compaction). */
  private rewrite = false;
  private writing: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<(paths: string[] | 'all') => void>();
  private logRecords = 0;
  private lastAppended = 0;
  private compactions = 0;
  private skippedOnLoad = 0;

  private constructor(readonly file: string, private readonly options: ScoreCacheOptions) {
    this.maxEntries = Math.max(1, Math.floor(options.maxEntries));
  }

  /** Loads the log (streamed); a missing file starts empty, a file with a bad header is discarded (and logged). */
  static async open(file: string, options: ScoreCacheOptions): Promise<ScoreCache> {
    const cache = new ScoreCache(file, options);
    await cache.load();
    return cache;
  }

  private async load(): Promise<void> {
    let stream;
    try {
      const st = await stat(this.file);
      if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
      stream = createReadStream(this.file, { encoding: 'utf8', highWaterMark: 256 * 1024 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.options.log?.(`score cache: cannot read ${this.file} (${(err as Error).message}); starting empty`);
      return;
    }
    let header: boolean | null = null;
    let carry = '';
    let records = 0;
    let skipped = 0;
    let firstProblem = '';
    const headerText = headerLine();
    /** One record into the cache; an unreadable one is counted and skipped, the first problem kept for the log. */
    const replayOne = (read: () => LogRecord) => {
      try {
        this.replay(read());
        records++;
      } catch (err) {
        skipped++;
        firstProblem ||= (err as Error).message;
      }
    };
    const apply = (line: string) => {
      if (!line) return;
      if (header === null) {
        const h = JSON.parse(line) as { format?: unknown; version?: unknown; fields?: unknown };
        if (!h || h.format !== CACHE_FORMAT || h.version !== CACHE_VERSION) throw new Error(`unsupported format or version (${JSON.stringify(h?.version ?? null)})`);
        if (JSON.stringify(h.fields) !== JSON.stringify(FIELDS)) throw new Error('different fields');
        header = true;
        return;
      }
      // Another window that started the same file at the same moment wrote the header too.
      if (line === headerText) return;
      replayOne(() => parseRecord(line));
    };
    /** Lines parsed as one JSON array (far cheaper than one parse per line); line by line when that fails. */
    const applySlice = (lines: string[]) => {
      let start = 0;
      while (header === null && start < lines.length) apply(lines[start++]);
      const rest = lines.slice(start).filter((l) => l && l !== headerText);
      let parsed: unknown;
      try {
        parsed = JSON.parse(`[${rest.join(',')}]`);
      } catch {
        parsed = undefined;
      }
      if (!Array.isArray(parsed) || parsed.length !== rest.length) {
        for (const line of rest) apply(line);
        return;
      }
      for (const value of parsed) replayOne(() => toRecord(value));
    };
    try {
      for await (const chunk of stream) {
        const lines = (carry + (chunk as string)).split('\n');
        carry = lines.pop() ?? '';
        for (let i = 0; i < lines.length; i += SLICE_RECORDS) {
          applySlice(i === 0 && lines.length <= SLICE_RECORDS ? lines : lines.slice(i, i + SLICE_RECORDS));
          await yieldToEventLoop();
        }
      }
      // A last line without its newline: a save that was cut short. Whatever of it parses is kept.
      if (carry) {
        if (header === null) apply(carry);
        else {
          try {
            this.replay(parseRecord(carry));
            records++;
          } catch {
            skipped++;
            firstProblem ||= 'a torn last record';
          }
        }
      }
      if (header === null && records === 0) throw new Error('no header');
    } catch (err) {
      stream.destroy();
      this.entries.clear();
      this.paths.clear();
      this.options.log?.(`score cache: ${this.file} is corrupt (${(err as Error).message}); discarded, a new cache will be written`);
      await rm(this.file, { force: true }).catch(() => undefined);
      return;
    }
    this.logRecords = records;
    this.skippedOnLoad = skipped;
    this.evict();
    if (skipped) {
      this.options.log?.(`score cache: ${skipped} malformed records in ${this.file} skipped (${firstProblem}); the log will be rewritten`);
      this.rewrite = true;
      this.scheduleSave();
    } else if (this.needsCompaction()) {
      this.rewrite = true;
      this.scheduleSave();
    }
    this.options.log?.(`score cache: ${this.entries.size} scores loaded from ${this.file}`);
  }

  /** Applies one log record to the maps (loading). */
  private replay(r: LogRecord): void {
    if (r[0] === 's') {
      const score = unpack(r[2]);
      this.entries.delete(r[1]);
      this.entries.set(r[1], score);
    } else if (r[0] === 'p') {
      this.paths.delete(r[1]);
      this.paths.set(r[1], { size: r[2], mtimeMs: r[3], key: r[4] });
    } else {
      const v = this.entries.get(r[1]);
      if (v) {
        this.entries.delete(r[1]);
        this.entries.set(r[1], v);
      }
    }
  }

  get size(): number {
    return this.entries.size;
  }

  get stats(): ScoreCacheStats {
    return { logRecords: this.logRecords, lastAppended: this.lastAppended, compactions: this.compactions, skippedOnLoad: this.skippedOnLoad };
  }

  /** Identity of the active pair (EngineService.pairIdentity()); part of every key. */
  setIdentity(identity: string): void {
    const h = sha256Hex(identity).slice(0, 16);
    if (h === this.identityHash) return;
    this.identityHash = h;
    this.emit('all');
  }

  get identity(): string {
    return this.identityHash;
  }

  setMaxEntries(n: number): void {
    this.maxEntries = Math.max(1, Math.floor(n));
    if (this.evict()) {
      // Evictions are not logged: a smaller log is written instead.
      this.rewrite = true;
      this.changed('all');
    }
  }

  keyFor(contentHash: string): string {
    return `${contentHash}:${this.identityHash}`;
  }

  /** Listeners hear which paths changed (or 'all'). */
  onDidChange(listener: (paths: string[] | 'all') => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  private emit(paths: string[] | 'all'): void {
    for (const l of this.listeners) l(paths);
  }

  /** By content key; refreshes its recency (recorded at the next save). */
  get(key: string): CachedScore | undefined {
    const v = this.entries.get(key);
    if (v) {
      this.entries.delete(key);
      this.entries.set(key, v);
      if (!this.usedSinceSave.has(key)) {
        this.usedSinceSave.add(key);
        this.pending.push(JSON.stringify(['u', key]));
        this.scheduleSave();
      }
    }
    return v;
  }

  /**
   * What is known about a path without reading it: the score recorded for it under the current pair,
   * whatever the file holds now. For Explorer badges (no I/O allowed there).
   */
  peekPath(path: string): CachedScore | undefined {
    const p = this.paths.get(path);
    if (!p || !p.key.endsWith(`:${this.identityHash}`)) return undefined;
    return this.entries.get(p.key);
  }

  /**
   * The cached score of a file as it is now: by size+mtime from the path index, else by hashing its bytes.
   * Returns the content key too (for `put`), or null when the file cannot be read.
   */
  async lookup(path: string): Promise<{ score: CachedScore | undefined; key: string; size: number; mtimeMs: number } | null> {
    let st;
    try {
      st = await stat(path);
    } catch {
      return null;
    }
    if (!st.isFile()) return null;
    const known = this.paths.get(path);
    if (known && known.size === st.size && known.mtimeMs === st.mtimeMs && known.key.endsWith(`:${this.identityHash}`)) {
      const score = this.get(known.key);
      if (score) return { score, key: known.key, size: st.size, mtimeMs: st.mtimeMs };
    }
    let hash: string;
    try {
      hash = await hashFile(path);
    } catch {
      return null;
    }
    const key = this.keyFor(hash);
    const score = this.get(key);
    if (score) this.setPath(path, { size: st.size, mtimeMs: st.mtimeMs, key });
    return { score, key, size: st.size, mtimeMs: st.mtimeMs };
  }

  private setPath(path: string, entry: PathEntry): void {
    const prev = this.paths.get(path);
    this.paths.delete(path);
    this.paths.set(path, entry);
    this.pending.push(JSON.stringify(['p', path, entry.size, entry.mtimeMs, entry.key]));
    if (!prev || prev.key !== entry.key) this.changed([path]);
    else this.scheduleSave();
  }

  /**
   * Records a score. `at` is what `lookup` returned for the file before scoring (its key and stat); without
   * it the file is hashed now. Error results are not cached (they are cheap and often transient).
   */
  async put(path: string, result: ImageResult | CachedScore, at?: { key: string; size: number; mtimeMs: number } | null): Promise<void> {
    if (result.verdict === 'error') return;
    let where = at ?? null;
    if (!where) {
      try {
        const st = await stat(path);
        where = { key: this.keyFor(await hashFile(path)), size: st.size, mtimeMs: st.mtimeMs };
      } catch {
        return;
      }
    }
    const score = toCached(result);
    this.entries.delete(where.key);
    this.entries.set(where.key, score);
    this.paths.delete(path);
    this.paths.set(path, { size: where.size, mtimeMs: where.mtimeMs, key: where.key });
    this.pending.push(JSON.stringify(['s', where.key, pack(score)]), JSON.stringify(['p', path, where.size, where.mtimeMs, where.key]));
    this.evict();
    this.changed([path]);
  }

  /** Drops least-recently-used entries beyond the bound (and path entries pointing at them). */
  private evict(): boolean {
    let removed = false;
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
      removed = true;
    }
    while (this.paths.size > this.maxEntries * 2) {
      this.paths.delete(this.paths.keys().next().value as string);
      removed = true;
    }
    if (removed) for (const [p, e] of this.paths) if (!this.entries.has(e.key)) this.paths.delete(p);
    return removed;
  }

  /** Paths recorded with a given verdict under the current pair. */
  pathsWithVerdict(verdict: CachedScore['verdict']): string[] {
    const out: string[] = [];
    for (const [p, e] of this.paths) if (e.key.endsWith(`:${this.identityHash}`) && this.entries.get(e.key)?.verdict === verdict) out.push(p);
    return out;
  }

  async clear(): Promise<void> {
    this.entries.clear();
    this.paths.clear();
    this.pending = [];
    this.usedSinceSave.clear();
    this.rewrite = true;
    this.changed('all');
    await this.flush();
  }

  private changed(paths: string[] | 'all'): void {
    this.emit(paths);
    this.scheduleSave();
  }

  private scheduleSave(): void {
    const delay = this.options.saveDelayMs ?? 2000;
    if (delay > 0 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush().catch((err: Error) => this.options.log?.(`score cache: cannot write ${this.file} (${err.message})`));
      }, delay);
      this.timer.unref?.();
    }
  }

  private needsCompaction(): boolean {
    const live = this.entries.size + this.paths.size;
    return this.logRecords > (this.options.compactFactor ?? 2) * live + 1000;
  }

  /**
   * Writes pending changes now: appended to the log, or the whole log rewritten (compaction, clear, a new
   * file). Concurrent flushes are serialised.
   */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.writing = this.writing.catch(() => undefined).then(async () => {
      if (this.rewrite || this.needsCompaction()) return this.compact();
      if (!this.pending.length) return;
      const lines = this.pending;
      this.pending = [];
      this.usedSinceSave.clear();
      try {
        await this.append(lines);
      } catch (err) {
        this.pending = lines.concat(this.pending);
        throw err;
      }
      if (this.needsCompaction()) await this.compact();
    });
    return this.writing;
  }

  /**
   * Whole lines at the end of the log (O_APPEND), in writes of at most SLICE_RECORDS lines so that a large
   * save never builds one huge string; a new or emptied file gets the header first.
   */
  private async append(lines: string[]): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    const handle = await open(this.file, 'a');
    try {
      const { size } = await handle.stat();
      for (let i = 0; i < lines.length; i += SLICE_RECORDS) {
        const body = `${lines.slice(i, i + SLICE_RECORDS).join('\n')}\n`;
        await handle.write(i === 0 && size === 0 ? `${headerLine()}\n${body}` : body);
      }
    } finally {
      await handle.close();
    }
    this.logRecords += lines.length;
    this.lastAppended = lines.length;
  }

  /**
   * Rewrites the log from memory: written in slices (the event loop runs between them) to a temp file,
   * fsynced, renamed over the log. Changes made meanwhile stay pending for the next append.
   */
  private async compact(): Promise<void> {
    this.rewrite = false;
    this.pending = [];
    this.usedSinceSave.clear();
    try {
      await this.writeSnapshot();
    } catch (err) {
      // The changes were not written: the next save tries the whole log again.
      this.rewrite = true;
      throw err;
    }
  }

  private async writeSnapshot(): Promise<void> {
    const entries = [...this.entries];
    const paths = [...this.paths];
    await mkdir(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 8)}.tmp`;
    const handle = await open(tmp, 'w');
    let ok = false;
    try {
      await handle.write(`${headerLine()}\n`);
      for (let i = 0; i < entries.length; i += SLICE_RECORDS) {
        const text = entries
          .slice(i, i + SLICE_RECORDS)
          .map(([k, v]) => JSON.stringify(['s', k, pack(v)]))
          .join('\n');
        await handle.write(`${text}\n`);
      }
      for (let i = 0; i < paths.length; i += SLICE_RECORDS) {
        const text = paths
          .slice(i, i + SLICE_RECORDS)
          .map(([p, e]) => JSON.stringify(['p', p, e.size, e.mtimeMs, e.key]))
          .join('\n');
        await handle.write(`${text}\n`);
      }
      await handle.sync();
      ok = true;
    } finally {
      await handle.close();
      if (!ok) await rm(tmp, { force: true });
    }
    try {
      await rename(tmp, this.file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    this.logRecords = entries.length + paths.length;
    this.lastAppended = this.logRecords;
    this.compactions++;
  }

  dispose(): Promise<void> {
    this.listeners.clear();
    return this.flush().catch((err: Error) => this.options.log?.(`score cache: cannot write ${this.file} (${err.message})`));
  }
}
