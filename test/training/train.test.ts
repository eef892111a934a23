import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { OodEngine } from '../../src/inference/engine';
import { REPO, tempDir } from '../helpers';

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
  delete m.calibration;
  writeFileSync(join(out, 'ood-pair.json'), JSON.stringify(m));
  const engine = await OodEngine.create({ pair: out, provider: 'cpu' });
  const r = await engine.scoreOne({ path: join(REPO, 'samples', 'mnist-test-00000.png') });
  await engine.dispose();
  assert.equal(r.verdict, 'uncalibrated');
  assert.ok(Number.isFinite(r.elbo!) && r.msp! > 0);
});
