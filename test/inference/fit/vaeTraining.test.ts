/** The VAE `fit` trains when a pair has none (src/inference/fit/vaeTraining.ts): real training on MNIST images. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { idxImages, readIdxFile } from '../../../src/inference/io/idx';
import { loadModel } from '../../../src/inference/pair/pair';
import { defaultVaeEpochs, trainVae, VaeTrainingCancelled, vaeForwardTfjs, vaeImageSize, vaeOnnxModels } from '../../../src/inference/fit/vaeTraining';
import { MNIST_TEST_IMAGES, tempDir } from '../../helpers';

/** MNIST test images [from, from + count) as pixels in [0, 1]. */
function mnistPixels(from: number, count: number): Float32Array {
  const idx = idxImages(readIdxFile(MNIST_TEST_IMAGES), MNIST_TEST_IMAGES);
  const data = new Float32Array(count * 784);
  for (let i = 0; i < count; i++) idx.image(from + i).forEach((v, q) => (data[i * 784 + q] = v / 255));
  return data;
}

test('the VAE image: the classifier input scaled to at most 64 px on its long side, aspect kept', () => {
  assert.deepEqual(vaeImageSize(28, 28), { width: 28, height: 28 });
  assert.deepEqual(vaeImageSize(192, 48), { width: 64, height: 16 });
  assert.deepEqual(vaeImageSize(224, 224), { width: 64, height: 64 });
  assert.deepEqual(vaeImageSize(1000, 10), { width: 64, height: 1 });
  // Epochs from the data size, not from a clock: the same for the same data on any machine.
  assert.equal(defaultVaeEpochs(9000, 784), 10);
  assert.equal(defaultVaeEpochs(100, 784), 40);
  assert.equal(defaultVaeEpochs(1_000_000, 784), 2);
});

describe('trainVae', () => {
  const data = mnistPixels(0, 900);
  let first: Awaited<ReturnType<typeof trainVae>>;
  before(async () => {
    first = await trainVae({ data, count: 900, pixels: 784, seed: 5, epochs: 8 });
  });

  test('learns: the loss falls every epoch and the held-out ELBO beats a model that knows only each pixel\'s mean', async () => {
    const r = first.record;
    assert.equal(r.epochs, 8);
    assert.equal(r.trainImages, 810);
    assert.equal(r.heldOutImages, 90);
    assert.equal(r.lossCurve.length, 8);
    for (let i = 1; i < 8; i++) assert.ok(r.lossCurve[i] < r.lossCurve[i - 1], JSON.stringify(r.lossCurve));
    // The baseline: each pixel Bernoulli with its training mean, no latent (about −206 nats on these digits).
    const mean = new Float64Array(784);
    for (let i = 0; i < 810; i++) for (let q = 0; q < 784; q++) mean[q] += data[i * 784 + q] / 810;
    let baseline = 0;
    for (let i = 810; i < 900; i++) {
      for (let q = 0; q < 784; q++) {
        const p = Math.min(0.99, Math.max(0.01, mean[q]));
        baseline += (data[i * 784 + q] * Math.log(p) + (1 - data[i * 784 + q]) * Math.log(1 - p)) / 90;
      }
    }
    assert.ok(r.heldOutElbo > baseline + 25, `held-out ELBO ${r.heldOutElbo}, baseline ${baseline}`);
    assert.ok(Math.abs(-r.heldOutElbo - r.lossCurve[7]) < 15, `${r.heldOutElbo} vs ${r.lossCurve[7]}`);
    assert.ok(r.imagesPerSecond > 0 && r.seconds > 0);
    assert.match(r.engine, /tensorflow\.js/);
  });

  test('the ONNX graphs give the TF.js model\'s outputs (onnxruntime, single model, encoder and decoder)', async () => {
    const dir = tempDir('vae-onnx-');
    const models = vaeOnnxModels(first.weights, { channels: 1, height: 28, width: 28 });
    for (const [name, bytes] of Object.entries(models)) writeFileSync(join(dir, `${name}.onnx`), bytes);
    const probe = mnistPixels(9000, 16);
    const expected = await vaeForwardTfjs(first.weights, probe, 16);
    const close = (a: Float32Array, b: Float32Array, what: string) => {
      assert.equal(a.length, b.length, what);
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
      assert.ok(worst < 1e-4, `${what}: largest relative difference ${worst}`);
    };
    const vae = await loadModel(join(dir, 'vae.onnx'), 'onnx', { provider: 'cpu' });
    const encoder = await loadModel(join(dir, 'encoder.onnx'), 'onnx', { provider: 'cpu' });
    const decoder = await loadModel(join(dir, 'decoder.onnx'), 'onnx', { provider: 'cpu' });
    try {
      const out = await vae.run({ image: { data: probe, dims: [16, 1, 28, 28] } });
      assert.deepEqual(out.reconstruction_logits.dims, [16, 1, 28, 28]);
      close(out.reconstruction_logits.data, expected.logits, 'reconstruction');
      close(out.mu.data, expected.mu, 'mu');
      close(out.logvar.data, expected.logvar, 'logvar');
      const e = await encoder.run({ image: { data: probe, dims: [16, 1, 28, 28] } });
      close(e.mu.data, expected.mu, 'encoder mu');
      const d = await decoder.run({ z: { data: e.mu.data, dims: [16, 16] } });
      close(d.reconstruction_logits.data, expected.logits, 'decoder');
    } finally {
      await Promise.all([vae.dispose(), encoder.dispose(), decoder.dispose()]);
    }
  });

  test('the same seed gives the same VAE, byte for byte; another seed another', async () => {
    const small = data.subarray(0, 300 * 784);
    const train = (seed: number) => trainVae({ data: small, count: 300, pixels: 784, seed, epochs: 2 });
    const bytes = (w: typeof first.weights) => Buffer.from(vaeOnnxModels(w, { channels: 1, height: 28, width: 28 }).vae);
    const [a, b, c] = [await train(5), await train(5), await train(6)];
    assert.ok(bytes(a.weights).equals(bytes(b.weights)));
    assert.deepEqual(a.record.lossCurve, b.record.lossCurve);
    assert.ok(!bytes(c.weights).equals(bytes(a.weights)));
  });

  test('reports progress with time left, and stops on cancel', async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    await assert.rejects(
      trainVae({
        data,
        count: 900,
        pixels: 784,
        seed: 1,
        epochs: 5,
        signal: controller.signal,
        onProgress: (p) => {
          seen.push(p.images);
          assert.ok(p.secondsLeft >= 0 && Number.isFinite(p.loss) && p.epochs === 5 && p.totalImages === 5 * 810);
          if (p.images >= 256) controller.abort();
        },
      }),
      VaeTrainingCancelled,
    );
    assert.deepEqual(seen, [128, 256]);
  });
});
