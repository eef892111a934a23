/**
 * `npx tsx bench/coldStart.ts [runs]` (after `npm run build` or `npm run package`): where an OOD Lens cold start
 * goes outside VS Code, with the bundles the extension ships. Each run is a fresh process or thread, as after a
 * Reload Window: loading dist/extension.js (activation's code, with a stand-in `vscode` module), starting the
 * engine worker (dist/worker.js: thread, bundle, sharp), loading the built-in pair (its stages, from the worker's
 * log), the first inspect of an MNIST PNG and a second (warm) one. Prints min–max and median with the load
 * average; a benchmark, not a test: nothing is asserted. The e2e flow `cold-start-timing` measures the same in
 * code-server, webview included (docs/development.md).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';

const REPO = resolve(__dirname, '..');
const runs = Math.max(1, Number(process.argv[2] ?? 5) || 5);
const image = join(REPO, 'samples', 'mnist-test-00000.png');
const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** Loads dist/extension.js in a fresh Node with `vscode` stubbed: the module-evaluation part of activation. */
function extensionBundleMs(): number {
  const script = `
    const Module = require('module');
    const stub = new Proxy(function () {}, { get: (t, k) => (k === '__esModule' ? false : stub), apply: () => stub, construct: () => stub });
    const load = Module._load;
    Module._load = function (request, ...rest) { return request === 'vscode' ? stub : load.call(this, request, ...rest); };
    const t0 = performance.now();
    require(${JSON.stringify(join(REPO, 'dist', 'extension.js'))});
    process.stdout.write(String(performance.now() - t0));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`loading dist/extension.js failed: ${r.stderr}`);
  return Number(r.stdout);
}

interface WorkerRun {
  running: number;
  configured: number;
  firstVerdict: number;
  warmVerdict: number;
  stages: Record<string, number>;
}

/** One engine worker from its start to two verdicts, ms from `new Worker`. */
async function workerRun(): Promise<WorkerRun> {
  const spawnedAt = Date.now();
  const worker = new Worker(join(REPO, 'dist', 'worker.js'), { workerData: { spawnedAt } });
  const pending = new Map<number, (m: { kind: string; value?: unknown; message?: string }) => void>();
  let running = NaN;
  const stages: Record<string, number> = {};
  worker.on('message', (m: { id: number; kind: string; message?: string; value?: unknown }) => {
    if (m.kind === 'log') {
      const msg = m.message ?? '';
      if (/^engine worker running/.test(msg)) running = Date.now() - spawnedAt;
      const loaded = /in (\d+) ms \(models, calibration and feature files (\d+) ms, compressor (\d+) ms, checks (\d+) ms, detectors (\d+) ms\)/.exec(msg);
      if (loaded) Object.assign(stages, { 'pair load': +loaded[1], '  models, calibration, feature files': +loaded[2], '  compressor': +loaded[3], '  checks': +loaded[4], '  detectors (KNN session)': +loaded[5] });
      return;
    }
    pending.get(m.id)?.(m);
    pending.delete(m.id);
  });
  let id = 1;
  const request = (body: Record<string, unknown>) =>
    new Promise<{ kind: string; value?: unknown; message?: string }>((done) => {
      const n = id++;
      pending.set(n, done);
      worker.postMessage({ id: n, ...body });
    });
  const at = () => Date.now() - spawnedAt;
  // As EngineHost does on a cold check: configure, then the inspect right behind it.
  const configure = request({ kind: 'configure', config: { provider: 'auto', alpha: 0.01, rule: 'pair', batchSize: 64 } });
  const first = request({ kind: 'inspect', path: image });
  const c = await configure;
  if (c.kind !== 'ok') throw new Error(`configure: ${c.message}`);
  const configured = at();
  const f = await first;
  if (f.kind !== 'ok') throw new Error(`inspect: ${f.message}`);
  const firstVerdict = at();
  const t = Date.now();
  const w = await request({ kind: 'inspect', path: image });
  if (w.kind !== 'ok') throw new Error(`inspect: ${w.message}`);
  const warmVerdict = Date.now() - t;
  await request({ kind: 'shutdown' });
  await worker.terminate();
  return { running, configured, firstVerdict, warmVerdict, stages };
}

function summary(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `${s[0].toFixed(0).padStart(5)}–${s[s.length - 1].toFixed(0).padEnd(5)} ms  (median ${s[Math.floor(s.length / 2)].toFixed(0)})`;
}

async function main(): Promise<void> {
  for (const f of ['extension.js', 'worker.js']) if (!existsSync(join(REPO, 'dist', f))) throw new Error(`dist/${f} is missing: npm run build first`);
  const before = load();
  const bundle: number[] = [];
  const results: WorkerRun[] = [];
  for (let i = 0; i < runs; i++) {
    bundle.push(extensionBundleMs());
    results.push(await workerRun());
    process.stderr.write(`run ${i + 1}/${runs}: first verdict ${results[i].firstVerdict} ms after the worker's start\n`);
  }
  const rows: [string, number[]][] = [
    ['load dist/extension.js (activation code)', bundle],
    ['worker running (thread, bundle, sharp)', results.map((r) => r.running)],
    ['pair loaded (from the worker start)', results.map((r) => r.configured)],
    ...Object.keys(results[0].stages).map((k): [string, number[]] => [k, results.map((r) => r.stages[k])]),
    ['first verdict (from the worker start)', results.map((r) => r.firstVerdict)],
    ['warm verdict (one more inspect)', results.map((r) => r.warmVerdict)],
  ];
  console.log(`cold start outside VS Code, ${runs} runs, ${image.slice(REPO.length + 1)}; load average ${before} → ${load()}`);
  for (const [name, xs] of rows) console.log(`  ${name.padEnd(42)} ${summary(xs)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
