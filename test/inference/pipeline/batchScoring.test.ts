/**
 * The classifier's feed buffer of a classifier-only pair is reused between batches (batchScoring.ts
 * `takeFeedBuffer`): batches scored one after another, two at once, and of another size give exactly the results
 * that each batch gets from an engine of its own, so no batch ever reads another's pixels.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type ImageResult, OodEngine } from '../../../src/inference/engine';
import { idxImages, readIdxFile } from '../../../src/inference/io/idx';
import { type ModelImage, toModelImage } from '../../../src/inference/image/preprocess';
import { FASHION_TEST_IMAGES, MNIST_PAIR, MNIST_TEST_IMAGES, pairReady } from '../../helpers';

const CLASSIFIER_ONLY = join(MNIST_PAIR, 'ood-pair.classifier-only.json');

async function images(file: string, from: number, count: number, spec: Parameters<typeof toModelImage>[1]): Promise<ModelImage[]> {
  const idx = idxImages(readIdxFile(file));
  return Promise.all(Array.from({ length: count }, (_, i) => toModelImage({ width: idx.width, height: idx.height, channels: 1, data: Uint8Array.from(idx.image(from + i)) }, spec)));
}

describe('the classifier feed buffer reused between batches', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  test('batches one after another, two at once and of another size score as each does alone', async () => {
    const engine = await OodEngine.create({ pair: CLASSIFIER_ONLY, provider: 'cpu', pipeline: 'overlapped', preprocessWorkers: 0 });
    try {
      assert.equal(engine.pair.inputs.vae, undefined, 'the pair must be classifier-only for its feed to be reused');
      const spec = engine.pair.inputs.classifier;
      const digits = await images(MNIST_TEST_IMAGES, 0, 24, spec);
      const clothes = await images(FASHION_TEST_IMAGES, 0, 24, spec);
      const batches = [digits.slice(0, 8), clothes.slice(0, 8), digits.slice(8, 16), clothes.slice(8, 13), digits.slice(16, 24), clothes.slice(16, 24)];
      const paths = (b: ModelImage[], k: number) => b.map((_, i) => `batch-${k}-${i}`);
      // Each batch alone, in a fresh engine: nothing reused.
      const alone: ImageResult[][] = [];
      for (const [k, b] of batches.entries()) {
        const fresh = await OodEngine.create({ pair: CLASSIFIER_ONLY, provider: 'cpu', pipeline: 'overlapped', preprocessWorkers: 0 });
        try {
          alone.push(await fresh.scoreImages(b, paths(b, k)));
        } finally {
          await fresh.dispose();
        }
      }
      const inTurn: ImageResult[][] = [];
      for (const [k, b] of batches.entries()) inTurn.push(await engine.scoreImages(b, paths(b, k)));
      const atOnce = await Promise.all(batches.map((b, k) => engine.scoreImages(b, paths(b, k))));
      for (const got of [inTurn, atOnce]) assert.deepEqual(got, alone);
      // Digits and clothes differ: a batch that read another's feed would show it.
      assert.notDeepEqual(alone[0].map((r) => r.knnDistance), alone[1].map((r) => r.knnDistance));
    } finally {
      await engine.dispose();
    }
  });
});
