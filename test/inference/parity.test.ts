import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { type ImageResult, OodEngine, type ScoreInput } from '../../src/inference/engine';
import { idxImages, readIdxFile } from '../../src/inference/idx';
import { FASHION_TEST_IMAGES, MNIST_PAIR, MNIST_TEST_IMAGES, pairReady } from '../helpers';

test('the MNIST pair as ONNX and as TensorFlow.js layers gives the same scores', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, async () => {
  const inputs: ScoreInput[] = [];
  for (const [path, n] of [[MNIST_TEST_IMAGES, 150], [FASHION_TEST_IMAGES, 100]] as const) {
    const images = idxImages(readIdxFile(path));
    for (let i = 0; i < n; i++) inputs.push({ path: `${path}#${i}`, source: { width: 28, height: 28, channels: 1, data: images.image(i) } });
  }
  // Rule `all` for both: the ONNX manifest also lists the feature detectors (KNN), which the TF.js variant has
  // not fitted; the parity under test is of the models and the three tests both manifests share.
  const collect = async (pair: string) => {
    const engine = await OodEngine.create({ pair, provider: 'cpu', batchSize: 50, rule: 'all' });
    const results: ImageResult[] = [];
    await engine.scoreAll(inputs, (r) => void results.push(r), { withDetails: true });
    const backend = engine.info.backend;
    await engine.dispose();
    return { results, backend };
  };
  const onnx = await collect(MNIST_PAIR);
  const tfjs = await collect(join(MNIST_PAIR, 'ood-pair.tfjs.json'));
  assert.match(onnx.backend, /onnxruntime/);
  assert.match(tfjs.backend, /tensorflow\.js/);
  let maxSoftmax = 0;
  let maxElboRel = 0;
  onnx.results.forEach((a, i) => {
    const b = tfjs.results[i];
    assert.equal(a.error, null);
    assert.equal(b.error, null);
    assert.equal(a.prediction, b.prediction);
    a.details!.probabilities.forEach((p, k) => (maxSoftmax = Math.max(maxSoftmax, Math.abs(p - b.details!.probabilities[k]))));
    maxElboRel = Math.max(maxElboRel, Math.abs(a.elbo! - b.elbo!) / Math.abs(a.elbo!));
    assert.equal(a.verdict, b.verdict);
  });
  console.log(`ONNX vs TF.js on ${inputs.length} images: max |Δ softmax| ${maxSoftmax.toExponential(2)}, max relative Δ ELBO ${maxElboRel.toExponential(2)}`);
  assert.ok(maxSoftmax <= 1e-4, `softmax differs by ${maxSoftmax}`);
  assert.ok(maxElboRel <= 1e-4, `ELBO differs by ${maxElboRel} (relative)`);
});
