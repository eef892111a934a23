/**
 * Issue 25: what Create Pair shows before fitting, on real files — the sizes of a sample of a folder of MNIST
 * test digits written as PNGs (and of the IDX file itself), and one digit through the built-in classifier as
 * it will be fed: the right class with the right scaling, and a visibly different answer when misfed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { rmSync } from 'node:fs';
import { previewInput, sampleImageSizes, spreadIndices } from '../../../src/inference/fit/preview';
import { labelsOf, MNIST_PAIR, MNIST_TEST_IMAGES, MNIST_TEST_LABELS, pairReady, tempDir, writeIdxPngs } from '../../helpers';

describe('Create Pair preview (fitPreview.ts)', { skip: !pairReady(MNIST_PAIR) && 'the built-in pair is not built' }, () => {
  const dir = tempDir('ood-i25-preview-');
  after(() => rmSync(dir, { recursive: true, force: true }));
  const labels = labelsOf(MNIST_TEST_LABELS);

  test('spreadIndices takes evenly spaced images, all of a small set', () => {
    assert.deepEqual(spreadIndices(3, 24), [0, 1, 2]);
    assert.deepEqual(spreadIndices(100, 4), [0, 25, 50, 75]);
  });

  test('sampleImageSizes reads the sizes of a folder and of an IDX file (headers only)', async () => {
    await writeIdxPngs(MNIST_TEST_IMAGES, Array.from({ length: 30 }, (_, i) => i), join(dir, 'digits'), 'digit');
    const folder = await sampleImageSizes([join(dir, 'digits')], { sampleSize: 10 });
    assert.equal(folder.total, 30);
    assert.equal(folder.sampled, 10);
    assert.deepEqual(folder.sizes, [{ width: 28, height: 28, count: 10 }]);
    assert.match(folder.first!, /digit-00000\.png$/);
    const idx = await sampleImageSizes([MNIST_TEST_IMAGES], { sampleSize: 5 });
    assert.equal(idx.total, 10_000);
    assert.deepEqual(idx.sizes, [{ width: 28, height: 28, count: 5 }]);
  });

  test('previewInput: the digit as the classifier sees it and its answer; misfed scaling shows in the answer and the values', async () => {
    const [image] = await writeIdxPngs(MNIST_TEST_IMAGES, [0], join(dir, 'one'), 'digit');
    const base = { classifier: join(MNIST_PAIR, 'classifier.onnx'), image, output: 'logits', outputKind: 'logits' as const, labels: Array.from({ length: 10 }, (_, i) => String(i)) };
    const right = await previewInput({ ...base, scaling: { range: [0, 1] } });
    assert.equal(right.label, String(labels[0]));
    assert.ok(right.msp > 0.9, `MSP ${right.msp}`);
    assert.deepEqual([right.modelInput.width, right.modelInput.height, right.modelInput.channels], [32, 32, 1]);
    assert.deepEqual(right.source, { width: 28, height: 28 });
    assert.ok(right.tensorRange[0] >= 0 && right.tensorRange[1] <= 1 && right.tensorRange[1] > 0.9, `values ${right.tensorRange}`);
    assert.ok(Math.abs(right.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    // Fed 0..255 instead of [0, 1]: the values say so, and the answer is no longer the confident right one.
    const raw = await previewInput({ ...base, scaling: { range: [0, 255] } });
    assert.ok(raw.tensorRange[1] > 200, `values ${raw.tensorRange}`);
    assert.ok(raw.label !== right.label || raw.msp !== right.msp);
  });
});
