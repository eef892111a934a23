/**
 * Score cache at its default size (200,000 entries, each with a path entry): what one save costs during a
 * scan (a batch of 64 new scores) and what loading costs, in wall time and in the longest stall of the
 * event loop (the extension host's main thread). A benchmark, not a test: it prints figures, asserts none.
 *   npx tsx bench/scoreCache.ts [--entries N] [--module path/to/scoreCache.ts]
 * `--module` measures another implementation with the same API (e.g. the previous one, from git show).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ImageResult } from '../src/inference/engine';

type CacheModule = typeof import('../src/providers/scoreCache');

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const ENTRIES = Number(arg('--entries') ?? 200_000);
const BATCH = 64;
const BATCHES = 10;
const modulePath = resolve(arg('--module') ?? join(__dirname, '..', 'src', 'providers', 'scoreCache.ts'));

function result(i: number): ImageResult {
  return {
    path: `/data/set/${i}.png`, prediction: i % 10, label: String(i % 10), msp: 0.9 + (i % 100) / 1000, entropy: 0.05, energy: -12.5, elbo: -80 - (i % 50), reconstructionLogLik: -75,
    kl: 8.25, elboBitsPerDim: 0.124, logPxBound: null, complexityBits: 1234, complexityScore: 10.5, pValue: 0.42, pValues: { elbo: 0.42, complexity: 0.6, confidence: 0.3 },
    firedBy: [], verdict: 'in-distribution', error: null,
  };
}

/**
 * Wall time, CPU time of the process (user + system: on a busy machine the figure least disturbed by other
 * processes) and the longest event-loop stall (a 1 ms timer's largest lateness, which also counts time the
 * OS gave the CPU to someone else) while `fn` runs.
 */
async function measure<T>(fn: () => Promise<T>): Promise<{ value: T; wallMs: number; cpuMs: number; maxStallMs: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  // One more turn so that a stall at the very end is recorded.
  await new Promise((r) => setTimeout(r, 5));
  h.disable();
  return { value, wallMs, cpuMs: (cpu.user + cpu.system) / 1000, maxStallMs: h.max / 1e6 };
}

const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

async function main(): Promise<void> {
  const { ScoreCache, sha256Hex } = (await import(modulePath)) as CacheModule;
  const dir = mkdtempSync(join(tmpdir(), 'oodlens-cache-bench-'));
  const file = join(dir, 'score-cache');
  try {
    const cache = await ScoreCache.open(file, { maxEntries: ENTRIES, saveDelayMs: 0 });
    cache.setIdentity('bench-pair');
    const at = (i: number) => ({ key: cache.keyFor(sha256Hex(`image-${i}`)), size: 1000 + i, mtimeMs: 1_700_000_000_000 + i });
    for (let i = 0; i < ENTRIES; i++) await cache.put(`/data/set/${i}.png`, result(i), at(i));
    const first = await measure(() => cache.flush());
    const size = statSync(file).size;

    const walls: number[] = [];
    const cpus: number[] = [];
    const stalls: number[] = [];
    let next = ENTRIES;
    for (let b = 0; b < BATCHES; b++) {
      for (let k = 0; k < BATCH; k++, next++) await cache.put(`/data/set/${next}.png`, result(next), at(next));
      const m = await measure(() => cache.flush());
      walls.push(m.wallMs);
      cpus.push(m.cpuMs);
      stalls.push(m.maxStallMs);
    }
    await cache.dispose();
    const sizeAfter = statSync(file).size;

    const load = await measure(() => ScoreCache.open(file, { maxEntries: ENTRIES, saveDelayMs: 0 }));
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(`score cache bench · ${modulePath}`);
    console.log(`  ${ENTRIES.toLocaleString('en-US')} entries · file ${(size / 1024 / 1024).toFixed(1)} MB (${(sizeAfter / 1024 / 1024).toFixed(1)} MB after ${BATCHES} more batches)`);
    console.log(`  first save (all entries): ${fmt(first.wallMs)} ms wall, ${fmt(first.cpuMs)} ms CPU, longest event-loop stall ${fmt(first.maxStallMs)} ms`);
    console.log(
      `  save per batch of ${BATCH} new scores (median of ${BATCHES}): ${fmt(median(walls))} ms wall (max ${fmt(Math.max(...walls))}), ${fmt(median(cpus))} ms CPU (max ${fmt(Math.max(...cpus))}), ` +
        `longest stall ${fmt(median(stalls))} ms (max ${fmt(Math.max(...stalls))})`,
    );
    console.log(`  load: ${fmt(load.wallMs)} ms wall, ${fmt(load.cpuMs)} ms CPU, ${load.value.size.toLocaleString('en-US')} entries, longest event-loop stall ${fmt(load.maxStallMs)} ms`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
