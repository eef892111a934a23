/** Result tables in the CLI's three formats; files are written to a temp file and renamed (atomic). */
import { createWriteStream, renameSync, rmSync, type WriteStream } from 'node:fs';
import { stringify } from 'csv-stringify/sync';
import type { TestName } from './calibration';
import type { ImageResult, PairInfo } from './engineTypes';
import { formatMsp, formatP } from '../shared/format';

export type OutputFormat = 'table' | 'json' | 'csv';

/** Columns shared by CSV, the report panel's export and JSON records (same names as the JSON fields). */
export const RESULT_COLUMNS = [
  'path', 'prediction', 'label', 'msp', 'entropy', 'energy', 'elbo', 'elboBitsPerDim', 'pValue', 'verdict', 'error',
  'reconstructionLogLik', 'kl', 'logPxBound', 'complexityBits', 'complexityScore', 'pValueElbo', 'pValueComplexity', 'firedBy',
  'pValueConfidence',
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
  summary(info: Pick<PairInfo, 'alpha' | 'rule'>): Summary {
    const seconds = (Date.now() - this.start) / 1000;
    return { ...this.s, alpha: info.alpha, rule: info.rule, seconds, imagesPerSecond: seconds > 0 ? this.s.count / seconds : 0 };
  }
}

function fmt(v: number | null, digits = 4): string {
  if (v === null || v === undefined) return '-';
  if (Math.abs(v) >= 1000 || (Math.abs(v) < 1e-3 && v !== 0)) return v.toExponential(2);
  return v.toFixed(digits);
}

/** Streams results in a format to a stream; for files the stream is a temp file renamed on close. */
export class ResultWriter {
  private first = true;
  private readonly stream: NodeJS.WritableStream;
  private readonly tmpPath?: string;

  constructor(private readonly format: OutputFormat, private readonly info: PairInfo, private readonly outPath?: string, private readonly relativeTo?: string) {
    if (outPath) {
      this.tmpPath = `${outPath}.${process.pid}.tmp`;
      this.stream = createWriteStream(this.tmpPath);
    } else this.stream = process.stdout;
    this.begin();
  }

  private pending: string[] = [];
  private pendingLength = 0;

  /** Rows are buffered and written in ~64 KB chunks: one stream write per row costs more than the row. */
  private write(text: string): void {
    this.pending.push(text);
    this.pendingLength += text.length;
    if (this.pendingLength >= 65536) this.flush();
  }

  private csvRows: unknown[][] = [];

  private writeCsvRows(): void {
    if (!this.csvRows.length) return;
    const rows = this.csvRows;
    this.csvRows = [];
    this.write(stringify(rows));
  }

  private flush(): void {
    this.writeCsvRows();
    if (!this.pending.length) return;
    this.stream.write(this.pending.join(''));
    this.pending = [];
    this.pendingLength = 0;
  }

  private shownPath(p: string): string {
    if (!this.relativeTo || !p.startsWith(this.relativeTo + '/')) return p;
    return p.slice(this.relativeTo.length + 1);
  }

  private begin(): void {
    if (this.format === 'json') {
      this.write(`{\n  "pair": ${JSON.stringify(this.info)},\n  "provider": ${JSON.stringify(this.info.provider)},\n  "results": [`);
    } else if (this.format === 'csv') {
      this.write(stringify([RESULT_COLUMNS as unknown as string[]]));
    } else {
      this.write(`pair: ${this.info.name} (${this.info.backend}, ${this.info.provider}) · α = ${this.info.alpha} · rule: ${this.info.rule}${this.info.calibrated ? '' : ' · UNCALIBRATED'}\n`);
      this.write(`${'verdict'.padEnd(20)} ${'label'.padEnd(12)} ${'msp'.padStart(7)} ${'elbo'.padStart(10)} ${'p-value'.padStart(9)} ${'p(elbo)'.padStart(9)} ${'p(S)'.padStart(9)} ${'p(conf)'.padStart(9)}  path\n`);
    }
  }

  add(r: ImageResult): void {
    if (this.format === 'json') {
      this.write(`${this.first ? '' : ','}\n    ${JSON.stringify(jsonRecord(r))}`);
    } else if (this.format === 'csv') {
      const record = resultRecord(r);
      // csv-stringify is called once per 256 rows: its per-call setup cost more than the rows themselves.
      this.csvRows.push(RESULT_COLUMNS.map((c) => record[c]));
      if (this.csvRows.length >= 256) this.writeCsvRows();
    } else {
      const path = this.shownPath(r.path);
      // A '*' marks the test that fired.
      const p = (v: number | null, test: TestName) => `${v === null ? '-' : formatP(v)}${r.firedBy.includes(test) ? '*' : ' '}`.padStart(9);
      if (r.verdict === 'error') this.write(`${'ERROR'.padEnd(20)} ${''.padEnd(12)} ${''.padStart(7)} ${''.padStart(10)} ${''.padStart(9)} ${''.padStart(9)} ${''.padStart(9)} ${''.padStart(9)}  ${path}: ${r.error}\n`);
      else this.write(`${r.verdict.padEnd(20)} ${(r.label ?? '-').slice(0, 12).padEnd(12)} ${formatMsp(r.msp).padStart(7)} ${fmt(r.elbo, 1).padStart(10)} ${(r.pValue === null ? '-' : formatP(r.pValue)).padStart(9)} ${p(r.pValues.elbo, 'elbo')} ${p(r.pValues.complexity, 'complexity')} ${p(r.pValues.confidence, 'confidence')}  ${path}\n`);
      if (!this.tmpPath && process.stdout.isTTY) this.flush();
    }
    this.first = false;
  }

  async end(summary: Summary): Promise<void> {
    if (this.format === 'json') this.write(`\n  ],\n  "summary": ${JSON.stringify(summary)}\n}\n`);
    else if (this.format === 'table') {
      this.write(`${summary.outOfDistribution ? '(* = the test that fired: ELBO unusually low, complexity-corrected score S unusually high, or classifier confidence unusually low)\n' : ''}\n${summary.count} images · ${summary.inDistribution} in-distribution · ${summary.outOfDistribution} out-of-distribution${summary.uncalibrated ? ` · ${summary.uncalibrated} uncalibrated` : ''} · ${summary.errors} errors · ${summary.imagesPerSecond.toFixed(0)} images/s\n`);
    }
    this.flush();
    if (this.tmpPath && this.outPath) {
      const stream = this.stream as WriteStream;
      await new Promise<void>((res, rej) => stream.end((err?: Error | null) => (err ? rej(err) : res())));
      renameSync(this.tmpPath, this.outPath);
    }
  }

  /** Drops a partial output file (on failure), leaving any previous file untouched. */
  abort(): void {
    if (this.tmpPath) {
      (this.stream as WriteStream).destroy();
      rmSync(this.tmpPath, { force: true });
    }
  }
}
