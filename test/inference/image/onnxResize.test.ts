/**
 * Enlarging in onnxruntime (`input.enlargeWith: "onnxruntime"`): the pixels are the half-pixel bilinear formula
 * (torchvision's and PIL's convention) rounded to 8 bits, one image's result does not depend on the others
 * resized with it, every path (the batch fast path, one image at a time, raw pixels) gives the same pixels, images
 * that shrink keep libvips' exact result, RGB images for an NCHW model come channel-planar with the same values and
 * the same tensor, or are enlarged straight into the model's feed with toTensorData's very bits, and a manifest that asks for it with another kernel is refused by name.
 */
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import sharp from 'sharp';
import { decodeSmallPng, prepareBatch } from '../../../src/inference/image/fastpath';
import { enlargeIntoTensor, enlargeToPlanes, enlargeWithOnnxruntime } from '../../../src/inference/image/onnxResize';
import { type ModelImage, type RawImage, storedSize, tensorScaling, toModelImage, toTensorData } from '../../../src/inference/image/preprocess';
import type { InputSpec } from '../../../src/inference/pair/manifest';
import { disposePair, loadPair } from '../../../src/inference/pair/pair';
import { halfPixelBilinear } from '../../halfPixelBilinear';
import { FIXTURES, tempDir } from '../../helpers';
import { thirdPartyModels } from '../../thirdParty';

/** A crop of a fixture photo, `width`×`height`, flattened onto white, in 1 or 3 channels. */
async function photoCrop(file: string, left: number, top: number, width: number, height: number, channels: 1 | 3 = 3): Promise<RawImage> {
  const img = sharp(join(FIXTURES, file)).flatten({ background: '#ffffff' }).extract({ left, top, width: width * 3, height: height * 3 }).resize(width, height, { fit: 'fill' });
  const data = await (channels === 1 ? img.toColourspace('b-w') : img.toColourspace('srgb')).raw().toBuffer();
  return { width, height, channels, data: new Uint8Array(data) };
}

const spec = (extra: Partial<InputSpec> = {}): InputSpec => ({ width: 224, height: 224, channels: 3, layout: 'NCHW', resizeKernel: 'linear', enlargeWith: 'onnxruntime', ...extra });
const png = (img: RawImage) => sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: img.channels } }).png().toBuffer();

describe('enlarging in onnxruntime', () => {
  test('gives the half-pixel bilinear formula rounded to 8 bits (RGB and grey, integer and fractional ratios)', async () => {
    for (const [img, w, h] of [
      [await photoCrop('cat.png', 40, 30, 64, 64), 224, 224],
      [await photoCrop('hen.png', 10, 20, 50, 37), 224, 224],
      [await photoCrop('rooster.png', 0, 0, 28, 28, 1), 32, 40],
    ] as const) {
      const [got] = await enlargeWithOnnxruntime([img], w, h);
      const ref = halfPixelBilinear(img, w, h);
      assert.equal(got.length, ref.rounded.length);
      let worst = 0;
      for (let i = 0; i < got.length; i++) {
        const d = Math.abs(got[i] - ref.rounded[i]);
        // float32 against doubles may round a value within 1e-3 of a half the other way: nothing else may differ.
        if (d) assert.ok(d === 1 && Math.abs(Math.abs(ref.values[i] - Math.trunc(ref.values[i])) - 0.5) < 1e-3, `value ${i} of the ${img.width}×${img.height} image: ${got[i]} against ${ref.values[i]}`);
        worst = Math.max(worst, d);
      }
      assert.ok(worst <= 1);
    }
  });

  test("an image's result does not depend on the images enlarged with it, and its own size is the identity", async () => {
    const a = await photoCrop('cat.png', 40, 30, 64, 64);
    const b = await photoCrop('astronaut.png', 100, 50, 64, 64);
    const c = await photoCrop('hen.png', 5, 5, 64, 64);
    const together = await enlargeWithOnnxruntime([a, b, c], 224, 224);
    for (const [k, img] of [a, b, c].entries()) assert.deepEqual(together[k], (await enlargeWithOnnxruntime([img], 224, 224))[0]);
    assert.deepEqual((await enlargeWithOnnxruntime([a], 64, 64))[0], a.data);
    await assert.rejects(enlargeWithOnnxruntime([a, await photoCrop('cat.png', 0, 0, 50, 64)], 224, 224), /share one size/);
    await assert.rejects(enlargeWithOnnxruntime([a], 48, 224), /shrinking is libvips/);
  });

  test('the batch fast path, one image at a time and raw pixels give the same pixels; shrinking stays libvips exactly', async () => {
    const crops = [await photoCrop('cat.png', 40, 30, 64, 64), await photoCrop('astronaut.png', 100, 50, 64, 64), await photoCrop('hen.png', 10, 20, 50, 37)];
    const grey = await photoCrop('rooster.png', 30, 30, 40, 40, 1); // grey PNG for an RGB model: converted by sharp, then enlarged
    const rgba = await sharp(Buffer.from(crops[0].data), { raw: { width: 64, height: 64, channels: 3 } }).ensureAlpha(0.5).png().toBuffer();
    const jpeg = await sharp(Buffer.from(crops[1].data), { raw: { width: 64, height: 64, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
    const large = await sharp(join(FIXTURES, 'cat.png')).flatten({ background: '#ffffff' }).resize(300, 260, { fit: 'fill' }).png().toBuffer(); // shrinks
    const wide = await sharp(join(FIXTURES, 'hen.png')).flatten({ background: '#ffffff' }).resize(300, 100, { fit: 'fill' }).png().toBuffer(); // shrinks one axis
    const files = [...(await Promise.all(crops.map(png))), await png(grey), rgba, jpeg, large, wide];
    for (const s of [spec(), spec({ width: 240, height: 240, padding: 8, background: '#000000', invert: true }), spec({ channels: 1, width: 96, height: 96 }), spec({ channels: 1, width: 100, height: 100, padding: 2, background: '#000000' })]) {
      const batch = await prepareBatch(files, s, 1 << 26);
      for (const [k, file] of files.entries()) {
        const one = await toModelImage(file, s);
        assert.ok(!(batch[k] instanceof Error), String(batch[k]));
        assert.equal(one.pixels.length, s.width! * s.height! * s.channels!, `image ${k}, spec ${JSON.stringify(s)}: not the model's width × height × channels`);
        assert.deepEqual((batch[k] as ModelImage).pixels, one.pixels, `image ${k}, spec ${JSON.stringify(s)}: the batch path and one image at a time differ`);
      }
      // In-memory pixels (an IDX file's images) take the same path as their PNG.
      const raws = await prepareBatch(crops, s, 1 << 26);
      for (const k of crops.keys()) assert.deepEqual((raws[k] as ModelImage).pixels, (batch[k] as ModelImage).pixels);
      // Images that shrink are libvips' business, exactly as for a pair without the field.
      const { enlargeWith: _, ...libvips } = s;
      for (const k of [files.length - 2, files.length - 1]) assert.deepEqual((batch[k] as ModelImage).pixels, (await toModelImage(files[k], libvips)).pixels);
    }
    // The enlarged 64×64 crop is the reference formula's, not libvips' (which sits ~0.2 pixel off PIL's).
    const s = spec();
    const [viaBatch] = await prepareBatch([files[0]], s, 1 << 26);
    assert.deepEqual((viaBatch as ModelImage).pixels, (await enlargeWithOnnxruntime([decodeSmallPng(files[0])!], 224, 224))[0]);
    const { enlargeWith: _, ...libvips } = s;
    assert.notDeepEqual((viaBatch as ModelImage).pixels, (await toModelImage(files[0], libvips)).pixels);
  });

  test("a file's stored size is read from its PNG or JPEG header as libvips reads it; a rotated JPEG is enlarged upright", async () => {
    const base = sharp(join(FIXTURES, 'hen.png')).flatten({ background: '#ffffff' });
    for (const [w, h] of [[640, 480], [64, 64], [37, 211]]) {
      for (const file of [await base.clone().resize(w, h, { fit: 'fill' }).png().toBuffer(), await base.clone().resize(w, h, { fit: 'fill' }).jpeg({ quality: 80 }).toBuffer(), await base.clone().resize(w, h, { fit: 'fill' }).jpeg({ progressive: true }).withMetadata({ orientation: 6 }).toBuffer()]) {
        const meta = await sharp(file).metadata();
        assert.deepEqual(storedSize(file), { width: meta.width, height: meta.height });
      }
    }
    assert.equal(storedSize(new Uint8Array([0xff, 0xd8, 0xff, 0xd9])), null);
    assert.equal(storedSize(await base.clone().resize(20, 20).webp().toBuffer()), null);
    // 60×30 stored, EXIF orientation 6 (turn 90°): upright 30×60, enlarged to 30×64 → libvips would shrink nothing either.
    const turned = await base.clone().resize(60, 30, { fit: 'fill' }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const s = spec({ width: 32, height: 64 });
    const upright = await sharp(turned).rotate().raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([upright.info.width, upright.info.height], [30, 60]);
    const want = (await enlargeWithOnnxruntime([{ width: 30, height: 60, channels: 3, data: new Uint8Array(upright.data) }], 32, 64))[0];
    assert.deepEqual((await toModelImage(turned, s)).pixels, want);
    assert.deepEqual(((await prepareBatch([turned], s, 1 << 26))[0] as ModelImage).pixels, want);
  });

  test('RGB images for an NCHW model come channel-planar: the same values, the same tensor, pixels on first read', async () => {
    const crops = [await photoCrop('cat.png', 40, 30, 64, 64), await photoCrop('astronaut.png', 100, 50, 64, 64), await photoCrop('hen.png', 10, 20, 50, 37)];
    const interleaved = await Promise.all(crops.map(async (c) => (await enlargeWithOnnxruntime([c], 224, 224))[0]));
    const toPlanes = (hwc: Uint8Array) => Uint8Array.from({ length: hwc.length }, (_, i) => hwc[(i % (224 * 224)) * 3 + Math.floor(i / (224 * 224))]);
    // Two of one size in one call, the third alone.
    const planes = [...(await enlargeToPlanes(crops.slice(0, 2), 224, 224)), ...(await enlargeToPlanes(crops.slice(2), 224, 224))];
    for (const k of crops.keys()) assert.deepEqual(planes[k], toPlanes(interleaved[k]), `crop ${k}: the planes are not the interleaved image's`);
    await assert.rejects(enlargeToPlanes([crops[0]], 48, 224), /shrinking is libvips/);
    const files = await Promise.all(crops.map(png));
    // A model's scaling that is not the identity: every float must still be toTensorData's from the 8-bit image.
    const scaled = spec({ range: [-1, 1], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    for (const s of [scaled, spec({ layout: 'flat' })]) {
      const batch = (await prepareBatch(files, s, 1 << 26)) as ModelImage[];
      const one = await toModelImage(files[0], s);
      for (const [k, img] of [...batch.entries(), [0, one] as const]) {
        assert.ok(img.planes, `image ${k}: the batch and per-image paths give planes for ${s.layout}`);
        const plain: ModelImage = { width: 224, height: 224, channels: 3, pixels: interleaved[k] };
        assert.deepEqual(toTensorData(img, s, s.layout), toTensorData(plain, s, s.layout), `image ${k}: the tensor from planes differs from the one from pixels`);
        assert.deepEqual(img.pixels, interleaved[k]);
        assert.deepEqual({ ...img }.pixels, interleaved[k], 'a spread image keeps its pixels');
      }
    }
    // Where the 8-bit image changes after enlarging, or the model wants it interleaved, the images stay interleaved.
    for (const s of [spec({ layout: 'NHWC' }), spec({ width: 240, height: 240, padding: 8, background: '#000000' }), spec({ invert: true }), spec({ channels: 1, width: 96, height: 96 })]) {
      const [img] = (await prepareBatch([files[0]], s, 1 << 26)) as ModelImage[];
      assert.equal(img.planes, undefined, `spec ${JSON.stringify(s)}: planes`);
      assert.equal((await toModelImage(files[0], s)).planes, undefined);
    }
  });

  test("enlarges straight into an NCHW model's feed: toTensorData's bits for every 8-bit value and scaling", async () => {
    const crops = [await photoCrop('cat.png', 40, 30, 64, 64), await photoCrop('hen.png', 10, 20, 50, 37)];
    const scalings = [spec(), spec({ range: [-1, 1], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }), spec({ range: [0, 255] }), spec({ mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] })];
    const size = 3 * 224 * 224;
    for (const s of scalings) {
      // Each image into its own slot of one batch feed, the other slots untouched.
      const feed = new Float32Array(3 * size).fill(7);
      for (const [k, crop] of crops.entries()) enlargeIntoTensor(crop, 224, 224, tensorScaling(s, 3), feed.subarray((k + 1) * size, (k + 2) * size));
      assert.ok(feed.subarray(0, size).every((v) => v === 7), 'the slot before was written');
      for (const [k, crop] of crops.entries()) {
        const [pixels] = await enlargeWithOnnxruntime([crop], 224, 224);
        const want = toTensorData({ width: 224, height: 224, channels: 3, pixels }, s, 'NCHW');
        assert.deepEqual(feed.subarray((k + 1) * size, (k + 2) * size), want, `${JSON.stringify(s)}, crop ${k}: not toTensorData's values`);
      }
    }
    // A 256×1 ramp enlarged to 256×2: both rows are the ramp, so every 8-bit value in each channel is scaled.
    const ramp: RawImage = { width: 256, height: 1, channels: 3, data: Uint8Array.from({ length: 256 * 3 }, (_, i) => (Math.floor(i / 3) + 85 * (i % 3)) % 256) };
    const rows: ModelImage = { width: 256, height: 2, channels: 3, pixels: new Uint8Array([...ramp.data, ...ramp.data]) };
    for (const s of scalings) {
      const out = new Float32Array(3 * 256 * 2);
      enlargeIntoTensor(ramp, 256, 2, tensorScaling(s, 3), out);
      assert.deepEqual(out, toTensorData(rows, s, 'NCHW'), `${JSON.stringify(s)}: the ramp's values differ`);
    }
    assert.throws(() => enlargeIntoTensor(crops[0], 48, 224, tensorScaling(spec(), 3), new Float32Array(3 * 48 * 224)), /shrinking is libvips/);
    assert.throws(() => enlargeIntoTensor(crops[0], 224, 224, tensorScaling(spec(), 3), new Float32Array(size - 1)), /holds 150527 values/);
    assert.throws(() => enlargeIntoTensor(crops[0], 224, 224, tensorScaling(spec(), 1), new Float32Array(size)), /3 channels needs 3 scales/);
  });

  test("the feed's enlarging is onnxruntime's Resize to the bit: noise of every size from 1×1, grey and RGB, widths that are not a multiple of 4", async () => {
    // Seeded noise: no two neighbours alike, so every weight of every output value shows in its rounding.
    let seed = 7;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8;
    const cases: [number, number, 1 | 3, number, number][] = [[1, 1, 3, 224, 224], [64, 64, 3, 224, 224], [50, 37, 3, 224, 224], [28, 28, 1, 32, 40], [7, 13, 1, 223, 97], [100, 3, 3, 101, 250], [224, 224, 3, 224, 224], [31, 200, 3, 33, 201]];
    for (let k = 0; k < 12; k++) cases.push([1 + (next() % 120), 1 + (next() % 120), k % 2 ? 1 : 3, 121 + (next() % 180), 121 + (next() % 180)]);
    const scalings = [spec(), spec({ range: [-1, 1], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] })];
    for (const [w, h, c, W, H] of cases) {
      const img: RawImage = { width: w, height: h, channels: c, data: Uint8Array.from({ length: w * h * c }, () => next() & 255) };
      const [pixels] = await enlargeWithOnnxruntime([img], W, H);
      for (const s of scalings) {
        const scaling = c === 1 ? { range: s.range, mean: s.mean?.slice(0, 1), std: s.std?.slice(0, 1) } : s;
        const out = new Float32Array(c * W * H);
        enlargeIntoTensor(img, W, H, tensorScaling(scaling, c), out);
        const want = toTensorData({ width: W, height: H, channels: c, pixels }, { ...spec(), ...scaling, width: W, height: H, channels: c }, 'NCHW');
        let differ = 0;
        for (let i = 0; i < out.length; i++) if (!Object.is(out[i], want[i])) differ++;
        assert.equal(differ, 0, `${w}×${h}×${c} → ${W}×${H}, ${JSON.stringify(scaling)}: ${differ} of ${out.length} values differ from onnxruntime's`);
      }
    }
  });

  test('a batch may leave its enlarging to the feed: such images refuse to be read as pixels; NHWC models never wait', async () => {
    const files = [await png(await photoCrop('cat.png', 40, 30, 64, 64)), await png(await photoCrop('hen.png', 0, 0, 250, 250))];
    const [rgb, large] = (await prepareBatch(files, spec(), 1 << 26, { deferEnlarging: true })) as ModelImage[];
    assert.deepEqual([rgb.enlargeFrom?.width, rgb.enlargeFrom?.height, rgb.enlargeFrom?.channels], [64, 64, 3]);
    assert.throws(() => rgb.pixels, /64×64 image waiting to be enlarged into its model's feed was read as 224×224 pixels/);
    assert.throws(() => ({ ...rgb }), /waiting to be enlarged/, 'a copy of the image must not lose the guard');
    // An image that shrinks is libvips' (it has its pixels at once).
    assert.equal(large.enlargeFrom, undefined);
    assert.equal(large.pixels.length, 224 * 224 * 3);
    const [nhwc] = (await prepareBatch(files.slice(0, 1), spec({ layout: 'NHWC' }), 1 << 26, { deferEnlarging: true })) as ModelImage[];
    assert.equal(nhwc.enlargeFrom, undefined);
    assert.equal(nhwc.pixels.length, 224 * 224 * 3);
    // Without the option nothing waits.
    const [now] = (await prepareBatch(files.slice(0, 1), spec(), 1 << 26)) as ModelImage[];
    assert.equal(now.enlargeFrom, undefined);
    assert.ok(now.planes);
  });

  describe('in a manifest', () => {
    let dir: string;
    before(async () => {
      dir = tempDir('enlarge-with-');
      copyFileSync((await thirdPartyModels()).cifar.classifier, join(dir, 'classifier.onnx'));
    });
    const pairWith = (input: Record<string, unknown>) => {
      const m = { name: 'cifar', input: { width: 32, height: 32, channels: 3, layout: 'NHWC', ...input }, classifier: { path: 'classifier.onnx', format: 'onnx', outputKind: 'logits', labels: [...'0123456789'] } };
      writeFileSync(join(dir, 'ood-pair.json'), JSON.stringify(m));
      return loadPair(dir, { provider: 'cpu', calibrationMayBeMissing: true });
    };

    test('is read into the model input; without it a pair enlarges with libvips', async () => {
      for (const [input, want] of [[{ resizeKernel: 'linear', enlargeWith: 'onnxruntime' }, 'onnxruntime'], [{ resizeKernel: 'linear' }, undefined]] as const) {
        const pair = await pairWith(input);
        try {
          assert.equal(pair.inputs.classifier.enlargeWith, want);
        } finally {
          await disposePair(pair);
        }
      }
    });

    test('is refused, naming input.enlargeWith, with a kernel other than linear or a fit other than fill', async () => {
      await assert.rejects(pairWith({ enlargeWith: 'onnxruntime' }), /input\.enlargeWith.*resizeKernel "linear".*lanczos3/s);
      await assert.rejects(pairWith({ enlargeWith: 'onnxruntime', resizeKernel: 'linear', resize: 'contain' }), /input\.enlargeWith.*resize "fill"/s);
      await assert.rejects(pairWith({ enlargeWith: 'pillow', resizeKernel: 'linear' }), /enlargeWith/);
    });
  });
});
