/**
 * The folder `fit` writes into: it touches only files it wrote itself (recorded in the pair's `fit.files`),
 * and the staging folders a killed fit left behind are removed on the next run.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Staging folders inside `--out`: `.ood-lens-fit-<pid>-<time>`; never a pair (pairPicker skips them). */
export const STAGING_PREFIX = '.ood-lens-fit-';

/** True for a path inside a fit's staging folder (a draft, never a pair to offer). */
export function isStagingPath(path: string): boolean {
  return path.split(/[\\/]/).some((segment) => segment.startsWith(STAGING_PREFIX));
}

/** Files fit writes besides the models; `features*` are the fitted feature detectors' files. */
export const FIT_FILES = ['ood-pair.json', 'calibration.json', 'split.json'];
const isFeatureFile = (name: string) => name.startsWith('features');

interface WrittenPair {
  classifier?: { path?: string };
  vae?: { path?: string; encoder?: { path?: string }; decoder?: { path?: string } };
  calibration?: string;
  features?: { fit?: string };
  fit?: { files?: string[]; splitFile?: string };
}

/** The top-level names of `out` that a pair written by fit owns (its record, else what its manifest names). */
function ownedByFit(pair: WrittenPair): Set<string> {
  if (pair.fit?.files) return new Set(pair.fit.files);
  // Pairs written before fit recorded its files: the files the manifest names, all of which fit wrote.
  const top = (p: string | undefined) => (p ? p.split('/')[0] : undefined);
  const names = [top(pair.classifier?.path), top(pair.vae?.path), top(pair.vae?.encoder?.path), top(pair.vae?.decoder?.path), pair.calibration, pair.fit?.splitFile, 'ood-pair.json'];
  return new Set(names.filter((n): n is string => !!n));
}

/**
 * Refuses (returns why) to write into `out` where that would replace files fit did not write, or a pair
 * without `force`. `planned`: the top-level names this run writes (models, calibration, split, manifest).
 */
export function outFolderProblem(out: string, planned: string[], force: boolean): string | null {
  if (!existsSync(out)) return null;
  const manifestPath = join(out, 'ood-pair.json');
  let owned = new Set<string>();
  if (existsSync(manifestPath)) {
    if (!force) return `${out} already holds a pair (ood-pair.json); choose another --out folder or pass --force to replace it`;
    let pair: WrittenPair;
    try {
      pair = JSON.parse(readFileSync(manifestPath, 'utf8')) as WrittenPair;
    } catch {
      return `--out ${out}: its ood-pair.json cannot be read, so fit cannot tell which files it wrote; choose another --out folder`;
    }
    if (!pair.fit) return `--out ${out}: its ood-pair.json was not written by ood-lens fit, and --force replaces only pairs fit wrote; choose another --out folder`;
    owned = ownedByFit(pair);
    for (const name of readdirSync(out)) if (pair.features?.fit && isFeatureFile(name)) owned.add(name);
  }
  const present = readdirSync(out);
  const clashes = present.sort().filter((name) => !owned.has(name) && (planned.includes(name) || FIT_FILES.includes(name) || isFeatureFile(name)));
  if (!clashes.length) return null;
  return `--out ${out}: fit would replace ${clashes.map((n) => `"${n}"`).join(', ')}, which fit did not write; nothing was touched. Choose another --out folder (or move those files away)`;
}

/** Removes staging folders of fits that no longer run (killed, crashed); returns their names. */
export function removeStaleStaging(out: string): string[] {
  if (!existsSync(out)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(out)) {
    const m = name.startsWith(STAGING_PREFIX) ? /^(\d+)-/.exec(name.slice(STAGING_PREFIX.length)) : null;
    if (!m || processRuns(Number(m[1]))) continue;
    rmSync(join(out, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
