/**
 * `ood-lens score`: folders, files, IDX archives or a dataset manifest → results in a format, optionally one
 * shard of the inputs (`--shard K/N`), optionally continuing a killed run (`--resume`, jsonl).
 */
import { existsSync, statSync, truncateSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileChunks, formatForDocument, isLabelDisagreement, readManifest } from '../inference/datasets/datasetManifest';
import type { ImageResult, OodEngine, ScoreInput } from '../inference/engine';
import { countSubfolders, expandInputs } from '../inference/io/files';
import { terminalText } from '../inference/io/safeText';
import { checkOutputPath, OUTPUT_FORMATS, type OutputFormat, removeTempFiles, ResultWriter, SummaryCounter } from '../inference/datasets/output';
import { headerMismatch, HEADER_MARK, type InputOrigin, pairFingerprints, readResultLines, RESULTS_FORMAT_VERSION, type ResultsHeader } from '../inference/datasets/resultsFile';
import { inShard, parseShard, type Shard } from '../inference/datasets/shard';

export class ScoreUsageError extends Error {}

/** An input with its origin; `problem` rows (from a manifest) are error records that never reach the engine. */
interface PlannedInput {
  input: ScoreInput;
  origin: InputOrigin;
  problem?: string;
}

/** Identity of an input within a run (what --resume skips and merge reports twice). */
export function inputIdentity(o: Pick<InputOrigin, 'arg' | 'key'> & { row?: number }): string {
  return `${o.arg}\u0000${o.row ?? ''}\u0000${o.key}`;
}

function problemResult(path: string, message: string): ImageResult {
  return {
    path, prediction: null, label: null, msp: null, entropy: null, energy: null, elbo: null, reconstructionLogLik: null, kl: null, elboBitsPerDim: null,
    logPxBound: null, complexityBits: null, complexityScore: null, pValue: null, pValues: { elbo: null, complexity: null, confidence: null }, firedBy: [], verdict: 'error', error: message,
  };
}

/** Every input of the run, in order, each with its position in the whole (unsharded) sequence. */
async function* planInputs(positionals: string[], manifest: string | undefined, recursive: boolean, signal: AbortSignal): AsyncGenerator<PlannedInput> {
  let seq = 0;
  if (manifest) {
    const format = formatForDocument('', manifest);
    if (!format) throw new ScoreUsageError(`--manifest ${manifest}: a .csv, .tsv, .jsonl/.ndjson or .txt/.lst file is needed`);
    const reader = readManifest(fileChunks(manifest), { format, baseDir: dirname(manifest), signal });
    for await (const rows of reader.batches()) {
      for (const row of rows) {
        const key = row.rawPath ?? `line ${row.line + 1}`;
        const origin = { seq: seq++, arg: 0, key, row: row.index, givenLabel: row.label } as InputOrigin & { row: number };
        if (row.problem || !row.path) yield { input: { path: row.path ?? `${manifest}:${row.line + 1}` }, origin, problem: `${manifest}, line ${row.line + 1}: ${row.problem ?? 'no image path'}` };
        else yield { input: { path: row.path }, origin };
      }
    }
    if (!reader.info.isManifest) {
      throw new ScoreUsageError(`--manifest ${manifest}: no column of image paths found (looked for a header such as path, image, file or filename, then for values ending in .png, .jpg, …)`);
    }
    return;
  }
  for await (const listed of expandInputs(positionals, { recursive, signal })) {
    const { arg, key, ...input } = listed;
    yield { input, origin: { seq: seq++, arg, key } };
  }
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

/** What the jsonl file already holds (--resume): the inputs done, their verdicts counted, a torn line dropped. */
async function resumeState(out: string, header: ResultsHeader, counter: SummaryCounter): Promise<{ done: Set<string>; append: boolean; kept: number; dropped: boolean }> {
  const done = new Set<string>();
  if (!existsSync(out) || statSync(out).size === 0) return { done, append: false, kept: 0, dropped: false };
  let fileHeader: ResultsHeader | undefined;
  let tornAt = -1;
  let completeBytes = 0;
  let kept = 0;
  const lines = readResultLines(out, {
    onHeader: (h) => {
      fileHeader = h;
      const why = headerMismatch(h, header);
      if (why) throw new ScoreUsageError(`--resume: ${out} was scored with ${why}; resume with the same pair, α and rule, or write to another file`);
      if (h.shard !== header.shard) throw new ScoreUsageError(`--resume: ${out} holds shard ${h.shard ?? 'none (all inputs)'}, not ${header.shard ?? 'all inputs'}`);
      if (JSON.stringify(h.inputs) !== JSON.stringify(header.inputs)) throw new ScoreUsageError(`--resume: ${out} was scored from other inputs (${h.inputs.join(' ')})`);
    },
    onTorn: (offset) => (tornAt = offset),
    onEnd: (bytes) => (completeBytes = bytes),
  });
  for await (const { record } of lines) {
    const id = inputIdentity(record as InputOrigin & { row?: number });
    if (done.has(id)) continue;
    done.add(id);
    counter.addVerdict(record.verdict);
    kept++;
  }
  if (!fileHeader) return { done, append: false, kept: 0, dropped: tornAt >= 0 };
  // A torn last line (the run was killed while writing it): cut it off; its input is scored again.
  if (tornAt >= 0) truncateSync(out, completeBytes);
  return { done, append: true, kept, dropped: tornAt >= 0 };
}

export async function runScoreWith(engine: OodEngine, options: ScoreOptions): Promise<number> {
  const info = engine.info;
  const started = Date.now();
  const counter = new SummaryCounter();
  const fingerprints = pairFingerprints(info.manifestPath);
  const inputsGiven = options.manifest ? [options.manifest] : options.positionals.map((p) => resolve(p));
  const header: ResultsHeader = {
    [HEADER_MARK]: RESULTS_FORMAT_VERSION,
    pair: info,
    provider: info.provider,
    pairFingerprint: fingerprints.pair,
    calibrationFingerprint: fingerprints.calibration,
    shard: options.shard ? `${options.shard.index}/${options.shard.count}` : null,
    inputs: inputsGiven,
    manifest: !!options.manifest,
    createdAt: new Date().toISOString(),
  };
  const resumed = options.resume && options.out ? await resumeState(options.out, header, counter) : { done: new Set<string>(), append: false, kept: 0, dropped: false };
  if (options.resume && resumed.append) process.stderr.write(`resuming ${options.out}: ${resumed.kept} results kept${resumed.dropped ? ', a torn last line dropped' : ''}\n`);
  const base = options.manifest ? dirname(options.manifest) : options.positionals.length === 1 ? resolve(options.positionals[0]) : process.cwd();
  const writer = new ResultWriter(options.format, info, options.out, { relativeTo: base, header, append: resumed.append, manifestColumns: !!options.manifest });

  const controller = new AbortController();
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
  const emit = (r: ImageResult, p: PlannedInput) => {
    counter.add(r);
    const origin = p.origin;
    if ('givenLabel' in origin) origin.possibleLabelError = isLabelDisagreement(origin.givenLabel ?? null, r, info.labels);
    writer.add(r, origin);
  };
  const planned = async function* (): AsyncGenerator<PlannedInput> {
    try {
      for await (const p of planInputs(options.positionals, options.manifest, options.recursive, controller.signal)) {
        if (!inShard(p.origin.key, options.shard)) continue;
        if (resumed.done.size && resumed.done.has(inputIdentity(p.origin as InputOrigin & { row?: number }))) continue;
        yield p;
      }
    } catch (err) {
      planFailure = err as Error;
    }
  };
  let interrupted = false;
  try {
    if (!options.manifest) {
      // Files and folders: one stream into the engine; origins wait in order for their results.
      async function* engineInputs(): AsyncGenerator<ScoreInput> {
        for await (const p of planned()) {
          waiting.push(p);
          yield p.input;
        }
      }
      await engine.scoreAll(engineInputs(), (r) => emit(r, waiting.shift()!), { signal: controller.signal });
    } else {
      // A manifest's rows without a usable path are error records that never reach the engine. They are put
      // in place between the engine's results segment by segment: the engine takes its inputs batch by batch
      // and reports a batch only once it has the next, so a long run of such rows could otherwise pile up.
      const SEGMENT_ROWS = 16384;
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
      for await (const p of planned()) {
        segment.push(p);
        if (segment.length >= SEGMENT_ROWS) {
          await runSegment();
          if (controller.signal.aborted) break;
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
