/**
 * `fit --padding`: the built-in FashionMNIST classifier takes 28×28 images padded into 32×32 (LeNet style).
 * Fitted stretched it reads its images worse, and fit's feeding check says to pad; fitted with padding the
 * pair records it, reads them better, and the VAE fit trains sees exactly the padded images scoring feeds it.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { type FitResult, fitPair } from '../../../src/inference/fit/fit';
import { paddingThatFits } from '../../../src/inference/fit/feedCheck';
import { OodEngine } from '../../../src/inference/engine';
import { idxImages, readIdxFile } from '../../../src/inference/io/idx';
import { FASHION_PAIR, FASHION_TEST_IMAGES, tempDir } from '../../helpers';

test('paddingThatFits: the same size everywhere, smaller by one even margin on both axes', () => {
  assert.equal(paddingThatFits([{ width: 28, height: 28 }, { width: 28, height: 28 }], 32, 32), 2);
  assert.equal(paddingThatFits([{ width: 28, height: 28 }, { width: 30, height: 30 }], 32, 32), null, 'mixed sizes');
  assert.equal(paddingThatFits([{ width: 27, height: 27 }], 32, 32), null, 'an odd margin');
  assert.equal(paddingThatFits([{ width: 28, height: 20 }], 32, 32), null, 'other margins on each axis');
  assert.equal(paddingThatFits([{ width: 32, height: 32 }], 32, 32), null, 'already the size');
  assert.equal(paddingThatFits([], 32, 32), null);
});

describe('fit on the FashionMNIST classifier, stretched and padded', () => {
  const classifier = join(FASHION_PAIR, 'classifier.onnx');
  let padded: FitResult;
  let paddedOut: string;
  before(async () => {
    paddedOut = join(tempDir('pad-padded-'), 'pair');
    padded = await fitPair({ classifier, data: [FASHION_TEST_IMAGES], limit: 1200, padding: 2, vaeEpochs: 1, out: paddedOut });
  });

  test('stretched, the feeding check tries the images padded in their own edge colour, and refuses naming --padding 2', async () => {
    const out = join(tempDir('pad-stretched-'), 'pair');
    await assert.rejects(fitPair({ classifier, data: [FASHION_TEST_IMAGES], limit: 1200, trainVae: false, out }), (err: Error) => {
      assert.equal(err.name, 'FitError');
      assert.match(err.message, /reads the check images far better fed another way: --range 0,1 --padding 2 gives (\d+\.\d)% against (\d+\.\d)% with --range 0,1 .*Pass --range 0,1 --padding 2/);
      return true;
    });
    assert.ok(!existsSync(join(out, 'ood-pair.json')), 'nothing was written');
  });

  test('padded, the pair records the padding and the images\' black edge as its colour, and the classifier reads the held-out images as its makers measured', () => {
    assert.equal(padded.manifest.input.padding, 2);
    assert.equal(padded.manifest.input.background, '#000000');
    // The model card: 92.55% on the 10,000 test images, padded.
    assert.ok(padded.heldOutAccuracy! >= 0.88, `held-out accuracy ${padded.heldOutAccuracy}`);
    const check = padded.manifest.fit?.check;
    assert.ok(!check || !check.problems.length, JSON.stringify(check?.problems));
  });

  test('the VAE was trained on the padded images scoring feeds it: its held-out ELBO is what the pair scores for the same images', async () => {
    const vae = padded.manifest.vae!;
    assert.equal(vae.padding, undefined, 'the VAE inherits input.padding');
    const record = vae.training!;
    // The trainer holds out the last images of the fit part, in listing order.
    const split = JSON.parse(readFileSync(join(paddedOut, 'split.json'), 'utf8'));
    const heldOut: number[] = split.parts.fit.slice(-record.heldOutImages).map((p: string) => Number(p.split('#').pop()));
    const images = idxImages(readIdxFile(FASHION_TEST_IMAGES), FASHION_TEST_IMAGES);
    const engine = await OodEngine.create({ pair: paddedOut, provider: 'cpu' });
    try {
      const elbos: number[] = [];
      await engine.scoreAll(heldOut.map((k) => ({ path: `#${k}`, source: { width: 28, height: 28, channels: 1 as const, data: Uint8Array.from(images.image(k)) } })), (r) => {
        elbos.push(r.elbo!);
      });
      const mean = elbos.reduce((a, b) => a + b, 0) / elbos.length;
      assert.ok(Math.abs(mean - record.heldOutElbo) < 0.002 * Math.abs(record.heldOutElbo), `scored ${mean} vs trained ${record.heldOutElbo}`);
    } finally {
      await engine.dispose();
    }
  });
});
