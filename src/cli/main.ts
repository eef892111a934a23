/**
 * `ood-lens` — the engine on the command line, for CI pipelines and notebooks.
 * Exit status: 0 all scored; 1 usage or pair error; 2 some files could not be scored;
 * 3 with --fail-on-ood when any image is out-of-distribution (takes precedence over 2).
 */
import { parseArgs } from 'node:util';
import { OodEngine } from '../inference/engine';
import { terminalText } from '../inference/io/safeText';
import { ManifestError } from '../inference/pair/manifest';
import { OutputError } from '../inference/datasets/output';
import { OutputLockError } from '../inference/io/outputLock';
import { ResultsFileError } from '../inference/datasets/resultsFile';
import { runCalibrate } from './calibrate';
import { runEval } from './evaluate';
import { runMerge } from './merge';
import { COMMON_OPTIONS, engineOptions, isUsageError, UsageError } from './options';
import { parseScoreArgs, roughInputCount, runScoreWith, ScoreUsageError, startInputListing } from './score';

export { COMMON_OPTIONS, engineOptions, printNotice, UsageError } from './options';

const USAGE = `ood-lens — is your image classifier answering about something it has never seen?

Usage:
  ood-lens score <file|folder|idx>... | --manifest <csv|tsv|jsonl|txt>
                 [--pair DIR] [--recursive] [--format table|json|csv|jsonl] [--out FILE]
                 [--shard K/N] [--resume] [--provider auto|cpu|cuda] [--alpha A] [--rule pair|all|both|elbo|complexity]
                 [--fail-on-ood]
  ood-lens merge <results.jsonl>... [--format table|json|csv|jsonl] [--out FILE] [--same-inputs]
  ood-lens calibrate <folder|idx file> [--pair DIR] [--limit N] [--offset N] [--out FILE]
  ood-lens eval --in <folder|idx> --ood <folder|idx> [--pair DIR] [--limit N] [--format table|json]
  ood-lens fit --classifier <model> [--vae <model> | --encoder <m> --decoder <m> | --no-vae] --data <folder|idx|manifest>
               --out <dir> [--range LO,HI] [--mean M[,M,M]] [--std S[,S,S]] [--labels a,b,…]   (ood-lens fit --help)
  ood-lens reproduce [--out DIR]
  ood-lens info [--pair DIR]

Options of score, calibrate, eval and info:
  --batch-size N   images per model run (default: by input size, 64 for small images, 16 for 224×224 RGB). Models with a fixed batch size need no flag: OOD Lens
                   runs them in chunks of their own size.
  --threads N      onnxruntime threads per model (default: the engine's choice).

Without --pair the built-in MNIST pair (models/mnist) is used. --format jsonl writes one result per line as
they come (the summary goes to stderr); --resume continues such a file after an interruption; --shard K/N
scores one of N disjoint shares of the inputs (K = 0…N-1); merge combines shard files (--same-inputs: shards
whose inputs were given by other paths, the same data mounted elsewhere). --out FILE is locked while written
(FILE.lock). See docs/scale.md.
Exit status: 0 all scored, 1 usage/pair error, 2 some files failed, 3 out-of-distribution found (--fail-on-ood).`;

async function runScore(argv: string[]): Promise<number> {
  const { values, options } = parseScoreArgs(argv, COMMON_OPTIONS);
  if (values.help) return usage(0);
  // One run, nothing else scored on this thread meanwhile: its models can go while the shards score, and
  // for a large folder the shards start loading the pair while this thread does.
  const listed = roughInputCount(options);
  const expectedInputs = listed === undefined ? undefined : Math.floor(listed / (options.shard?.count ?? 1)); // --shard K/N scores 1/N of them
  const listing = startInputListing(options);
  let engine: OodEngine;
  try {
    engine = await OodEngine.create({ ...engineOptions(values), releaseModelsWhileSharded: true, expectedInputs });
  } catch (err) {
    listing.abandon();
    throw err;
  }
  try {
    return await runScoreWith(engine, options, listing);
  } finally {
    await engine.dispose();
  }
}

/** "0 images" from folders that only hold subfolders: say why, and what to add. */
async function runInfo(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: COMMON_OPTIONS });
  if (values.help) return usage(0);
  const engine = await OodEngine.create(engineOptions(values));
  const info = engine.info;
  process.stdout.write(JSON.stringify(info, null, 2) + '\n');
  if (info.fitCheck?.warning) process.stderr.write(`ood-lens: warning: ${terminalText(info.fitCheck.warning, true)}\n`);
  await engine.dispose();
  return 0;
}

function usage(code: number): number {
  (code === 0 ? process.stdout : process.stderr).write(USAGE + '\n');
  return code;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'score':
        return await runScore(rest);
      case 'merge':
        return await runMerge(rest);
      case 'calibrate':
        return await runCalibrate(rest);
      case 'eval':
        return await runEval(rest);
      case 'fit': {
        const { runFit } = await import('./fit');
        return await runFit(rest);
      }
      case 'reproduce': {
        const { runReproduce } = await import('./reproduce');
        return await runReproduce(rest);
      }
      case 'info':
        return await runInfo(rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        return usage(command === undefined ? 1 : 0);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (isUsageError(err) || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`ood-lens: ${(err as Error).message}\n\n${USAGE}\n`);
      return 1;
    }
    // Messages carry paths and names from the user's files: no escape sequence reaches the terminal.
    if (err instanceof ScoreUsageError || err instanceof OutputError || err instanceof ResultsFileError || err instanceof OutputLockError) {
      process.stderr.write(`ood-lens: ${terminalText((err as Error).message, true)}\n`);
      return 1;
    }
    if (err instanceof ManifestError) {
      process.stderr.write(`ood-lens: ${terminalText(err.message, true)}\n`);
      return 1;
    }
    process.stderr.write(`ood-lens: ${terminalText((err as Error).message, true)}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
