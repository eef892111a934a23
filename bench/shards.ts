/**
 * One run against N local shard processes on the same folder: N `ood-lens score --shard k/N` processes at
 * once (standing in for N nodes of a job array), then `ood-lens merge`. Used by `npm run bench` (N = 2) and on
 * its own for docs/scale.md:  npx tsx bench/shards.ts <folder> [N…]   (default N = 1 2 4)
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../test/helpers';

const CLI = join(REPO, 'bin', 'ood-lens.js');

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => res({ code, stderr }));
  });
}

export interface ShardRun {
  n: number;
  images: number;
  /** Wall time of the N processes together (start-up and model load included), then of the merge. */
  scoreSeconds: number;
  mergeSeconds: number;
  imagesPerSecond: number;
}

/** Scores `folder` as N shard processes at once and merges them; N = 1 is one plain run. */
export async function shardRun(folder: string, n: number, outDir: string): Promise<ShardRun> {
  mkdirSync(outDir, { recursive: true });
  const outs = Array.from({ length: n }, (_, k) => join(outDir, `shard-${k}-of-${n}.jsonl`));
  const t0 = performance.now();
  const results = await Promise.all(outs.map((out, k) => run(['score', folder, '--recursive', '--format', 'jsonl', ...(n > 1 ? ['--shard', `${k}/${n}`] : []), '--out', out])));
  const scoreSeconds = (performance.now() - t0) / 1000;
  for (const r of results) if (r.code !== 0) throw new Error(`ood-lens score exited with ${r.code}: ${r.stderr}`);
  const t1 = performance.now();
  const merged = await run(['merge', ...outs, '--format', 'jsonl', '--out', join(outDir, `merged-${n}.jsonl`)]);
  const mergeSeconds = (performance.now() - t1) / 1000;
  if (merged.code !== 0) throw new Error(`ood-lens merge exited with ${merged.code}: ${merged.stderr}`);
  const images = Number(/wrote (\d+) results/.exec(merged.stderr)?.[1] ?? NaN);
  return { n, images, scoreSeconds, mergeSeconds, imagesPerSecond: images / (scoreSeconds + mergeSeconds) };
}

if (require.main === module) {
  const [folder, ...ns] = process.argv.slice(2);
  if (!folder) {
    process.stderr.write('usage: npx tsx bench/shards.ts <folder> [N…]\n');
    process.exit(1);
  }
  (async () => {
    const counts = ns.length ? ns.map(Number) : [1, 2, 4];
    process.stdout.write('| N processes | images | score (wall) | merge | images/s, merge included |\n|---|---|---|---|---|\n');
    for (const n of counts) {
      const r = await shardRun(folder, n, join(REPO, '.tmp', 'bench', 'shards'));
      process.stdout.write(`| ${n} | ${r.images} | ${r.scoreSeconds.toFixed(1)} s | ${r.mergeSeconds.toFixed(1)} s | ${r.imagesPerSecond.toFixed(0)} |\n`);
    }
  })().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
