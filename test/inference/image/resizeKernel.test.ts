/**
 * The resize kernel is part of a pair's preprocessing: a pair whose manifest names none keeps lanczos3 (its
 * calibration was made with it), a pair that names one gets exactly that kernel, and `toTensorData`'s one-pass
 * conversion gives exactly the per-value formula in every layout.
 */
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import sharp from 'sharp';
import { disposePair, loadPair } from '../../../src/inference/pair/pair';
import type { InputSpec, Layout } from '../../../src/inference/pair/manifest';
import { resizeOptions, toModelImage, toTensorData } from '../../../src/inference/image/preprocess';
import { tempDir } from '../../helpers';
import { thirdPartyModels } from '../../thirdParty';

/** A 12×9 RGB image with detail in every pixel (so kernels differ when it is upscaled). */
async function detailedPng(): Promise<Buffer> {
  const w = 12, h = 9;
  const raw = Buffer.alloc(w * h * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 73 + (i % 7) * 31) % 256;
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

describe("a pair's resize kernel", () => {
  let dir: string;
  before(async () => {
    const models = await thirdPartyModels();
    dir = tempDir('resize-kernel-');
    copyFileSync(models.cifar.classifier, join(dir, 'classifier.onnx'));
  });
  const pairWith = (kernel?: string) => {
    const input: Record<string, unknown> = { width: 32, height: 32, channels: 3, layout: 'NHWC' };
    if (kernel) input.resizeKernel = kernel;
    const m = { name: 'cifar', input, classifier: { path: 'classifier.onnx', format: 'onnx', outputKind: 'logits', labels: [...'0123456789'] } };
    writeFileSync(join(dir, 'ood-pair.json'), JSON.stringify(m));
    return loadPair(dir, { provider: 'cpu', calibrationMayBeMissing: true });
  };
  /** sharp's own resize of the image to 32×32 with one kernel. */
  const sharpResize = async (png: Buffer, kernel: 'lanczos3' | 'linear') => new Uint8Array(await sharp(png).flatten({ background: '#ffffff' }).toColourspace('srgb').resize({ width: 32, height: 32, fit: 'fill', kernel }).raw().toBuffer());

  test('a manifest without one (pairs made before fit chose bilinear) keeps lanczos3; one that names linear gets linear', async () => {
    const png = await detailedPng();
    const [lanczos, linear] = [await sharpResize(png, 'lanczos3'), await sharpResize(png, 'linear')];
    assert.notDeepEqual(lanczos, linear, 'the test image must tell the kernels apart');
    const old = await pairWith();
    try {
      assert.equal(old.inputs.classifier.resizeKernel, undefined);
      assert.equal(resizeOptions(old.inputs.classifier).kernel, 'lanczos3');
      assert.deepEqual((await toModelImage(png, old.inputs.classifier)).pixels, lanczos);
    } finally {
      await disposePair(old);
    }
    const bilinear = await pairWith('linear');
    try {
      assert.equal(bilinear.inputs.classifier.resizeKernel, 'linear');
      assert.deepEqual((await toModelImage(png, bilinear.inputs.classifier)).pixels, linear);
    } finally {
      await disposePair(bilinear);
    }
  });

  test('an unknown kernel is refused naming the field', async () => {
    await assert.rejects(pairWith('bilinear'), /resizeKernel/);
  });
});

test('toTensorData: exactly ((pixel/255)·(hi − lo) + lo − mean) / std per value, in every layout, at an offset, nothing else written', () => {
  for (const channels of [1, 3] as const) {
    for (const layout of ['NCHW', 'NHWC', 'flat'] as Layout[]) {
      const width = 5, height = 3, size = width * height * channels;
      const pixels = Uint8Array.from({ length: size }, (_, i) => (i * 97 + 13) % 256);
      const spec: InputSpec = { width, height, channels, layout, range: [-1, 2], mean: [0.485, 0.456, 0.406].slice(0, channels), std: [0.229, 0.224, 0.225].slice(0, channels) };
      const out = new Float32Array(size + 7).fill(-99);
      toTensorData({ width, height, channels, pixels }, spec, layout, out, 3);
      const want = new Float32Array(size);
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          for (let c = 0; c < channels; c++) {
            const v = pixels[(y * width + x) * channels + c];
            const std = spec.std![c];
            const value = v * (3 / 255 / std) + (-1 - spec.mean![c]) / std;
            want[layout === 'NHWC' ? (y * width + x) * channels + c : c * width * height + y * width + x] = value;
          }
        }
      }
      assert.deepEqual(out.subarray(3, 3 + size), want, `${channels} channel(s), ${layout}`);
      assert.deepEqual([...out.subarray(0, 3), ...out.subarray(3 + size)], new Array(7).fill(-99), `${channels} channel(s), ${layout}: outside the image`);
    }
  }
});
