/**
 * `ood-lens` — the engine on the command line, for CI pipelines and notebooks.
 * Exit status: 0 all scored; 1 usage or pair error; 2 some files could not be scored;
 * 3 with --fail-on-ood when any image is out-of-distribution (takes precedence over 2).
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { OodEngine } from '../inference/engine';
import { expandInputs } from '../inference/files';
import { ManifestError } from '../inference/manifest';
import { type OutputFormat, ResultWriter, SummaryCounter } from '../inference/output';
import { runCalibrate } from './calibrate';
import { runEval } from './evaluate';
import { COMMON_OPTIONS, engineOptions, UsageError } from './options';

export { COMMON_OPTIONS, engineOptions, printNotice, UsageError } from './options';

const USAGE = `ood-lens — is your image classifier answering about something it has never seen?

Usage:
  ood-lens score <file|folder|idx>... [--pair DIR] [--recursive] [--format table|json|csv] [--out FILE]
                 [--provider auto|cpu|cuda] [--alpha A] [--rule pair|all|both|elbo|complexity] [--fail-on-ood]
  ood-lens calibrate <folder|idx file> [--pair DIR] [--limit N] [--offset N]
  ood-lens eval --in <folder|idx> --ood <folder|idx> [--pair DIR] [--limit N] [--format table|json]
  ood-lens reproduce [--out DIR]
  ood-lens info [--pair DIR]

Without --pair the built-in MNIST pair (models/mnist) is used.
Exit status: 0 all scored, 1 usage/pair error, 2 some files failed, 3 out-of-distribution found (--fail-on-ood).`;

async function runScore(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...COMMON_OPTIONS, recursive: { type: 'boolean', short: 'r' }, format: { type: 'string' }, out: { type: 'string', short: 'o' }, 'fail-on-ood': { type: 'boolean' } },
  });
  if (values.help) return usage(0);
  if (positionals.length === 0) throw new UsageError('score needs at least one file or folder');
  const format = (values.format ?? 'table') as OutputFormat;
  if (!['table', 'json', 'csv'].includes(format)) throw new UsageError(`--format must be table, json or csv (got "${format}")`);
  const engine = await OodEngine.create(engineOptions(values));
  const counter = new SummaryCounter();
  const base = positionals.length === 1 ? resolve(positionals[0]) : process.cwd();
  const writer = new ResultWriter(format, engine.info, values.out ? resolve(values.out) : undefined, base);
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  try {
    await engine.scoreAll(expandInputs(positionals, { recursive: values.recursive, signal: controller.signal }), (r) => {
      counter.add(r);
      writer.add(r);
    }, { signal: controller.signal });
    const summary = counter.summary(engine.info);
    await writer.end(summary);
    if (values.out) process.stderr.write(`wrote ${summary.count} results to ${resolve(values.out)}\n`);
    if (controller.signal.aborted) {
      process.stderr.write(`interrupted after ${summary.count} images\n`);
      return 130;
    }
    if (values['fail-on-ood'] && summary.outOfDistribution > 0) return 3;
    return summary.errors > 0 ? 2 : 0;
  } catch (err) {
    writer.abort();
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    await engine.dispose();
  }
}

async function runInfo(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: COMMON_OPTIONS });
  if (values.help) return usage(0);
  const engine = await OodEngine.create(engineOptions(values));
  process.stdout.write(JSON.stringify(engine.info, null, 2) + '\n');
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
      case 'calibrate':
        return await runCalibrate(rest);
      case 'eval':
        return await runEval(rest);
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
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`ood-lens: ${(err as Error).message}\n\n${USAGE}\n`);
      return 1;
    }
    if (err instanceof ManifestError) {
      process.stderr.write(`ood-lens: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`ood-lens: ${(err as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
