/**
 * The Create Pair requests of the real engine worker (under tsx in a worker thread), driven through
 * EngineClient as the extension drives them: inspectModel on the built-in classifier and on files that are not
 * models, fit on real MNIST test digits (a CSV manifest with labels) with progress and the FitReport the panel
 * shows, a fit refused up front for too few images, and a fit cancelled mid-way that writes nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { readCalibration } from '../../src/inference/pair/calibration';
import { firingThreshold } from '../../src/shared/fitReport';
import { loadPairManifest } from '../../src/inference/pair/manifest';
import type { FitEvent } from '../../src/shared/engineProtocol';
import { EngineClient, FIT_CANCELLED_BEFORE_START } from '../../src/worker/engineClient';
import { labelsOf, MNIST_PAIR, MNIST_TEST_IMAGES, MNIST_TEST_LABELS, tempDir, writeIdxPngs } from '../helpers';
import { pairSkipReason } from './pairAvailable';

const repoRoot = resolve(__dirname, '../..');
const classifier = join(MNIST_PAIR, 'classifier.onnx');
const SKIP = pairSkipReason(MNIST_PAIR, repoRoot) ?? (existsSync(MNIST_TEST_IMAGES) ? undefined : 'MNIST test images missing');
const bootstrap = join(__dirname, 'tsxWorker.mjs');
const entry = join(repoRoot, 'src/worker/engineWorker.ts');

describe('engine worker: Create Pair requests', { skip: SKIP }, () => {
  let dir: string;
  let client: EngineClient;
  const logs: string[] = [];
  const digits: string[] = [];
  let manifestCsv: string;
  let smallCsv: string;

  before(async () => {
    dir = tempDir('ood-fit-worker-');
    const labels = labelsOf(MNIST_TEST_LABELS);
    const n = 500;
    const indices = Array.from({ length: n }, (_, i) => i);
    digits.push(...(await writeIdxPngs(MNIST_TEST_IMAGES, indices, join(dir, 'digits'), 'mnist')));
    manifestCsv = join(dir, 'digits.csv');
    writeFileSync(manifestCsv, ['path,label', ...indices.map((i) => `digits/mnist-${String(i).padStart(5, '0')}.png,${labels[i]}`), ''].join('\n'));
    // 400 of them: a calibration part of 180, too few for any test to fire at α = 0.01.
    smallCsv = join(dir, 'digits-400.csv');
    writeFileSync(smallCsv, ['path,label', ...indices.slice(0, 400).map((i) => `digits/mnist-${String(i).padStart(5, '0')}.png,${labels[i]}`), ''].join('\n'));
    client = new EngineClient({
      spawn: () => new Worker(bootstrap, { workerData: { entry }, stdout: true, stderr: true }),
      log: (level, message) => logs.push(`${level}: ${message}`),
    });
  });

  after(async () => {
    await client?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('inspectModel reads the built-in classifier: input, output, image, class count', async () => {
    const facts = await client.inspectModel(classifier);
    assert.equal(facts.format, 'onnx');
    assert.deepEqual(facts.inputs.map((t) => [t.name, t.shape]), [['image', [null, 1, 32, 32]]]);
    assert.deepEqual(facts.outputs.map((t) => [t.name, t.shape]), [['logits', [null, 10]]]);
    assert.deepEqual(facts.image, { name: 'image', width: 32, height: 32, channels: 1, layout: 'NCHW', staticBatch: null, dtype: 'float32' });
    assert.deepEqual(facts.classOutput, { name: 'logits', classes: 10, kind: 'logits' });
    assert.equal(facts.imageError, null);
  });

  test('issue 25: sampleData reads the sizes of a sample of a manifest\'s images; preview runs one through the classifier as fit will feed it', async () => {
    const sample = await client.sampleData([manifestCsv]);
    assert.equal(sample.total, 500);
    assert.deepEqual(sample.sizes, [{ width: 28, height: 28, count: sample.sampled }]);
    assert.ok(sample.sampled >= 20 && sample.first === digits[0], JSON.stringify(sample));
    const labels = labelsOf(MNIST_TEST_LABELS);
    const preview = await client.preview({ classifier, image: sample.first!, scaling: { range: [0, 1] }, output: 'logits', outputKind: 'logits' });
    assert.equal(preview.label, String(labels[0]));
    assert.deepEqual([preview.width, preview.height, preview.channels, preview.source], [32, 32, 1, { width: 28, height: 28 }]);
    // The picture crosses as a PNG of the model's input size.
    const png = Buffer.from(preview.modelInputPng, 'base64');
    assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
    assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [32, 32]);
  });

  test('inspectModel on a VAE: the image is read, the class output is refused with the outputs named', async () => {
    const facts = await client.inspectModel(join(MNIST_PAIR, 'vae.onnx'));
    assert.ok(facts.image);
    assert.equal(facts.classOutput, null);
    assert.match(facts.classOutputError!, /"reconstruction_logits", "mu", "logvar"/);
    // The three are offered to choose from, with their sizes: 32×32 pixels, 16-d latents.
    assert.deepEqual(facts.classCandidates.map((c) => [c.name, c.classes]), [['reconstruction_logits', 1024], ['mu', 16], ['logvar', 16]]);
  });

  test('inspectModel on files that are not models names the file and the problem', async () => {
    const notModel = join(dir, 'notes.txt');
    writeFileSync(notModel, 'hello');
    await assert.rejects(client.inspectModel(notModel), (err: Error) => err.message.includes(notModel) && /not a model OOD Lens reads/.test(err.message));
    const corrupt = join(dir, 'broken.onnx');
    writeFileSync(corrupt, 'not protobuf at all');
    await assert.rejects(client.inspectModel(corrupt), (err: Error) => err.message.includes('broken.onnx'));
    await assert.rejects(client.inspectModel(join(dir, 'missing.onnx')), /not found/);
  });

  test('fit: a classifier-only pair from a labelled manifest, with progress, decisions and the panel report', async () => {
    const out = join(dir, 'pairs', 'mine');
    const events: FitEvent[] = [];
    const report = await client.fit({ classifier, data: [manifestCsv], out, name: 'mine', scaling: { range: [0, 1] }, provider: 'cpu', trainVae: false }, (e) => events.push(e));
    // What was written is a pair that loads.
    assert.equal(report.manifestPath, join(out, 'ood-pair.json'));
    const m = loadPairManifest(report.manifestPath).manifest;
    assert.equal(m.vae, undefined);
    assert.equal(m.classifier.labels.length, 10);
    assert.equal(report.classifierOnly, true);
    // The split: 10% held out; of the rest, half fits the feature detectors (KNN, Mahalanobis), half calibrates.
    assert.deepEqual(report.parts, { fit: 225, calibration: 225, check: 50 });
    assert.equal(report.checkImages, 50);
    assert.equal(report.falseAlarms, Math.round(report.falseAlarmRate * 50));
    assert.ok(report.falseAlarmRate >= 0 && report.falseAlarmRate <= 1);
    // The manifest's labels make held-out accuracy measurable; the built-in classifier reads MNIST well.
    assert.ok(report.heldOutAccuracy !== null && report.heldOutAccuracy > 0.8, `accuracy ${report.heldOutAccuracy}`);
    // One histogram per calibrated score, over exactly the calibration part, with the share the manifest gives it.
    const cal = readCalibration(join(out, 'calibration.json'));
    const shares = Object.fromEntries((m.detectors ?? []).map((d) => [d.test === 'confidence' ? 'msp' : d.test, d.share]));
    assert.ok(report.histograms.some((h) => h.score === 'msp') && report.histograms.some((h) => h.score === 'knn'), report.histograms.map((h) => h.score).join(', '));
    for (const h of report.histograms) {
      const values = (cal.scores as unknown as Record<string, number[]>)[h.score];
      assert.equal(h.calibration.reduce((a, b) => a + b, 0), values.length, h.score);
      assert.equal(h.calibrationCount, 225);
      // The held-out check part is binned beside it.
      assert.equal(h.check!.reduce((a, b) => a + b, 0), 50, h.score);
      assert.equal(h.share, shares[h.score] ?? 0, h.score);
      // With 225 calibration images the smallest p-value is 1/226 ≈ 0.0044: KNN (0.5 × α = 0.005) can fire, the
      // tests with 0.25 × α (MSP, energy) and Mahalanobis (share 0) cannot, and the panel says so (null).
      assert.equal(h.threshold, firingThreshold([...values].sort((x, y) => x - y), h.share * 0.01, h.oodWhen), h.score);
      assert.equal(h.threshold === null, h.score !== 'knn', `${h.score}: threshold ${h.threshold}`);
    }
    // MSP is binned in its own units (the check part's MSPs are within [0, 1] like the calibration part's).
    const msp = report.histograms.find((h) => h.score === 'msp')!;
    assert.ok(msp.min >= 0 && msp.min + msp.bins * msp.binWidth <= 1 + 1e-9, `MSP axis ${msp.min}…${msp.min + msp.bins * msp.binWidth}`);
    // Progress: every phase, scoring counted up to the images scored; the decisions include the false alarms.
    const phases: string[] = events.flatMap((e) => (e.type === 'progress' ? [e.progress.phase] : []));
    for (const p of ['reading models', 'listing images', 'fitting detectors', 'scoring', 'writing']) assert.ok(phases.includes(p), `no ${p} progress (${phases.join(', ')})`);
    const lastScoring = events.filter((e) => e.type === 'progress' && e.progress.phase === 'scoring').pop();
    // Scoring covers the calibration and check parts (the fit part was read by the detector fit).
    assert.deepEqual(lastScoring?.type === 'progress' && [lastScoring.progress.done, lastScoring.progress.total], [275, 275]);
    assert.ok(report.decisions.some((d) => /held-out false alarms/.test(d)), report.decisions.join('\n'));
    assert.deepEqual(
      events.filter((e) => e.type === 'decision').map((e) => (e.type === 'decision' ? e.line : '')),
      report.decisions,
    );
  });

  test('issue 21: fit trains a VAE; the panel report carries its training record and held-out reconstructions', async () => {
    const out = join(dir, 'pairs', 'with-vae');
    const events: FitEvent[] = [];
    // A folder, as Create Pair's "A folder of images" gives: split.json names its images relative to it.
    const folder = join(dir, 'digits');
    const report = await client.fit({ classifier, data: [folder], out, scaling: { range: [0, 1] }, provider: 'cpu', vaeEpochs: 2 }, (e) => events.push(e));
    assert.equal(report.classifierOnly, false);
    const m = loadPairManifest(report.manifestPath).manifest;
    const training = m.vae?.training;
    assert.ok(training, 'the manifest has no VAE training record');
    // The record as the panel shows it: the manifest's, with the line info prints.
    assert.equal(report.vae?.training?.epochs, 2);
    assert.deepEqual(report.vae?.training?.lossCurve, training.lossCurve);
    assert.equal(report.vae?.training?.heldOutElbo, training.heldOutElbo);
    assert.match(report.vae!.training!.line, /^VAE trained by fit on \d+ images: 2 epochs in /);
    // Progress said the epoch, the loss and the time left while it trained.
    const vaeProgress = events.flatMap((e) => (e.type === 'progress' && e.progress.vae ? [e.progress.vae] : []));
    assert.ok(vaeProgress.some((p) => p.epoch === 2 && p.epochs === 2 && Number.isFinite(p.loss) && p.secondsLeft >= 0), JSON.stringify(vaeProgress.slice(-2)));
    // Four held-out check images (split.json's check part, never trained on), each with the VAE's reconstruction
    // at the VAE's size: real PNGs of that size, and not the input copied.
    const split = JSON.parse(readFileSync(join(out, 'split.json'), 'utf8')) as { parts: { check: string[]; fit: string[] } };
    assert.equal(report.vae!.samples.length, 4, report.vae!.samplesError);
    assert.deepEqual(report.vae!.samples.map((s) => s.path), split.parts.check.slice(0, 4).map((p) => resolve(folder, p)));
    for (const s of report.vae!.samples) {
      assert.ok(!split.parts.fit.map((p) => resolve(folder, p)).includes(s.path), `${s.path} is a fit-part image`);
      for (const png of [s.inputPng, s.reconstructionPng]) {
        const meta = await sharp(Buffer.from(png, 'base64')).metadata();
        assert.deepEqual([meta.format, meta.width, meta.height], ['png', s.width, s.height]);
      }
      assert.notEqual(s.reconstructionPng, s.inputPng);
      assert.ok(s.elbo !== null && Number.isFinite(s.elbo) && s.elbo < 0, `ELBO ${s.elbo}`);
    }
  });

  test('fit refuses data too small for any test to fire at α, before any scoring, as a FitError naming what would do', async () => {
    const out = join(dir, 'pairs', 'too-small');
    const events: FitEvent[] = [];
    await assert.rejects(client.fit({ classifier, data: [smallCsv], out, scaling: { range: [0, 1] }, provider: 'cpu', trainVae: false }, (e) => events.push(e)), (err: Error) => {
      // The worker's FitError keeps its name across the thread: Create Pair shows it as the user's problem, not a crash.
      assert.equal(err.name, 'FitError');
      assert.match(err.message, /400 images are too few for this pair at α = 0\.01: the split gives fit 180, calibration 180, check 40/);
      assert.match(err.message, /needs at least 200 calibration images\. Give at least 443 in-distribution images/);
      assert.match(err.message, /--alpha 0\.0111 or more/);
      return true;
    });
    // Refused before the detector fit and any scoring; nothing written.
    const phases = events.flatMap((e) => (e.type === 'progress' ? [e.progress.phase] : []));
    assert.ok(!phases.includes('fitting detectors') && !phases.includes('scoring'), phases.join(', '));
    assert.equal(existsSync(join(out, 'ood-pair.json')), false);
  });

  test('fit cancelled while it runs: rejects, writes no pair, and the worker keeps answering', async () => {
    const out = join(dir, 'pairs', 'cancelled');
    const controller = new AbortController();
    const run = client.fit({ classifier, data: [join(dir, 'digits')], out, scaling: { range: [0, 1] }, provider: 'cpu', trainVae: false }, (e) => {
      // Cancel at the first sign of work: on an idle machine the small set is scored before a later abort arrives.
      if (e.type === 'progress') controller.abort();
    }, controller.signal);
    await assert.rejects(run, /cancelled; nothing was written/);
    assert.equal(existsSync(join(out, 'ood-pair.json')), false);
    // No staging folder is left behind either.
    assert.deepEqual(existsSync(out) ? readdirSync(out) : [], []);
    const facts = await client.inspectModel(classifier);
    assert.equal(facts.classOutput?.classes, 10);
  });

  test('fit cancelled while the worker is still starting: answered at once, and the worker is told to cancel it', async () => {
    // A worker that has not begun anything yet (still loading onnxruntime, sharp, TF.js): it never answers.
    const posted: { kind: string; id: number; target?: number }[] = [];
    const starting = Object.assign(new EventEmitter(), {
      postMessage: (m: { kind: string; id: number; target?: number }) => void posted.push(m),
      terminate: async () => 0,
    });
    const cold = new EngineClient({ spawn: () => starting as unknown as Worker, log: () => undefined, shutdownTimeoutMs: 10 });
    const controller = new AbortController();
    const run = cold.fit({ classifier, data: [manifestCsv], out: join(dir, 'pairs', 'never'), provider: 'cpu', trainVae: false }, () => undefined, controller.signal);
    controller.abort();
    await assert.rejects(run, (err: Error) => err.name === 'FitError' && err.message === FIT_CANCELLED_BEFORE_START);
    const fit = posted.find((m) => m.kind === 'fit')!;
    assert.deepEqual(posted.filter((m) => m.kind === 'cancel').map((m) => m.target), [fit.id]);
    await cold.dispose();
  });

  test('fit cancelled right after it was asked of a worker that is just starting: nothing is written, the worker stops it', async () => {
    const workerLogs: string[] = [];
    const cold = new EngineClient({ spawn: () => new Worker(bootstrap, { workerData: { entry }, stdout: true, stderr: true }), log: (level, m) => workerLogs.push(`${level}: ${m}`) });
    const out = join(dir, 'pairs', 'cancelled-cold');
    const controller = new AbortController();
    const events: FitEvent[] = [];
    const run = cold.fit({ classifier, data: [manifestCsv], out, provider: 'cpu', trainVae: false }, (e) => events.push(e), controller.signal);
    controller.abort();
    await assert.rejects(run, /cancelled before it started; nothing was written/);
    // The worker got the cancel right behind the fit and ended it as cancelled (its late answer is logged), wrote
    // nothing, not even a staging folder, and answers other requests.
    while (!workerLogs.some((l) => /cancelled before it started, /.test(l))) await new Promise((r) => setTimeout(r, 50));
    assert.ok(workerLogs.some((l) => /^info: fit \d+, cancelled before it started, ended in the worker: fit was cancelled; nothing was written$/.test(l)), workerLogs.join('\n'));
    assert.equal(existsSync(out), false);
    const facts = await cold.inspectModel(classifier);
    assert.equal(facts.classOutput?.classes, 10);
    await cold.dispose();
    assert.deepEqual(events, []);
    assert.ok(!workerLogs.some((l) => l.startsWith('error')), workerLogs.join('\n'));
  });

  test('fit refuses a folder that already holds a pair unless asked to replace it', async () => {
    const out = join(dir, 'pairs', 'existing');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'ood-pair.json'), readFileSync(join(MNIST_PAIR, 'ood-pair.json')));
    await assert.rejects(client.fit({ classifier, data: [manifestCsv], out, provider: 'cpu', trainVae: false }, () => undefined), /already holds a pair/);
  });
});
