/**
 * `ood-lens merge <files…>`: JSONL result files (shards of one run, resumed or not) → one result set, in the
 * order one run would have produced (by each result's position `seq` in the whole input sequence), with the
 * same summary. Refuses files scored with another pair, calibration, α or rule (naming the file), and reports
 * inputs that appear more than once (the first is kept) and shards that are missing.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { checkOutputPath, OUTPUT_FORMATS, type OutputFormat, ResultWriter, SummaryCounter } from '../inference/datasets/output';
import { headerMismatch, mergedRecords, readResultsHeader, type ResultsHeader, ResultsFileError, splitLine } from '../inference/datasets/resultsFile';
import { lockOutput } from '../inference/io/outputLock';
import { terminalText } from '../inference/io/safeText';
import { inputIdentity, ScoreUsageError } from './score';

export async function runMerge(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { format: { type: 'string' }, out: { type: 'string', short: 'o' }, 'same-inputs': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write('ood-lens merge <results.jsonl>... [--format table|json|csv|jsonl] [--out FILE] [--same-inputs]\n  --same-inputs  merge shards whose inputs were given by other paths (the same data mounted elsewhere)\n');
    return 0;
  }
  if (!positionals.length) throw new ScoreUsageError('merge needs the JSONL result files of the shards (ood-lens score … --format jsonl --out FILE)');
  const format = (values.format ?? 'table') as OutputFormat;
  if (!OUTPUT_FORMATS.includes(format)) throw new ScoreUsageError(`--format must be ${OUTPUT_FORMATS.join(', ')} (got "${format}")`);
  const files = positionals.map((p) => resolve(p));
  const out = values.out ? resolve(values.out) : undefined;
  if (out) {
    checkOutputPath(out);
    if (files.includes(out)) throw new ScoreUsageError(`--out ${out} is one of the files to merge; write the merged results to another file`);
  }
  const headers: ResultsHeader[] = [];
  for (const f of files) headers.push(await readResultsHeader(f));
  const first = headers[0];
  for (let i = 1; i < files.length; i++) {
    const why = headerMismatch(first, headers[i]);
    if (why) throw new ResultsFileError(`merge: ${files[i]} was scored with ${why} than ${files[0]}; results of different pairs or calibrations cannot be merged`);
    // Shards of one run list the same inputs; other inputs would pass for one complete run.
    if (!values['same-inputs'] && JSON.stringify(headers[i].inputs) !== JSON.stringify(first.inputs)) {
      throw new ResultsFileError(`merge: ${files[i]} was scored from ${headers[i].inputs.join(' ')}, ${files[0]} from ${first.inputs.join(' ')}: results of different inputs are not one run; add --same-inputs if they are the same files under another path`);
    }
  }
  // Shards of an N-way split: say which are missing (a merge of part of the shards is allowed, but told).
  const shards = headers.map((h) => h.shard).filter((s): s is string => !!s);
  const counts = new Set(shards.map((s) => s.split('/')[1]));
  if (counts.size > 1) process.stderr.write(`ood-lens: note: the files come from different splits (${[...counts].map((n) => `N = ${n}`).join(', ')}): inputs may appear twice\n`);
  else if (counts.size === 1 && shards.length === headers.length) {
    const n = Number([...counts][0]);
    const missing = Array.from({ length: n }, (_, k) => `${k}/${n}`).filter((s) => !shards.includes(s));
    if (missing.length) process.stderr.write(`ood-lens: note: shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')} missing: their inputs are not in the merged results\n`);
  }

  const unlock = out ? lockOutput(out, 'ood-lens merge') : () => {};
  try {
    return await mergeInto(files, headers, format, out);
  } finally {
    unlock();
  }
}

async function mergeInto(files: string[], headers: ResultsHeader[], format: OutputFormat, out: string | undefined): Promise<number> {
  const first = headers[0];
  const header: ResultsHeader = { ...first, shard: null, createdAt: new Date().toISOString() };
  const writer = new ResultWriter(format, first.pair, out, { header, manifestColumns: first.manifest, relativeTo: first.inputs.length === 1 ? first.inputs[0] : undefined });
  const counter = new SummaryCounter();
  const seen = new Map<string, string>();
  const duplicates: string[] = [];
  let duplicateCount = 0;
  try {
    const torn: string[] = [];
    for await (const { record, file } of mergedRecords(files, (f, line) => torn.push(`${f}, line ${line}`))) {
      const { result, origin } = splitLine(record);
      const id = inputIdentity(origin);
      const earlier = seen.get(id);
      if (earlier !== undefined) {
        duplicateCount++;
        if (duplicates.length < 10) duplicates.push(terminalText(`${origin.key}${origin.row !== undefined ? ` (row ${origin.row + 1})` : ''} — in ${earlier} and ${file}`));
        continue;
      }
      seen.set(id, file);
      counter.addVerdict(result.verdict);
      writer.addRecord(result, format === 'jsonl' ? origin : origin.givenLabel !== undefined ? { ...origin } : undefined);
    }
    const summary = counter.summary(first.pair, 0);
    await writer.end(summary);
    if (format === 'jsonl') process.stderr.write(`${ResultWriter.summaryLine(summary)}\n`);
    if (duplicateCount) process.stderr.write(`ood-lens: ${duplicateCount} input${duplicateCount > 1 ? 's appear' : ' appears'} more than once (the first result is kept):\n${duplicates.map((d) => `  ${d}\n`).join('')}${duplicateCount > duplicates.length ? `  … and ${duplicateCount - duplicates.length} more\n` : ''}`);
    for (const t of torn) process.stderr.write(`ood-lens: note: ${terminalText(t)} is incomplete (no newline: a run killed while writing it); left out — resume that run with --resume to score its input again\n`);
    if (out) process.stderr.write(`wrote ${summary.count} results to ${terminalText(out)}\n`);
    return summary.errors > 0 ? 2 : 0;
  } catch (err) {
    writer.abort();
    throw err;
  }
}
