/**
 * Issue 22, audit item 7: a model that declares a 40000×40000 input hung `score` and `fit` (the schema capped
 * the sizes a manifest states, not the ones a model declares; one probe tensor alone is 6.4 GB). Both now
 * refuse it at once, naming the model and the fix, before any tensor is made.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { OodEngine } from '../../../src/inference/engine';
import { MAX_INPUT_SIDE } from '../../../src/inference/pair/manifest';
import { MNIST_TEST_IMAGES, REPO, tempDir } from '../../helpers';

const HUGE = join(REPO, 'test', 'fixtures', 'models', 'huge-input-classifier.onnx');
const REFUSAL = /declares input "image" as \[\?, 1, 40000, 40000\]: 40000×40000 is larger than the 4096×4096 OOD Lens feeds a model .*; export the model with the input size it was trained on, at most 4096×4096/;

function hugePair(): string {
  const dir = tempDir('ood-lens-huge-');
  copyFileSync(HUGE, join(dir, 'classifier.onnx'));
  const labels = Array.from({ length: 10 }, (_, i) => String(i));
  writeFileSync(join(dir, 'ood-pair.json'), JSON.stringify({ name: 'huge', input: { channels: 1, layout: 'NCHW' }, classifier: { path: 'classifier.onnx', format: 'onnx', outputKind: 'logits', labels } }));
  return dir;
}

test('the cap on declared sizes is the schema\'s cap on stated ones', () => {
  assert.equal(MAX_INPUT_SIDE, 4096);
});

test('score: a pair whose model declares 40000×40000 is refused at load, naming the model, the field and the fix', async () => {
  const started = Date.now();
  const rss = process.memoryUsage().rss;
  await assert.rejects(OodEngine.create({ pair: hugePair(), provider: 'cpu' }), (err: Error) => {
    assert.match(err.message, /classifier\.width\/classifier\.height: .*huge-[^/]+\/classifier\.onnx /);
    assert.match(err.message, REFUSAL);
    return true;
  });
  assert.ok(Date.now() - started < 20_000);
  assert.ok(process.memoryUsage().rss - rss < 512 * 1024 * 1024, 'no image-sized tensor was made');
});

test('score and fit on the command line: exit 1 at once with the message, nothing written', () => {
  const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'src', 'cli', 'main.ts'), ...args], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
  const score = run(['score', MNIST_TEST_IMAGES, '--pair', hugePair()]);
  assert.equal(score.status, 1, score.stderr);
  assert.match(score.stderr, REFUSAL);
  const out = join(tempDir(), 'pair');
  const fit = run(['fit', '--classifier', HUGE, '--data', MNIST_TEST_IMAGES, '--out', out]);
  assert.equal(fit.status, 1, fit.stderr);
  assert.match(fit.stderr, /huge-input-classifier\.onnx: the classifier's input "image" \[\?, 1, 40000, 40000\]: 40000×40000 is larger than the 4096×4096 OOD Lens feeds a model/);
  assert.ok(!existsSync(join(out, 'ood-pair.json')));
});
