/**
 * `ood-lens score`: folders, files, IDX archives or a dataset manifest → results in a format, optionally one
 * shard of the inputs (`--shard K/N`), optionally continuing a killed run (`--resume`, jsonl).
 */
import { closeSync, existsSync, fsyncSync, opendirSync, openSync, renameSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileChunks, formatForDocument, isLabelDisagreement, readManifest } from '../inference/datasets/datasetManifest';
import type { ImageResult, OodEngine, PairInfo, ScoreInput } from '../inference/engine';
import { countSubfolders, expandInputChunks } from '../inference/io/files';
import { terminalText } from '../inference/io/safeText';
import { checkOutputPath, OUTPUT_FORMATS, type OutputFormat, removeTempFiles, ResultWriter, SummaryCounter } from '../inference/datasets/output';
import { headerMismatch, HEADER_MARK, type InputOrigin, pairFingerprints, readResultLines, RESULTS_FORMAT_VERSION, type ResultsHeader } from '../inference/datasets/resultsFile';
import { lockOutput } from '../inference/io/outputLock';
import { inShard, parseShard, type Shard } from '../inference/datasets/shard';
import { PeriodicCollection } from './heapCollection';

export class ScoreUsageError extends Error {}

/** An input with its origin; `problem` rows (from a manifest) are error records that never reach the engine. */
export interface PlannedInput {
  input: ScoreInput;
  origin: InputOrigin;
  problem?: string;
}

/** Identity of an input within a run (what --resume skips and merge reports twice). */
export function inputIdentity(o: Pick<InputOrigin, 'arg' | 'key'> & { row?: number }): string {
  return `${o.arg}\u0000${o.row ?? ''}\u0000${o.key}`;
}

/**
 * What identifies an input's file now (an IDX entry: its archive's): size and modification time, or nulls
 * when it cannot be read. Taken before the file is read, so a file changed meanwhile is scored again on --resume.
 */
export function fileIdentity(path: string | Buffer): { inputSize: number | null; inputMtimeMs: number | null } {
  try {
    const st = statSync(path);
    return { inputSize: st.size, inputMtimeMs: st.mtimeMs };
  } catch {
    return { inputSize: null, inputMtimeMs: null };
  }
}

/** The file a result line's input came from: its path, or an IDX entry's archive (`archive#i`). */
function identityPath(record: { path: string; key: string }): string {
  const entry = /#\d+$/.exec(record.key);
  if (entry && record.path.endsWith(entry[0]) && !existsSync(record.path)) return record.path.slice(0, -entry[0].length);
  return record.path;
}

function problemResult(path: string, message: string): ImageResult {
  return {
    path, prediction: null, label: null, msp: null, entropy: null, energy: null, elbo: null, reconstructionLogLik: null, kl: null, elboBitsPerDim: null,
    logPxBound: null, complexityBits: null, complexityScore: null, pValue: null, pValues: { elbo: null, complexity: null, confidence: null }, firedBy: [], verdict: 'error', error: message,
  };
}

/**
 * Every input of the run, in order, each with its position in the whole (unsharded) sequence, in chunks (a
 * manifest's batch of rows, a folder's files up to a thousand at a time): one hop through the generators a chunk.
 */
async function* planInputChunks(positionals: string[], manifest: string | undefined, recursive: boolean, signal: AbortSignal, identify: boolean): AsyncGenerator<PlannedInput[]> {
  let seq = 0;
  if (manifest) {
    const format = formatForDocument('', manifest);
    if (!format) throw new ScoreUsageError(`--manifest ${manifest}: a .csv, .tsv, .jsonl/.ndjson or .txt/.lst file is needed`);
    const reader = readManifest(fileChunks(manifest), { format, baseDir: dirname(manifest), signal });
    for await (const rows of reader.batches()) {
      yield rows.map((row): PlannedInput => {
        const key = row.rawPath ?? `line ${row.line + 1}`;
        const origin = { seq: seq++, arg: 0, key, row: row.index, givenLabel: row.label } as InputOrigin & { row: number };
        if (row.problem || !row.path) return { input: { path: row.path ?? `${manifest}:${row.line + 1}` }, origin, problem: `${manifest}, line ${row.line + 1}: ${row.problem ?? 'no image path'}` };
        return { input: { path: row.path }, origin: identify ? { ...origin, ...fileIdentity(row.path) } : origin };
      });
    }
    if (!reader.info.isManifest) {
      throw new ScoreUsageError(`--manifest ${manifest}: no column of image paths found (looked for a header such as path, image, file or filename, then for values ending in .png, .jpg, …)`);
    }
    return;
  }
  let archive: { path: string; identity: ReturnType<typeof fileIdentity> } | undefined;
  for await (const chunk of expandInputChunks(positionals, { recursive, signal })) {
    yield chunk.map(({ arg, key, ...input }): PlannedInput => {
      const origin: InputOrigin = { seq: seq++, arg, key };
      if (identify && !input.error) {
        // An IDX entry (`archive#i`, its pixels already read) is identified by its archive, stat'ed once.
        const file = input.source ? input.path.slice(0, input.path.lastIndexOf('#')) : input.path;
        if (input.fsPath) Object.assign(origin, fileIdentity(Buffer.from(input.fsPath))); // a name that is not UTF-8: by its bytes
        else {
          if (archive?.path !== file) archive = { path: file, identity: fileIdentity(file) };
          Object.assign(origin, archive.identity);
        }
      }
      return { input, origin };
    });
  }
}

/**
 * About how many inputs the run has, counted before the pair loads (EngineOptions.expectedInputs: the scoring
 * shards then start while it loads): a folder's entries at its top level, of any kind, a file as one, up to
 * `enough`; undefined for a manifest (its rows are not counted ahead).
 */
export function roughInputCount(options: Pick<ScoreOptions, 'positionals' | 'manifest'>, enough = 4096): number | undefined {
  if (options.manifest) return undefined;
  let count = 0;
  for (const arg of options.positionals) {
    if (count >= enough) break;
    try {
      if (!statSync(arg).isDirectory()) {
        count++;
        continue;
      }
      const dir = opendirSync(arg);
      try {
        while (count < enough && dir.readSync()) count++;
      } finally {
        dir.closeSync();
      }
    } catch {
      count++; // reported when it is listed
    }
  }
  return count;
}

export interface ScoreOptions {
  positionals: string[];
  manifest?: string;
  recursive: boolean;
  format: OutputFormat;
  out?: string;
  shard?: Shard;
  resume: boolean;
  failOnOod: boolean;
}

export function parseScoreArgs(argv: string[], commonOptions: Record<string, { type: 'string' | 'boolean'; short?: string }>) {
  const parsed = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...commonOptions,
      recursive: { type: 'boolean', short: 'r' },
      format: { type: 'string' },
      out: { type: 'string', short: 'o' },
      'fail-on-ood': { type: 'boolean' },
      manifest: { type: 'string' },
      shard: { type: 'string' },
      resume: { type: 'boolean' },
    },
  });
  const positionals = parsed.positionals;
  const values = parsed.values as Record<string, unknown>;
  const format = (values.format ?? 'table') as OutputFormat;
  if (!OUTPUT_FORMATS.includes(format)) throw new ScoreUsageError(`--format must be ${OUTPUT_FORMATS.join(', ')} (got "${format}")`);
  if (!positionals.length && !values.manifest && !values.help) throw new ScoreUsageError('score needs at least one file or folder, or --manifest FILE');
  if (positionals.length && values.manifest) throw new ScoreUsageError('give either files and folders or --manifest, not both');
  if (values.resume && (format !== 'jsonl' || !values.out)) throw new ScoreUsageError('--resume continues a result file: use it with --format jsonl --out FILE');
  let shard: Shard | undefined;
  if (values.shard !== undefined) {
    try {
      shard = parseShard(values.shard as string);
    } catch (err) {
      throw new ScoreUsageError((err as Error).message);
    }
  }
  const options: ScoreOptions = {
    positionals,
    manifest: values.manifest ? resolve(values.manifest as string) : undefined,
    recursive: !!values.recursive,
    format,
    out: values.out ? resolve(values.out as string) : undefined,
    shard,
    resume: !!values.resume,
    failOnOod: !!values['fail-on-ood'],
  };
  if (options.manifest && !existsSync(options.manifest)) throw new ScoreUsageError(`--manifest ${options.manifest}: file not found`);
  if (options.out) checkOutputPath(options.out);
  return { values, options };
}

interface ResumeState {
  /** Inputs whose results are kept (their file unchanged). */
  done: Set<string>;
  append: boolean;
  kept: number;
  dropped: boolean;
  /** Results removed because their input's file changed or went away (changed ones are scored again). */
  stale: number;
  /** Lines removed as a second result for an input or out of input order. */
  repeated: number;
  /** Results written without size and mtime (an older ood-lens): kept unchecked. */
  unchecked: number;
  /** The next seq to write: above every seq in the file, so that seqs stay unique and in order. */
  nextSeq: number;
}

/**
 * What the jsonl file already holds (--resume): the inputs done, their verdicts counted, a torn line dropped.
 * A result whose input's size or mtime differ from what its line recorded is removed from the file (rewritten
 * atomically), so that its input is scored again and no input has two results.
 */
async function resumeState(out: string, header: ResultsHeader, counter: SummaryCounter): Promise<ResumeState> {
  const done = new Set<string>();
  const empty = { done, append: false, kept: 0, dropped: false, stale: 0, repeated: 0, unchecked: 0, nextSeq: 0 };
  if (!existsSync(out) || statSync(out).size === 0) return empty;
  let fileHeader: ResultsHeader | undefined;
  let tornAt = -1;
  let completeBytes = 0;
  let kept = 0;
  let unchecked = 0;
  let maxSeq = -1;
  let repeated = 0;
  const staleLines = new Set<number>();
  const verdicts: string[] = [];
  const onHeader = (h: ResultsHeader) => {
    fileHeader = h;
    const why = headerMismatch(h, header);
    if (why) throw new ScoreUsageError(`--resume: ${out} was scored with ${why}; resume with the same pair, α and rule, or write to another file`);
    if (h.shard !== header.shard) throw new ScoreUsageError(`--resume: ${out} holds shard ${h.shard ?? 'none (all inputs)'}, not ${header.shard ?? 'all inputs'}`);
    if (JSON.stringify(h.inputs) !== JSON.stringify(header.inputs)) throw new ScoreUsageError(`--resume: ${out} was scored from other inputs (${h.inputs.join(' ')})`);
  };
  const lines = readResultLines(out, { onHeader, onTorn: (offset) => (tornAt = offset), onEnd: (bytes) => (completeBytes = bytes) });
  for await (const { line, record } of lines) {
    const id = inputIdentity(record as InputOrigin & { row?: number });
    // A second line for an input, or one out of input order (an edited or concatenated file): removed, so
    // that the file stays one run in order (what merge accepts).
    if (done.has(id) || record.seq <= maxSeq) {
      staleLines.add(line);
      repeated++;
      continue;
    }
    maxSeq = record.seq;
    if (record.inputSize === undefined) unchecked++;
    else {
      const now = fileIdentity(identityPath(record));
      if (now.inputSize !== record.inputSize || now.inputMtimeMs !== record.inputMtimeMs) {
        staleLines.add(line);
        continue;
      }
    }
    done.add(id);
    verdicts.push(record.verdict);
    kept++;
  }
  if (!fileHeader) return { ...empty, dropped: tornAt >= 0 };
  if (staleLines.size) await rewriteWithout(out, staleLines);
  // A torn last line (the run was killed while writing it): cut it off; its input is scored again.
  else if (tornAt >= 0) truncateSync(out, completeBytes);
  for (const v of verdicts) counter.addVerdict(v);
  return { done, append: true, kept, dropped: tornAt >= 0, stale: staleLines.size - repeated, repeated, unchecked, nextSeq: maxSeq + 1 };
}

/** Rewrites a result file without the given lines (and without a torn last line): a temp file renamed over it. */
async function rewriteWithout(path: string, skip: Set<number>): Promise<void> {
  const tmp = `${path}.${process.pid}.resume.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    const write = (text: string) => {
      const buf = Buffer.from(text + '\n', 'utf8');
      for (let at = 0; at < buf.length; ) at += writeSync(fd, buf, at, buf.length - at);
    };
    for await (const { line, record } of readResultLines(path, { onHeader: (h) => write(JSON.stringify(h)) })) if (!skip.has(line)) write(JSON.stringify(record));
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * The run's inputs being listed: started before the pair loads (runScore), so that the first chunk — for a
 * folder of 10,000 images ~80 ms of this thread — is ready when the scoring shards are, instead of listed
 * after them while they wait. `controller` stops the listing and the run (Ctrl+C).
 */
export interface InputListing {
  controller: AbortController;
  chunks: AsyncGenerator<PlannedInput[]>;
  /** Closes the listing (its open folders) when the run ends early or never starts (the pair failed to load). */
  abandon(): void;
}

export function startInputListing(options: ScoreOptions): InputListing {
  const controller = new AbortController();
  const source = planInputChunks(options.positionals, options.manifest, options.recursive, controller.signal, options.format === 'jsonl');
  // The first chunk is asked for now; a failure (a bad manifest) is reported where the chunks are read.
  const first = source.next();
  first.catch(() => {});
  const chunks = (async function* () {
    const head = await first;
    if (head.done) return;
    yield head.value;
    yield* source;
  })();
  return {
    controller,
    chunks,
    // After the first chunk: a generator's return() waits for the step it is in.
    abandon: () => void first.then(() => source.return(undefined)).catch(() => {}),
  };
}

export async function runScoreWith(engine: OodEngine, options: ScoreOptions, listing: InputListing = startInputListing(options)): Promise<number> {
  const info = engine.info;
  // A pair written over fit's feeding check (or reading its check images badly): said before any verdict.
  if (info.fitCheck?.warning) process.stderr.write(`ood-lens: warning: ${terminalText(info.fitCheck.warning, true)}\n`);
  const started = Date.now();
  const counter = new SummaryCounter();
  // The header line of a jsonl file (what --resume and merge check); other formats have none. Fingerprinting the
  // pair hashes its files (~15 ms for the built-in pair's 9 MB): not done for a header nobody writes.
  const header = options.format === 'jsonl' ? resultsHeader(info, options) : undefined;
  // One writer per output file: a second process would lose results (interleaved or renamed over).
  const unlock = options.out ? lockOutput(options.out, 'ood-lens score') : () => {};
  try {
    return await scoreLocked(engine, options, header, counter, started, listing);
  } finally {
    unlock();
    listing.abandon();
  }
}

function resultsHeader(info: PairInfo, options: ScoreOptions): ResultsHeader {
  const fingerprints = pairFingerprints(info.manifestPath);
  return {
    [HEADER_MARK]: RESULTS_FORMAT_VERSION,
    pair: info,
    provider: info.provider,
    pairFingerprint: fingerprints.pair,
    calibrationFingerprint: fingerprints.calibration,
    shard: options.shard ? `${options.shard.index}/${options.shard.count}` : null,
    inputs: options.manifest ? [options.manifest] : options.positionals.map((p) => resolve(p)),
    manifest: !!options.manifest,
    createdAt: new Date().toISOString(),
  };
}

async function scoreLocked(engine: OodEngine, options: ScoreOptions, header: ResultsHeader | undefined, counter: SummaryCounter, started: number, listing: InputListing): Promise<number> {
  const info = engine.info;
  // --resume is refused without --format jsonl, so a resumed run has its header.
  const resumed: ResumeState = options.resume && options.out && header ? await resumeState(options.out, header, counter) : { done: new Set<string>(), append: false, kept: 0, dropped: false, stale: 0, repeated: 0, unchecked: 0, nextSeq: 0 };
  if (options.resume && resumed.append) {
    const stale = resumed.stale ? `, ${resumed.stale} of files changed or gone removed (a changed file is scored again)` : '';
    const repeated = resumed.repeated ? `, ${resumed.repeated} repeated or out of input order removed` : '';
    const unchecked = resumed.unchecked ? `, ${resumed.unchecked} without size and mtime (an older ood-lens wrote them) kept unchecked` : '';
    process.stderr.write(`resuming ${options.out}: ${resumed.kept} results kept${stale}${repeated}${unchecked}${resumed.dropped ? ', a torn last line dropped' : ''}\n`);
  }
  const base = options.manifest ? dirname(options.manifest) : options.positionals.length === 1 ? resolve(options.positionals[0]) : process.cwd();
  const writer = new ResultWriter(options.format, info, options.out, { relativeTo: base, header, append: resumed.append, manifestColumns: !!options.manifest });

  const { controller } = listing;
  let signals = 0;
  let exitCode = 130;
  const onSignal = (signal: NodeJS.Signals) => {
    exitCode = signal === 'SIGTERM' ? 143 : 130;
    // The first signal stops after the batches in flight; a second one leaves at once, temp files removed.
    if (++signals > 1) {
      writer.abort();
      removeTempFiles();
      process.exit(signal === 'SIGTERM' ? 143 : 130);
    }
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const onExit = () => removeTempFiles();
  process.on('exit', onExit);

  // Inputs of this shard not yet done, each with its origin.
  const waiting: PlannedInput[] = [];
  let planFailure: Error | null = null;
  const collection = new PeriodicCollection();
  const emit = (r: ImageResult, p: PlannedInput) => {
    collection.tick();
    counter.add(r);
    const origin = p.origin;
    if ('givenLabel' in origin) origin.possibleLabelError = isLabelDisagreement(origin.givenLabel ?? null, r, info.labels);
    writer.add(r, origin);
  };
  // Resumed: each new result's seq is above every seq before it in the file (its place in the input sequence
  // when that is free, as in an uninterrupted run; the next free one for a file added or changed since).
  let nextSeq = resumed.append ? resumed.nextSeq : 0;
  const planned = async function* (): AsyncGenerator<PlannedInput[]> {
    try {
      for await (const chunk of listing.chunks) {
        const kept: PlannedInput[] = [];
        for (const p of chunk) {
          if (!inShard(p.origin.key, options.shard)) continue;
          if (resumed.done.size && resumed.done.has(inputIdentity(p.origin as InputOrigin & { row?: number }))) continue;
          if (resumed.append) {
            p.origin.seq = Math.max(p.origin.seq, nextSeq);
            nextSeq = p.origin.seq + 1;
          }
          kept.push(p);
        }
        if (kept.length) yield kept;
      }
    } catch (err) {
      planFailure = err as Error;
    }
  };
  let interrupted = false;
  try {
    if (!options.manifest) {
      // Files and folders: one stream into the engine; origins wait in order for their results.
      async function* engineInputs(): AsyncGenerator<ScoreInput[]> {
        for await (const chunk of planned()) {
          for (const p of chunk) waiting.push(p);
          yield chunk.map((p) => p.input);
        }
      }
      await engine.scoreAll({ chunks: engineInputs() }, (r) => emit(r, waiting.shift()!), { signal: controller.signal });
    } else {
      // A manifest's rows without a usable path are error records that never reach the engine. They are put
      // in place between the engine's results segment by segment: the engine takes its inputs batch by batch
      // and reports a batch only once it has the next, so a long run of such rows could otherwise pile up.
      // 4,096 rows: a million rows with one image in 100 peaked at 326 MB against 417 MB with 16,384 (the held rows
      // outlive young-generation GCs and V8 grows the old generation for them), and at 2,048 each segment's engine
      // call costs more than it saves (40 s against 27 s for that million).
      const SEGMENT_ROWS = 4096;
      let segment: PlannedInput[] = [];
      const runSegment = async () => {
        const items = segment;
        segment = [];
        let k = 0;
        const problemsUpToNextInput = () => {
          while (k < items.length && items[k].problem) {
            emit(problemResult(items[k].input.path, items[k].problem!), items[k]);
            k++;
          }
        };
        problemsUpToNextInput();
        const inputs = items.filter((p) => !p.problem).map((p) => p.input);
        if (inputs.length) {
          await engine.scoreAll(inputs, (r) => {
            emit(r, items[k++]);
            problemsUpToNextInput();
          }, { signal: controller.signal });
        }
      };
      rows: for await (const chunk of planned()) {
        for (const p of chunk) {
          segment.push(p);
          if (segment.length >= SEGMENT_ROWS) {
            await runSegment();
            if (controller.signal.aborted) break rows;
          }
        }
      }
      if (!controller.signal.aborted) await runSegment();
    }
    if (planFailure) throw planFailure;
    interrupted = controller.signal.aborted;
    const summary = counter.summary(info, (Date.now() - started) / 1000);
    if (interrupted && !options.out) await writer.end(summary);
    if (interrupted) {
      writer.abort();
      if (options.out && options.format === 'jsonl') process.stderr.write(`interrupted after ${summary.count} images; ${options.out} holds them: run the same command with --resume to continue\n`);
      else process.stderr.write(`interrupted after ${summary.count} images${options.out ? `; ${options.out} was not written (any previous file is unchanged)` : ''}\n`);
      return exitCode;
    }
    await writer.end(summary);
    if (options.format === 'jsonl') process.stderr.write(`${ResultWriter.summaryLine(summary)}\n`);
    if (options.out) process.stderr.write(`wrote ${summary.count} results to ${options.out}\n`);
    if (summary.count === 0 && !options.recursive && !options.manifest) await hintRecursive(options.positionals);
    if (options.failOnOod && summary.outOfDistribution > 0) return 3;
    return summary.errors > 0 ? 2 : 0;
  } catch (err) {
    writer.abort();
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  }
}

/** A folder without images at its top level but with subfolders, scored without --recursive: say so. */
async function hintRecursive(positionals: string[]): Promise<void> {
  for (const p of positionals) {
    const subfolders = await countSubfolders(resolve(p));
    if (subfolders) process.stderr.write(`ood-lens: note: ${terminalText(p)} has no images at its top level but ${subfolders} subfolder${subfolders === 1 ? '' : 's'}; add --recursive (-r) to score the images in them\n`);
  }
}
