/**
 * Score cache: an image's scores keyed by the SHA-256 of its bytes and the identity of the pair that scored
 * it, so that a renamed or copied image is not scored twice and a change of pair, calibration, α or rule
 * never serves stale verdicts. A path index (path → size, mtime, key) answers "what do we know about this
 * file" without reading it — hovers and Explorer badges use it.
 *
 * Stored as one JSON file (compact rows) written atomically (temp file + rename), loaded at activation,
 * bounded by least-recent use. A corrupt file is discarded and rebuilt, never an error for the user.
 * No `vscode` import.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { writeFileAtomicAsync } from '../inference/atomicFile';
import type { ImageResult } from '../inference/engine';

export { writeFileAtomicAsync };

/** 2: the classifier-confidence p-value (pValueConfidence) was added; older files are rebuilt. */
export const CACHE_VERSION = 2;

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

interface CacheFile {
  version: number;
  fields: readonly string[];
  /** Least recently used first. */
  entries: [string, Packed][];
  paths: [string, number, number, string][];
}

export interface ScoreCacheOptions {
  maxEntries: number;
  /** One line per notable event (load, discard, write failure). */
  log?: (message: string) => void;
  /** Delay before a change is written (ms); 0 writes only on flush(). */
  saveDelayMs?: number;
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

export class ScoreCache {
  private readonly entries = new Map<string, CachedScore>();
  private readonly paths = new Map<string, PathEntry>();
  private identityHash = '';
  private maxEntries: number;
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private writing: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<(paths: string[] | 'all') => void>();

  private constructor(readonly file: string, private readonly options: ScoreCacheOptions) {
    this.maxEntries = Math.max(1, Math.floor(options.maxEntries));
  }

  /** Loads the cache file; a missing file starts empty, a corrupt one is discarded (and logged). */
  static async open(file: string, options: ScoreCacheOptions): Promise<ScoreCache> {
    const cache = new ScoreCache(file, options);
    await cache.load();
    return cache;
  }

  private async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.options.log?.(`score cache: cannot read ${this.file} (${(err as Error).message}); starting empty`);
      return;
    }
    try {
      const data = JSON.parse(text) as CacheFile;
      if (!data || typeof data !== 'object' || data.version !== CACHE_VERSION) throw new Error(`unsupported version ${(data as CacheFile | null)?.version}`);
      if (JSON.stringify(data.fields) !== JSON.stringify(FIELDS)) throw new Error('different fields');
      if (!Array.isArray(data.entries) || !Array.isArray(data.paths)) throw new Error('entries or paths missing');
      const entries = new Map<string, CachedScore>();
      for (const e of data.entries) {
        if (!Array.isArray(e) || typeof e[0] !== 'string') throw new Error('malformed entry');
        entries.set(e[0], unpack(e[1]));
      }
      const paths = new Map<string, PathEntry>();
      for (const p of data.paths) {
        if (!Array.isArray(p) || typeof p[0] !== 'string' || typeof p[1] !== 'number' || typeof p[2] !== 'number' || typeof p[3] !== 'string') throw new Error('malformed path entry');
        if (entries.has(p[3])) paths.set(p[0], { size: p[1], mtimeMs: p[2], key: p[3] });
      }
      for (const [k, v] of entries) this.entries.set(k, v);
      for (const [k, v] of paths) this.paths.set(k, v);
      this.evict();
      this.options.log?.(`score cache: ${this.entries.size} scores loaded from ${this.file}`);
    } catch (err) {
      this.entries.clear();
      this.paths.clear();
      this.options.log?.(`score cache: ${this.file} is corrupt (${(err as Error).message}); discarded, a new cache will be written`);
      await rm(this.file, { force: true }).catch(() => undefined);
    }
  }

  get size(): number {
    return this.entries.size;
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
    if (this.evict()) this.changed('all');
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

  /** By content key; refreshes its recency. */
  get(key: string): CachedScore | undefined {
    const v = this.entries.get(key);
    if (v) {
      this.entries.delete(key);
      this.entries.set(key, v);
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
    if (!prev || prev.key !== entry.key) this.changed([path]);
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
    this.entries.delete(where.key);
    this.entries.set(where.key, toCached(result));
    this.paths.delete(path);
    this.paths.set(path, { size: where.size, mtimeMs: where.mtimeMs, key: where.key });
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
    this.changed('all');
    await this.flush();
  }

  private changed(paths: string[] | 'all'): void {
    this.dirty = true;
    this.emit(paths);
    const delay = this.options.saveDelayMs ?? 2000;
    if (delay > 0 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush().catch((err: Error) => this.options.log?.(`score cache: cannot write ${this.file} (${err.message})`));
      }, delay);
      this.timer.unref?.();
    }
  }

  /** Writes pending changes now (atomically). Concurrent flushes are serialised. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.writing = this.writing.catch(() => undefined).then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      const data: CacheFile = {
        version: CACHE_VERSION,
        fields: FIELDS,
        entries: [...this.entries].map(([k, v]) => [k, pack(v)]),
        paths: [...this.paths].map(([p, e]) => [p, e.size, e.mtimeMs, e.key]),
      };
      try {
        await writeFileAtomicAsync(this.file, JSON.stringify(data));
      } catch (err) {
        this.dirty = true;
        throw err;
      }
    });
    return this.writing;
  }

  dispose(): Promise<void> {
    this.listeners.clear();
    return this.flush().catch((err: Error) => this.options.log?.(`score cache: cannot write ${this.file} (${err.message})`));
  }
}
