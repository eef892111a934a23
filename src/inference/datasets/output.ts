/**
 * Result tables in the CLI's formats. `table`, `json` and `csv` files are written to `F.PID.tmp`, fsynced and
 * renamed over F only when complete (atomic: an interrupted run leaves any previous F as it was); `jsonl` is
 * appended to F itself, one line per result, flushed per batch, so that `--resume` can continue it.
 */
import { accessSync, closeSync, constants as fsConstants, fsyncSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { csvFormatRows } from 'd3-dsv';
import type { InputOrigin, ResultsHeader } from './resultsFile';
import type { TestName } from '../pair/calibration';
import { pidAlive } from '../io/outputLock';
import { csvCell, terminalText } from '../io/safeText';
import type { ImageResult, PairInfo } from '../engineTypes';
import { formatMsp, formatP } from '../../shared/format';

export type OutputFormat = 'table' | 'json' | 'csv' | 'jsonl';
export const OUTPUT_FORMATS: OutputFormat[] = ['table', 'json', 'csv', 'jsonl'];

/**
 * CSV text of rows, RFC 4180 (d3-dsv: a cell with a comma, quote or line break is quoted, its quotes doubled;
 * null and undefined are empty; numbers as `String(n)`), each row ending in a newline. It writes what
 * csv-stringify wrote, byte for byte, with an eighth of its garbage (csv-stringify made ~13 KB of short-lived
 * strings a result row: 57% of what the CLI's main thread allocated while scoring 10,000 images).
 */
export function csvText(rows: readonly (readonly unknown[])[]): string {
  // Its types say strings; d3-dsv's formatValue takes any value (null → empty, others `value + ''`).
  return csvFormatRows(rows as string[][]) + '\n';
}

/** Columns shared by CSV, the report panel's export and JSON records (same names as the JSON fields). */
export const RESULT_COLUMNS = [
  'path', 'prediction', 'label', 'msp', 'entropy', 'energy', 'elbo', 'elboBitsPerDim', 'pValue', 'verdict', 'error',
  'reconstructionLogLik', 'kl', 'logPxBound', 'complexityBits', 'complexityScore', 'pValueElbo', 'pValueComplexity', 'firedBy',
  'pValueConfidence', 'knnDistance', 'mahalanobis', 'pValueEnergy', 'pValueKnn', 'pValueMahalanobis',
  'layerDistance', 'pValueLayers', 'fisherScore', 'pValueFisher',
] as const;

export function resultRecord(r: ImageResult): Record<(typeof RESULT_COLUMNS)[number], string | number | null> {
  return {
    path: r.path,
    prediction: r.prediction,
    label: r.label,
    msp: r.msp,
    entropy: r.entropy,
    energy: r.energy,
    elbo: r.elbo,
    elboBitsPerDim: r.elboBitsPerDim,
    pValue: r.pValue,
    verdict: r.verdict,
    error: r.error,
    reconstructionLogLik: r.reconstructionLogLik,
    kl: r.kl,
    logPxBound: r.logPxBound,
    complexityBits: r.complexityBits,
    complexityScore: r.complexityScore,
    pValueElbo: r.pValues.elbo,
    pValueComplexity: r.pValues.complexity,
    firedBy: r.firedBy.join('+'),
    pValueConfidence: r.pValues.confidence,
    knnDistance: r.knnDistance ?? null,
    mahalanobis: r.mahalanobis ?? null,
    pValueEnergy: r.pValues.energy ?? null,
    pValueKnn: r.pValues.knn ?? null,
    pValueMahalanobis: r.pValues.mahalanobis ?? null,
    layerDistance: r.layerDistance ?? null,
    pValueLayers: r.pValues.layers ?? null,
    fisherScore: r.fisherScore ?? null,
    pValueFisher: r.pValues.fisher ?? null,
  };
}

export function jsonRecord(r: ImageResult): Record<string, unknown> {
  const { details: _details, ...rest } = r;
  return rest;
}

export interface Summary {
  count: number;
  scored: number;
  errors: number;
  inDistribution: number;
  outOfDistribution: number;
  uncalibrated: number;
  alpha: number;
  rule: string;
  seconds: number;
  imagesPerSecond: number;
}

export class SummaryCounter {
  private readonly start = Date.now();
  readonly s = { count: 0, scored: 0, errors: 0, inDistribution: 0, outOfDistribution: 0, uncalibrated: 0 };
  add(r: ImageResult): void {
    this.s.count++;
    if (r.verdict === 'error') this.s.errors++;
    else {
      this.s.scored++;
      if (r.verdict === 'in-distribution') this.s.inDistribution++;
      else if (r.verdict === 'out-of-distribution') this.s.outOfDistribution++;
      else this.s.uncalibrated++;
    }
  }
  /** Counts a result read back from a file (`--resume`, `merge`). */
  addVerdict(verdict: string): void {
    this.add({ verdict } as ImageResult);
  }
  summary(info: Pick<PairInfo, 'alpha' | 'rule'>, seconds = (Date.now() - this.start) / 1000): Summary {
    return { ...this.s, alpha: info.alpha, rule: info.rule, seconds, imagesPerSecond: seconds > 0 ? this.s.count / seconds : 0 };
  }
}

function fmt(v: number | null, digits = 4): string {
  if (v === null || v === undefined) return '-';
  if (Math.abs(v) >= 1000 || (Math.abs(v) < 1e-3 && v !== 0)) return v.toExponential(2);
  return v.toFixed(digits);
}


/** An output file that cannot be written: one line naming the path and the reason (no stack trace). */
export class OutputError extends Error {}

function describeWriteError(path: string, err: unknown): OutputError {
  const code = (err as NodeJS.ErrnoException).code;
  const dir = dirname(path);
  let why: string;
  if (code === 'ENOENT') why = `the folder ${dir} does not exist`;
  else if (code === 'ENOTDIR') why = `${dir} is not a folder`;
  else if (code === 'EACCES' || code === 'EPERM') why = `permission denied (the folder ${dir} is not writable)`;
  else if (code === 'EROFS') why = 'read-only file system';
  else if (code === 'EISDIR') why = 'it is a folder';
  else if (code === 'ENOSPC') why = 'no space left on the device';
  else if (code === 'EDQUOT') why = 'disk quota exceeded';
  else why = (err as Error).message;
  return new OutputError(`cannot write ${path}: ${why}`);
}

/** Temp files of writers still open, removed on SIGINT/SIGTERM (and on exit) by `removeTempFiles`. */
const openTempFiles = new Set<string>();

/** Removes every temp file an unfinished writer left (synchronous: it runs from signal and exit handlers). */
export function removeTempFiles(): void {
  for (const p of openTempFiles) rmSync(p, { force: true });
  openTempFiles.clear();
}

/**
 * Removes `F.PID.tmp` files that processes killed with SIGKILL (which cannot be caught) left beside F: those
 * whose PID no longer runs on this machine. Returns the paths removed.
 */
export function removeStaleTempFiles(outPath: string): string[] {
  const dir = dirname(outPath);
  const prefix = `${basename(outPath)}.`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const pid = name.slice(prefix.length, -4);
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid || pidAlive(Number(pid))) continue;
    try {
      rmSync(join(dir, name), { force: true });
      removed.push(join(dir, name));
    } catch {
      // not ours to remove after all (permissions): leave it
    }
  }
  return removed;
}

export interface WriterOptions {
  /** Paths in the table are shown relative to this folder. */
  relativeTo?: string;
  /** jsonl: the header line (written unless appending). */
  header?: ResultsHeader;
  /** jsonl with --resume: append to the existing complete lines of the file. */
  append?: boolean;
  /** Dataset manifests: the label and possible-label-error columns. */
  manifestColumns?: boolean;
}

/**
 * Streams results in a format to stdout or a file. Files are written with synchronous writes on a file
 * descriptor: ~64 KB at a time (one write per row would cost more than the row), and for jsonl at the end of
 * every batch of results, so that what was reported is in the file when the process is killed.
 */
export class ResultWriter {
  private first = true;
  private fd: number | null = null;
  private readonly tmpPath?: string;
  private pending: string[] = [];
  private pendingLength = 0;
  private csvRows: unknown[][] = [];
  private flushScheduled = false;
  private closed = false;

  constructor(private readonly format: OutputFormat, private readonly info: PairInfo, private readonly outPath?: string, private readonly options: WriterOptions = {}) {
    if (outPath) {
      const target = format === 'jsonl' ? outPath : `${outPath}.${process.pid}.tmp`;
      try {
        if (statSync(outPath, { throwIfNoEntry: false })?.isDirectory()) throw Object.assign(new Error('is a folder'), { code: 'EISDIR' });
        if (format !== 'jsonl') removeStaleTempFiles(outPath);
        this.fd = openSync(target, format === 'jsonl' && options.append ? 'a' : 'w');
      } catch (err) {
        throw describeWriteError(outPath, err);
      }
      if (format !== 'jsonl') {
        this.tmpPath = target;
        openTempFiles.add(target);
      }
    }
    if (!(format === 'jsonl' && options.append)) this.begin();
    if (format === 'jsonl') this.flush();
  }

  private write(text: string): void {
    this.pending.push(text);
    this.pendingLength += text.length;
    if (this.pendingLength >= 65536) this.flush();
  }

  private writeCsvRows(): void {
    if (!this.csvRows.length) return;
    const rows = this.csvRows;
    this.csvRows = [];
    this.write(csvText(rows));
  }

  private flush(): void {
    this.writeCsvRows();
    if (!this.pending.length) return;
    const text = this.pending.join('');
    this.pending = [];
    this.pendingLength = 0;
    if (this.fd === null) {
      process.stdout.write(text);
      return;
    }
    try {
      const buf = Buffer.from(text, 'utf8');
      for (let at = 0; at < buf.length; ) at += writeSync(this.fd, buf, at, buf.length - at);
    } catch (err) {
      throw describeWriteError(this.outPath!, err);
    }
  }

  private shownPath(p: string): string {
    const base = this.options.relativeTo;
    if (!base || !p.startsWith(base + '/')) return p;
    return p.slice(base.length + 1);
  }

  private columns(): string[] {
    return this.options.manifestColumns ? [...RESULT_COLUMNS, 'givenLabel', 'possibleLabelError'] : [...RESULT_COLUMNS];
  }

  /** The table shows the KNN test's p-value when the pair's verdict uses it. */
  private get knnColumn(): boolean {
    return !!this.info.shares?.knn;
  }

  private begin(): void {
    if (this.format === 'jsonl') {
      if (this.options.header) this.write(JSON.stringify(this.options.header) + '\n');
    } else if (this.format === 'json') {
      this.write(`{\n  "pair": ${JSON.stringify(this.info)},\n  "provider": ${JSON.stringify(this.info.provider)},\n  "results": [`);
    } else if (this.format === 'csv') {
      this.write(csvText([this.columns()]));
    } else {
      this.write(`pair: ${terminalText(this.info.name)} (${terminalText(this.info.backend)}, ${terminalText(this.info.provider)}) · α = ${this.info.alpha} · rule: ${terminalText(this.info.rule)}${this.info.calibrated ? '' : ' · UNCALIBRATED'}\n`);
      this.write(`${'verdict'.padEnd(20)} ${'label'.padEnd(12)} ${'msp'.padStart(7)} ${'elbo'.padStart(10)} ${'p-value'.padStart(9)} ${'p(elbo)'.padStart(9)} ${'p(S)'.padStart(9)} ${'p(conf)'.padStart(9)}${this.knnColumn ? ` ${'p(knn)'.padStart(9)}` : ''}  path\n`);
    }
  }

  /** Adds a result; `origin` (where the input came from) is written by jsonl, its manifest label by every format. */
  add(r: ImageResult, origin?: InputOrigin): void {
    this.addRecord(r, origin);
  }

  /**
   * Adds a result record as read back from a result file (merge): `record` holds the JSON fields of an
   * ImageResult (`pValues`, `firedBy` …) and maybe its origin.
   */
  addRecord(r: ImageResult | Omit<ImageResult, 'details'>, origin?: InputOrigin): void {
    const manifest = origin && 'givenLabel' in origin ? { givenLabel: origin.givenLabel ?? null, possibleLabelError: origin.possibleLabelError ?? false } : undefined;
    if (this.format === 'jsonl') {
      const { details: _d, ...rest } = r as ImageResult;
      this.write(JSON.stringify(origin ? { ...rest, ...origin } : rest) + '\n');
      if (!this.flushScheduled) {
        // Flushed once the current batch's results are all in (they are reported in one synchronous run).
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          if (!this.closed) this.flush();
        });
      }
    } else if (this.format === 'json') {
      const { details: _d, ...rest } = r as ImageResult;
      this.write(`${this.first ? '' : ','}\n    ${JSON.stringify(manifest ? { ...rest, ...manifest } : rest)}`);
    } else if (this.format === 'csv') {
      const record = resultRecord(r as ImageResult);
      // Rows are formatted 256 at a time (one call, one string).
      const row: unknown[] = RESULT_COLUMNS.map((c) => csvCell(record[c]));
      if (this.options.manifestColumns) row.push(csvCell(manifest?.givenLabel ?? null), manifest ? (manifest.possibleLabelError ? 'true' : 'false') : null);
      this.csvRows.push(row);
      if (this.csvRows.length >= 256) this.writeCsvRows();
    } else {
      const path = terminalText(this.shownPath(r.path));
      // A '*' marks the test that fired.
      const p = (v: number | null, test: TestName) => `${v === null ? '-' : formatP(v)}${r.firedBy.includes(test) ? '*' : ' '}`.padStart(9);
      const note = manifest?.possibleLabelError ? `  (possible label error: labelled ${terminalText(manifest.givenLabel ?? '')})` : '';
      if (r.verdict === 'error') this.write(`${'ERROR'.padEnd(20)} ${''.padEnd(12)} ${''.padStart(7)} ${''.padStart(10)} ${''.padStart(9)} ${''.padStart(9)} ${''.padStart(9)} ${''.padStart(9)}${this.knnColumn ? ` ${''.padStart(9)}` : ''}  ${path}: ${terminalText(r.error ?? '')}\n`);
      else this.write(`${terminalText(r.verdict).padEnd(20)} ${terminalText(r.label ?? '-').slice(0, 12).padEnd(12)} ${formatMsp(r.msp).padStart(7)} ${fmt(r.elbo, 1).padStart(10)} ${(r.pValue === null ? '-' : formatP(r.pValue)).padStart(9)} ${p(r.pValues.elbo, 'elbo')} ${p(r.pValues.complexity, 'complexity')} ${p(r.pValues.confidence, 'confidence')}${this.knnColumn ? ` ${p(r.pValues.knn ?? null, 'knn')}` : ''}  ${path}${note}\n`);
      if (this.fd === null && process.stdout.isTTY) this.flush();
    }
    this.first = false;
  }

  /** The summary line of the table format (also printed on stderr for jsonl). */
  static summaryLine(summary: Summary): string {
    const rate = summary.seconds > 0 ? ` · ${summary.imagesPerSecond.toFixed(0)} images/s` : '';
    return `${summary.count} images · ${summary.inDistribution} in-distribution · ${summary.outOfDistribution} out-of-distribution${summary.uncalibrated ? ` · ${summary.uncalibrated} uncalibrated` : ''} · ${summary.errors} errors${rate}`;
  }

  /** Finishes the output: for files, fsync and (except jsonl) rename over the target. */
  async end(summary: Summary): Promise<void> {
    if (this.format === 'json') this.write(`\n  ],\n  "summary": ${JSON.stringify(summary)}\n}\n`);
    else if (this.format === 'table') {
      this.write(`${summary.outOfDistribution ? `(* = the test that fired: ELBO unusually low, complexity-corrected score S unusually high, ${this.knnColumn ? 'classifier confidence unusually low, or the features unusually far from the training images\' (KNN)' : 'or classifier confidence unusually low'})\n` : ''}\n${ResultWriter.summaryLine(summary)}\n`);
    }
    this.flush();
    this.closed = true;
    if (this.fd === null) {
      // stdout: resolve once what was written has drained (a pipe may be slower than we are)
      await new Promise<void>((res) => (process.stdout.write('') ? res() : process.stdout.once('drain', () => res())));
      return;
    }
    try {
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.fd = null;
      if (this.tmpPath) {
        renameSync(this.tmpPath, this.outPath!);
        openTempFiles.delete(this.tmpPath);
        syncFolder(dirname(this.outPath!));
      }
    } catch (err) {
      this.abort();
      throw describeWriteError(this.outPath!, err);
    }
  }

  /**
   * Stops without finishing: a temp file is removed, leaving any previous output file untouched; a jsonl file
   * keeps its complete lines (fsynced), ready for --resume.
   */
  abort(): void {
    this.closed = true;
    if (this.fd !== null) {
      try {
        if (this.format === 'jsonl') {
          this.flush();
          fsyncSync(this.fd);
        }
      } catch {
        // nothing more can be kept
      }
      try {
        closeSync(this.fd);
      } catch {
        // already closed
      }
      this.fd = null;
    }
    if (this.tmpPath) {
      rmSync(this.tmpPath, { force: true });
      openTempFiles.delete(this.tmpPath);
    }
  }
}

/** fsync of a folder, so that a rename in it survives a crash (not possible on every platform: ignored there). */
function syncFolder(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Windows cannot open folders; the rename is still atomic there
  }
}

/** Fails early (before any scoring) when `path` cannot be written: a missing or read-only folder. */
export function checkOutputPath(path: string): void {
  const dir = dirname(path);
  try {
    const st = statSync(dir);
    if (!st.isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' });
    accessSync(dir, fsConstants.W_OK);
    if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) throw Object.assign(new Error('is a folder'), { code: 'EISDIR' });
  } catch (err) {
    throw describeWriteError(path, err);
  }
}
