import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { complexityBits, complexityCorrectedScore, complexityPng } from '../../../src/inference/detectors/complexity';
import { idxImages, readIdxFile } from '../../../src/inference/io/idx';
import type { ModelImage } from '../../../src/inference/image/preprocess';
import { FASHION_TEST_IMAGES, MNIST_TEST_IMAGES } from '../../helpers';

function padded(data: Uint8Array): ModelImage {
  const pixels = new Uint8Array(32 * 32);
  for (let y = 0; y < 28; y++) pixels.set(data.subarray(y * 28, (y + 1) * 28), (y + 2) * 32 + 2);
  return { width: 32, height: 32, channels: 1, pixels };
}

test('L(x) is the length in bits of the PNG pngjs writes, and that PNG is lossless (grey and RGB, real images)', async () => {
  const images: ModelImage[] = [];
  for (const idx of [MNIST_TEST_IMAGES, FASHION_TEST_IMAGES]) {
    const set = idxImages(readIdxFile(idx));
    for (let i = 0; i < 150; i++) images.push(padded(set.image(i)));
  }
  // RGB: three different digits as the channels.
  for (let i = 0; i < 20; i++) {
    const pixels = new Uint8Array(32 * 32 * 3);
    for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) pixels[p * 3 + c] = images[i + c].pixels[p];
    images.push({ width: 32, height: 32, channels: 3, pixels });
  }
  for (const [k, img] of images.entries()) {
    const png = complexityPng(img);
    assert.equal(complexityBits(img), png.length * 8, `image ${k}`);
    if (k % 25 === 0) {
      const back = await sharp(png).toColourspace(img.channels === 1 ? 'b-w' : 'srgb').raw().toBuffer();
      assert.deepEqual(new Uint8Array(back), img.pixels, `image ${k} does not decode to its own pixels`);
    }
  }
});

test('L(x) ranks complexity: black < one digit < clothing < noise; S(x) = −ELBO/ln 2 − L(x)', () => {
  const black: ModelImage = { width: 32, height: 32, channels: 1, pixels: new Uint8Array(1024) };
  let seed = 7;
  const noise: ModelImage = { width: 32, height: 32, channels: 1, pixels: Uint8Array.from({ length: 1024 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24)) };
  const digit = padded(idxImages(readIdxFile(MNIST_TEST_IMAGES)).image(0));
  const shirt = padded(idxImages(readIdxFile(FASHION_TEST_IMAGES)).image(1)); // a pullover: textured
  const bits = [black, digit, shirt, noise].map((i) => complexityBits(i));
  assert.ok(bits[0] < bits[1] && bits[1] < bits[2] && bits[2] < bits[3], `${bits}`);
  assert.ok(bits[3] > 8 * 1024, 'noise cannot be compressed below 8 bits per pixel');
  assert.equal(complexityCorrectedScore(-100 * Math.LN2, 40), 60);
});

test('WebP lossless L(x): loads, is deterministic, shorter than PNG on digits and clothes, and keeps the ranking', async () => {
  const { loadCompressor } = await import('../../../src/inference/detectors/complexity');
  const digit = padded(idxImages(readIdxFile(MNIST_TEST_IMAGES)).image(0));
  assert.throws(() => complexityBits(digit, 'webp-lossless'), /not loaded/);
  await loadCompressor('webp-lossless');
  await loadCompressor('webp-lossless'); // idempotent
  const fashion = idxImages(readIdxFile(FASHION_TEST_IMAGES));
  const digits = idxImages(readIdxFile(MNIST_TEST_IMAGES));
  let webpTotal = 0;
  let pngTotal = 0;
  for (let i = 0; i < 100; i++) {
    for (const img of [padded(digits.image(i)), padded(fashion.image(i))]) {
      const w = complexityBits(img, 'webp-lossless');
      assert.equal(w, complexityBits(img, 'webp-lossless'));
      webpTotal += w;
      pngTotal += complexityBits(img, 'png');
    }
  }
  assert.ok(webpTotal < 0.9 * pngTotal, `WebP ${webpTotal} bits vs PNG ${pngTotal}`);
  const black: ModelImage = { width: 32, height: 32, channels: 1, pixels: new Uint8Array(1024) };
  assert.ok(complexityBits(black, 'webp-lossless') < complexityBits(digit, 'webp-lossless'));
  // RGB input encodes too.
  const rgb: ModelImage = { width: 32, height: 32, channels: 3, pixels: new Uint8Array(3072).map((_, k) => digit.pixels[Math.floor(k / 3)]) };
  assert.ok(complexityBits(rgb, 'webp-lossless') > 0);
});
