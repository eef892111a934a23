/**
 * Dataset manifests in the editor, before and after the manifest worker: a manifest of N rows (CSV or JSONL)
 * parsed as the extension host did it (the in-process parser of commit 6e94556, on the calling thread) and
 * as it does now (the manifest worker reading the saved file; the calling thread only receives compact rows).
 * Each measurement runs in a fresh process: wall time, peak RSS of the process (VmHWM, worker included) and the
 * longest stall of the calling thread's event loop (a 1 ms timer's largest gap).
 *   npx tsx bench/manifestHost.ts [rows]      (default 1,000,000; prints a markdown table)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../test/helpers';

const DIR = join(REPO, '.tmp', 'bench', 'manifest-host');
const BEFORE_COMMIT = '6e94556';

function prepare(rows: number): void {
  mkdirSync(DIR, { recursive: true });
  const legacy = execFileSync('git', ['show', `${BEFORE_COMMIT}:src/providers/datasetManifest.ts`], { cwd: REPO, encoding: 'utf8' }).replace("'../inference/files'", `'${join(REPO, 'src', 'inference', 'io', 'files')}'`);
  writeFileSync(join(DIR, 'legacyDatasetManifest.ts'), legacy);
  const csv = ['path,label'];
  const jsonl: string[] = [];
  for (let i = 0; i < rows; i++) {
    const path = `images/class-${i % 10}/img-${String(i).padStart(7, '0')}.png`;
    csv.push(`${path},${i % 10}`);
    jsonl.push(JSON.stringify({ path, label: i % 10 }));
  }
  writeFileSync(join(DIR, 'manifest.csv'), csv.join('\n') + '\n');
  writeFileSync(join(DIR, 'manifest.jsonl'), jsonl.join('\n') + '\n');
}

/** One measurement, in this (fresh) process. */
async function measure(impl: 'before' | 'after', format: 'csv' | 'jsonl'): Promise<void> {
  const file = join(DIR, `manifest.${format}`);
  // Modules are loaded (and compiled by tsx) before the clock starts: their loading is no stall of parsing.
  const legacy = impl === 'before' ? await import(join(DIR, 'legacyDatasetManifest.ts')) : null;
  const { ManifestParser } = await import('../src/providers/manifestParser');
  let longest = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  const t0 = performance.now();
  let rows: number;
  if (impl === 'before') {
    // As manifestFeatures did: the document's text, parsed on the host's thread.
    const text = readFileSync(file, 'utf8');
    rows = (await legacy.parseManifest(text, { format, baseDir: DIR, roots: [DIR], restricted: false })).rows.length;
  } else {
    const parser = new ManifestParser(join(REPO, 'dist', 'manifestWorker.js'));
    const m = await parser.parse({ format, baseDir: DIR, roots: [DIR], restricted: false, path: file });
    rows = m.rows.length;
    parser.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(timer);
  const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
  process.stdout.write(JSON.stringify({ impl, format, rows, seconds, peakMb: hwm, longestStallMs: longest }) + '\n');
}

if (process.argv[2] === '--one') {
  void measure(process.argv[3] as 'before' | 'after', process.argv[4] as 'csv' | 'jsonl');
} else {
  const rows = Number(process.argv[2] ?? 1_000_000);
  if (!process.env.OOD_LENS_BENCH_REUSE) prepare(rows);
  process.stdout.write(`| ${rows.toLocaleString('en-US')} rows | time | peak RSS | longest stall of the calling thread |\n|---|---|---|---|\n`);
  const impls = (process.env.OOD_LENS_BENCH_IMPLS ?? 'before,after').split(',') as ('before' | 'after')[];
  for (const format of ['csv', 'jsonl'] as const) {
    for (const impl of impls) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--one', impl, format], { cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 20 });
      if (r.status !== 0) throw new Error(r.stderr);
      const m = JSON.parse(r.stdout.trim().split('\n').pop()!);
      process.stdout.write(`| ${format.toUpperCase()}, ${impl === 'before' ? 'before (in-process parser on the host thread)' : 'after (manifest worker)'} | ${m.seconds.toFixed(1)} s | ${m.peakMb.toFixed(0)} MB | ${m.longestStallMs.toFixed(0)} ms |\n`);
    }
  }
}
