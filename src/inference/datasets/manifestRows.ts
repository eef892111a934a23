/**
 * A dataset manifest's rows in compact form, for the editor: positions in typed arrays and the texts (path as
 * written, label, problem) in one string per field, built by the manifest worker and sent to the extension
 * host as a few transferable buffers and strings instead of a million objects (structured-cloning those
 * stalled the host as long as parsing did). A ManifestRow is made only when asked for (`at`), its absolute
 * path resolved again from the path as written — the same function, the same answer.
 */
import { type ManifestInfo, type ManifestRow, resolveManifestPath } from './datasetManifest';

/** What crosses from the worker: typed arrays (transferred) and three texts with their offsets. */
export interface CompactRowsPayload {
  count: number;
  /** line, endLine, start, end of each row. */
  positions: Int32Array;
  texts: { rawPath: string; label: string; problem: string };
  /** Offsets of each row's text in `texts` (count + 1 each). */
  offsets: { rawPath: Uint32Array; label: Uint32Array; problem: Uint32Array };
  baseDir: string;
  roots: string[];
  restricted: boolean;
}

export interface EditorManifest extends ManifestInfo {
  rows: CompactRows;
  problemCount: number;
  lineCount: number;
}

type TextField = 'rawPath' | 'label' | 'problem';

/** Builds the payload row by row (in the worker). */
export class CompactRowsBuilder {
  private count = 0;
  private positions = new Int32Array(4 * 1024);
  private readonly parts: Record<TextField, string[]> = { rawPath: [], label: [], problem: [] };
  private readonly lengths: Record<TextField, number> = { rawPath: 0, label: 0, problem: 0 };
  private offsets: Record<TextField, Uint32Array> = { rawPath: new Uint32Array(1025), label: new Uint32Array(1025), problem: new Uint32Array(1025) };

  add(row: ManifestRow): void {
    const i = this.count++;
    if (4 * this.count > this.positions.length) {
      const grown = new Int32Array(this.positions.length * 2);
      grown.set(this.positions);
      this.positions = grown;
      for (const f of ['rawPath', 'label', 'problem'] as TextField[]) {
        const o = new Uint32Array(this.offsets[f].length * 2);
        o.set(this.offsets[f]);
        this.offsets[f] = o;
      }
    }
    this.positions.set([row.line, row.endLine, row.start, row.end], 4 * i);
    for (const f of ['rawPath', 'label', 'problem'] as TextField[]) {
      const v = row[f] ?? '';
      if (v) this.parts[f].push(v);
      this.lengths[f] += v.length;
      this.offsets[f][i + 1] = this.lengths[f];
    }
  }

  finish(options: { baseDir: string; roots?: string[]; restricted?: boolean }): CompactRowsPayload {
    const n = this.count;
    return {
      count: n,
      positions: this.positions.slice(0, 4 * n),
      texts: { rawPath: this.parts.rawPath.join(''), label: this.parts.label.join(''), problem: this.parts.problem.join('') },
      offsets: { rawPath: this.offsets.rawPath.slice(0, n + 1), label: this.offsets.label.slice(0, n + 1), problem: this.offsets.problem.slice(0, n + 1) },
      baseDir: options.baseDir,
      roots: options.roots ?? [],
      restricted: options.restricted ?? false,
    };
  }
}

/** Read side (extension host): an array-like of ManifestRow made on demand. */
export class CompactRows implements Iterable<ManifestRow> {
  readonly length: number;
  constructor(private readonly p: CompactRowsPayload) {
    this.length = p.count;
  }

  private text(f: TextField, i: number): string | null {
    const o = this.p.offsets[f];
    return o[i + 1] > o[i] ? this.p.texts[f].slice(o[i], o[i + 1]) : null;
  }

  line(i: number): number {
    return this.p.positions[4 * i];
  }

  at(i: number): ManifestRow {
    const pos = this.p.positions;
    const rawPath = this.text('rawPath', i);
    const problem = this.text('problem', i);
    const resolved = rawPath ? resolveManifestPath(rawPath, this.p.baseDir, { roots: this.p.roots, restricted: this.p.restricted }) : null;
    return { index: i, line: pos[4 * i], endLine: pos[4 * i + 1], start: pos[4 * i + 2], end: pos[4 * i + 3], rawPath, path: resolved?.path ?? null, label: this.text('label', i), problem };
  }

  *[Symbol.iterator](): Iterator<ManifestRow> {
    for (let i = 0; i < this.length; i++) yield this.at(i);
  }

  map<T>(fn: (row: ManifestRow, i: number) => T): T[] {
    const out: T[] = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = fn(this.at(i), i);
    return out;
  }

  /** The row whose record covers a 0-based document line (rows are in line order). */
  rowAtLine(line: number): ManifestRow | undefined {
    const pos = this.p.positions;
    let lo = 0;
    let hi = this.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (line < pos[4 * mid]) hi = mid - 1;
      else if (line > pos[4 * mid + 1]) lo = mid + 1;
      else return this.at(mid);
    }
    return undefined;
  }
}
