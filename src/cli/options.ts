/**
 * What every subcommand shares: the common flags, their translation into engine options, usage errors and
 * the notice printer. A module of its own so that main.ts imports the subcommands and never the reverse.
 */
import type { ExecutionProviderSetting } from '../inference/backends/types';
import type { EngineOptions } from '../inference/engineTypes';
import { VERDICT_RULES, type VerdictRule } from '../shared/rules';

/** A mistake in the command line: printed with the usage text, exit status 1. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * By name, not `instanceof`: `fit` and `reproduce` run from bundles of their own (dist/cli-fit.js,
 * dist/cli-reproduce.js), each with its own copy of this class.
 */
export function isUsageError(err: unknown): boolean {
  return err instanceof Error && err.name === 'UsageError';
}

export const COMMON_OPTIONS = {
  pair: { type: 'string' },
  provider: { type: 'string' },
  alpha: { type: 'string' },
  rule: { type: 'string' },
  'batch-size': { type: 'string' },
  threads: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The engine's fallback notices (shards that could not start or failed a batch), on stderr. */
export const printNotice = (message: string): void => void process.stderr.write(`ood-lens: note: ${message}\n`);

export function engineOptions(values: Record<string, unknown>): EngineOptions {
  const provider = (values.provider ?? 'auto') as string;
  if (!['auto', 'cpu', 'cuda'].includes(provider)) throw new UsageError(`--provider must be auto, cpu or cuda (got "${provider}")`);
  const rule = (values.rule ?? 'pair') as string;
  if (!(VERDICT_RULES as string[]).includes(rule)) throw new UsageError(`--rule must be ${VERDICT_RULES.join(', ')} (got "${rule}")`);
  const num = (name: string, min: number, max: number, integer = false) => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const v = Number(raw);
    if (!Number.isFinite(v) || v <= min || v > max || (integer && !Number.isInteger(v))) throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} in (${min}, ${max}] (got "${raw}")`);
    return v;
  };
  return {
    pair: values.pair as string | undefined,
    provider: provider as ExecutionProviderSetting,
    rule: rule as VerdictRule,
    alpha: num('alpha', 0, 0.999999),
    batchSize: num('batch-size', 0, 4096, true),
    threads: num('threads', 0, 256, true),
    onNotice: printNotice,
  };
}

/**
 * Command lines as people type them: `--range -1,1` and `--mean -0.5` (node's parseArgs refuses a value that
 * starts with a dash as "ambiguous") become `--range=-1,1`; only for options that take a value, only for a
 * value that is a number or a list of numbers.
 */
export function joinNegativeValues(argv: string[], valued: Iterable<string>): string[] {
  const names = new Set(valued);
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    const next = argv[i + 1];
    if (token.startsWith('--') && !token.includes('=') && names.has(token.slice(2)) && next !== undefined && /^-(\d|\.\d)[\d.,eE+-]*$/.test(next)) {
      out.push(`${token}=${next}`);
      i++;
    } else out.push(token);
  }
  return out;
}
