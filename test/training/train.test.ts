import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { OodEngine } from '../../src/inference/engine';
import { idxImages, readIdxFile } from '../../src/inference/io/idx';
import { MNIST_TEST_IMAGES, REPO, tempDir } from '../helpers';

const PYTHON = '/usr/bin/python3';
const torchMissing = spawnSync(PYTHON, ['-c', 'import torch, onnx'], { encoding: 'utf8' }).status !== 0;

test('training --quick: data prepared by the engine, both losses fall, exported ONNX models load in the engine', { skip: torchMissing ? 'Debian python3-torch / python3-onnx are not installed (apt-get install python3-torch python3-onnx)' : false, timeout: 600_000 }, async () => {
  const data = tempDir('train-data-');
  const out = tempDir('train-out-');
  const prep = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'training', 'prepare-data.ts'), data, '--limit', '3000', '--dataset', 'mnist'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(prep.status, 0, prep.stderr);
  const train = spawnSync(PYTHON, [join(REPO, 'training', 'train.py'), '--dataset', 'mnist', '--quick', '--data', data, '--out', out, '--held-out', '500'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(train.status, 0, train.stderr.slice(-2000));
  assert.match(train.stdout, /quick: classifier loss [\d.]+ → [\d.]+/);
  assert.match(train.stdout, /quick: VAE loss [\d.]+ → [\d.]+/);
  const metrics = JSON.parse(readFileSync(join(out, 'training-metrics.json'), 'utf8'));
  assert.ok(metrics.classifier.testAccuracy > 0.5, `accuracy ${metrics.classifier.testAccuracy}`);
  for (const f of ['classifier.onnx', 'vae.onnx', 'vae-encoder.onnx', 'vae-decoder.onnx']) assert.ok(existsSync(join(out, f)), f);
  // The exported models run in the engine with the built-in manifest.
  const manifest = readFileSync(join(REPO, 'models', 'mnist', 'ood-pair.json'), 'utf8');
  const { writeFileSync } = await import('node:fs');
  const m = JSON.parse(manifest);
  // Freshly trained models: no calibration and no fitted feature detectors (the built-in manifest lists both).
  delete m.calibration;
  delete m.features;
  delete m.detectors;
  writeFileSync(join(out, 'ood-pair.json'), JSON.stringify(m));
  const engine = await OodEngine.create({ pair: out, provider: 'cpu' });
  const r = await engine.scoreOne({ path: join(REPO, 'samples', 'mnist-test-00000.png') });
  await engine.dispose();
  assert.equal(r.verdict, 'uncalibrated');
  assert.ok(Number.isFinite(r.elbo!) && r.msp! > 0);
});

/** Mean deterministic ELBO (nats) the engine gives the first `n` MNIST test images. */
async function engineTestElbo(pair: string, n: number): Promise<number> {
  const images = idxImages(readIdxFile(MNIST_TEST_IMAGES));
  const engine = await OodEngine.create({ pair, provider: 'cpu' });
  let total = 0;
  try {
    const inputs = Array.from({ length: n }, (_, i) => ({ path: `#${i}`, source: { width: 28, height: 28, channels: 1 as const, data: images.image(i) } }));
    await engine.scoreAll(inputs, (r) => void (total += r.elbo!));
  } finally {
    await engine.dispose();
  }
  return total / n;
}

test('training --quick with a discretised-logistic decoder: the engine computes the same test ELBO as PyTorch (single and split VAE)', { skip: torchMissing ? 'Debian python3-torch / python3-onnx are not installed' : false, timeout: 600_000 }, async () => {
  const data = tempDir('train-data-');
  const out = tempDir('train-out-');
  const prep = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'training', 'prepare-data.ts'), data, '--limit', '3000', '--dataset', 'mnist'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(prep.status, 0, prep.stderr);
  const train = spawnSync(PYTHON, [join(REPO, 'training', 'train.py'), '--dataset', 'mnist', '--quick', '--likelihood', 'discretized-logistic', '--data', data, '--out', out, '--held-out', '500'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(train.status, 0, train.stderr.slice(-2000));
  const metrics = JSON.parse(readFileSync(join(out, 'training-metrics.json'), 'utf8'));
  assert.equal(metrics.vae.likelihood, 'discretized-logistic');
  const { writeFileSync } = await import('node:fs');
  // The TF.js export rebuilds the log-scale head (clamp as relu + offset) and checks it against ONNX.
  const tfjs = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'training', 'export-tfjs.ts'), out], { cwd: REPO, encoding: 'utf8' });
  assert.equal(tfjs.status, 0, tfjs.stdout + tfjs.stderr);
  assert.match(tfjs.stdout, /vae log_scale\s+max \|ONNX − TF\.js\| = /);
  const m = JSON.parse(readFileSync(join(REPO, 'models', 'mnist', 'ood-pair.json'), 'utf8'));
  // Freshly trained models: no calibration and no fitted feature detectors (the built-in manifest lists both).
  delete m.calibration;
  delete m.features;
  delete m.detectors;
  m.vae.likelihood = { type: 'discretized-logistic' };
  m.vae.outputs.logScale = 'log_scale';
  m.vae.decoder.logScaleOutput = 'log_scale';
  writeFileSync(join(out, 'ood-pair.json'), JSON.stringify(m));
  // train.py's test ELBO is over the first 2,000 prepared test images (quick mode), at the posterior mean.
  const single = await engineTestElbo(out, 2000);
  assert.ok(Math.abs(single - metrics.vae.testElboNats) < 1e-3 * Math.abs(metrics.vae.testElboNats), `engine ${single} vs PyTorch ${metrics.vae.testElboNats}`);
  // The split encoder/decoder with one sample at the posterior mean's neighbourhood gives a comparable ELBO.
  delete m.vae.path;
  delete m.vae.format;
  delete m.vae.outputs;
  m.vae.samples = 4;
  writeFileSync(join(out, 'split.json'), JSON.stringify(m));
  const sampled = await engineTestElbo(join(out, 'split.json'), 200);
  assert.ok(Number.isFinite(sampled) && sampled < 0 && Math.abs(sampled - single) < 0.2 * Math.abs(single), `sampled ${sampled} vs deterministic ${single}`);
});
