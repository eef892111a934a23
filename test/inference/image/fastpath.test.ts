import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { atlasPadding, crc32Js, decodeSmallPng, prepareBatch } from '../../../src/inference/image/fastpath';
import { idxImages, readIdxFile } from '../../../src/inference/io/idx';
import type { InputSpec } from '../../../src/inference/pair/manifest';
import { DEFAULT_MAX_INPUT_PIXELS, ImageDecodeError, type ModelImage, toModelImage } from '../../../src/inference/image/preprocess';
import { FASHION_TEST_IMAGES, FIXTURES, MNIST_TEST_IMAGES, REPO, tempDir, writeIdxPngs } from '../../helpers';

const mnistSpec: InputSpec = { width: 32, height: 32, channels: 1, layout: 'NCHW', resize: 'fill', resizeKernel: 'linear', background: '#000000' };

function assertSame(fast: (ModelImage | Error)[], slow: ModelImage[], what: string) {
  fast.forEach((f, i) => {
    assert.ok(!(f instanceof Error), `${what} #${i}: ${(f as Error).message}`);
    assert.deepEqual(Buffer.from((f as ModelImage).pixels), Buffer.from(slow[i].pixels), `${what} #${i} differs from sharp alone`);
  });
}

test('atlas padding: whole output rows and enough room for every kernel', () => {
  assert.equal(atlasPadding(28, 32), 7); // 7 rows → 8 output rows
  const p = atlasPadding(48, 32)!;
  assert.ok(p >= 8 && (p * 32) % 48 === 0);
  assert.equal(atlasPadding(100, 32), null); // integer pre-shrink: per image
});

test('fast path equals the per-image sharp pipeline bit for bit on 600 real MNIST / FashionMNIST images', async () => {
  for (const [idx, name] of [[MNIST_TEST_IMAGES, 'MNIST'], [FASHION_TEST_IMAGES, 'FashionMNIST']] as const) {
    const images = idxImages(readIdxFile(idx));
    const raws = Array.from({ length: 300 }, (_, i) => ({ width: 28, height: 28, channels: 1 as const, data: images.image(i) }));
    for (const spec of [mnistSpec, { ...mnistSpec, resizeKernel: 'lanczos3' as const, invert: true }, { ...mnistSpec, width: 24, height: 20, resizeKernel: 'cubic' as const }]) {
      const fast = await prepareBatch(raws, spec, DEFAULT_MAX_INPUT_PIXELS);
      const slow = await Promise.all(raws.map((r) => toModelImage(r, spec)));
      assertSame(fast, slow, `${name} ${spec.resizeKernel} ${spec.width}×${spec.height}`);
    }
  }
});

test('photo crops upsized to 224×224 RGB (the atlas) equal the per-image sharp pipeline bit for bit, every kernel', async () => {
  const photo = await sharp(join(FIXTURES, 'cat.png')).flatten({ background: '#ffffff' }).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  const crops = await Promise.all(
    Array.from({ length: 12 }, async (_, i) => {
      const left = (i * 37) % (photo.info.width - 64), top = (i * 23) % (photo.info.height - 64);
      return new Uint8Array(await sharp(photo.data, { raw: photo.info }).extract({ left, top, width: 64, height: 64 }).png().toBuffer());
    }),
  );
  for (const kernel of ['linear', 'lanczos3', 'nearest', 'cubic'] as const) {
    const spec: InputSpec = { width: 224, height: 224, channels: 3, layout: 'NCHW', resizeKernel: kernel };
    const fast = await prepareBatch(crops, spec, DEFAULT_MAX_INPUT_PIXELS);
    const slow = await Promise.all(crops.map((b) => toModelImage(b, spec)));
    assertSame(fast, slow, `64×64 → 224×224 ${kernel}`);
  }
});

test('small PNGs (grey, grey+alpha, RGB, RGBA) decode in-process to the same pixels sharp gives', async () => {
  const dir = tempDir();
  const pngs = (await writeIdxPngs(MNIST_TEST_IMAGES, [0, 1, 2, 3, 4, 5, 6, 7], dir, 'm')).map((p) => new Uint8Array(readFileSync(p)));
  assert.equal(decodeSmallPng(pngs[0])!.channels, 1);
  const rgb = await sharp(join(FIXTURES, 'cat.png')).resize(40, 30).png().toBuffer();
  const rgba = await sharp(join(FIXTURES, 'hen.png')).resize(30, 42).png().toBuffer();
  assert.equal(decodeSmallPng(rgb)!.channels, 3);
  assert.equal(decodeSmallPng(rgba)!.channels, 4);
  const greyAlpha = await sharp(join(FIXTURES, 'rooster.png')).resize(30, 42).toColourspace('b-w').png().toBuffer();
  assert.equal(decodeSmallPng(greyAlpha)!.channels, 2);
  const all = [...pngs, new Uint8Array(rgb), new Uint8Array(rgba), new Uint8Array(greyAlpha)];
  for (const spec of [mnistSpec, { ...mnistSpec, channels: 3 as const, layout: 'NHWC' as const, background: '#ffffff' }]) {
    const fast = await prepareBatch(all, spec, DEFAULT_MAX_INPUT_PIXELS);
    const slow = await Promise.all(all.map((b) => toModelImage(b, spec)));
    assertSame(fast, slow, `PNG ${spec.channels}ch`);
  }
});

test('PNG decoding: IDAT split over several chunks decodes; interlaced and corrupt-CRC PNGs go to sharp', async () => {
  const { data, info } = await sharp(join(FIXTURES, 'cat.png')).resize(48, 40).raw().toBuffer({ resolveWithObject: true });
  // Re-chunk a PNG's compressed pixels into IDAT chunks of 100 bytes, as some encoders write them.
  const png = await sharp(data, { raw: info }).png().toBuffer();
  const chunk = (type: string, body: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])));
    return Buffer.concat([head, body, crc]);
  };
  const parts: Buffer[] = [png.subarray(0, 8)];
  const idat: Buffer[] = [];
  for (let pos = 8; pos < png.length; pos += 12 + png.readUInt32BE(pos)) {
    const type = png.toString('latin1', pos + 4, pos + 8);
    const body = png.subarray(pos + 8, pos + 8 + png.readUInt32BE(pos));
    if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') {
      const all = Buffer.concat(idat);
      for (let k = 0; k < all.length; k += 100) parts.push(chunk('IDAT', all.subarray(k, k + 100)));
      parts.push(chunk('IEND', body));
    } else parts.push(png.subarray(pos, pos + 12 + body.length));
  }
  const split = Buffer.concat(parts);
  assert.ok(split.length > png.length + 24, 'several IDAT chunks');
  const decoded = decodeSmallPng(split)!;
  const bySharp = await sharp(split).raw().toBuffer();
  assert.equal(decoded.channels, 3);
  assert.deepEqual(Buffer.from(decoded.data), bySharp);

  const interlaced = await sharp(join(FIXTURES, 'cat.png')).resize(40, 30).png({ progressive: true }).toBuffer();
  assert.equal(interlaced[28], 1);
  assert.equal(decodeSmallPng(interlaced), null);

  const corrupt = Buffer.from(split);
  corrupt[60] ^= 0xff; // inside the first IDAT: its CRC no longer matches
  assert.equal(decodeSmallPng(corrupt), null);
  const [viaSharp] = await prepareBatch([new Uint8Array(corrupt)], mnistSpec, DEFAULT_MAX_INPUT_PIXELS);
  assert.ok(viaSharp instanceof ImageDecodeError, 'sharp (libpng) refuses the corrupt chunk too');
});

test('the CRC-32 fallback for Node before 20.15 (older VS Code builds) equals Node\'s native one', () => {
  let seed = 3;
  for (const length of [0, 1, 13, 1000, 65536]) {
    const data = Uint8Array.from({ length }, () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
    assert.equal(crc32Js(data), crc32(data), `${length} bytes`);
  }
});

test('JPEGs, large images and broken inputs take the sharp path; errors stay in place', async () => {
  const jpeg = await sharp(join(FIXTURES, 'astronaut.png')).jpeg().toBuffer();
  assert.equal(decodeSmallPng(jpeg), null);
  const broken = new Uint8Array(readFileSync(join(FIXTURES, 'cat.png')).subarray(0, 500));
  const out = await prepareBatch([new Uint8Array(jpeg), broken, new ImageDecodeError('file not found')], mnistSpec, DEFAULT_MAX_INPUT_PIXELS);
  assert.equal((out[0] as ModelImage).pixels.length, 1024);
  assert.ok(out[1] instanceof ImageDecodeError);
  assert.match((out[2] as Error).message, /file not found/);
});

test('padding: the copy path (28×28 into a 32×32 field) and the atlas path equal sharp resize + extend, grey and RGB', async () => {
  const padded: InputSpec = { ...mnistSpec, padding: 2 };
  const images = idxImages(readIdxFile(MNIST_TEST_IMAGES));
  const digits = Array.from({ length: 200 }, (_, i) => ({ width: 28, height: 28, channels: 1 as const, data: images.image(i) }));
  const rgb = await Promise.all([0, 1, 2].map(async (i) => {
    const { data, info } = await sharp(join(FIXTURES, ['cat.png', 'astronaut.png', 'rooster.png'][i])).flatten({ background: '#ffffff' }).resize(28, 28, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, channels: info.channels as 3, data: new Uint8Array(data) };
  }));
  const cases: [string, { width: number; height: number; channels: 1 | 3; data: Uint8Array }[], InputSpec][] = [
    ['grey 28×28 copy', digits, padded],
    ['grey 28×28 copy, inverted, white padding', digits, { ...padded, invert: true, background: '#ffffff' }],
    ['grey 28×28 → 24×24 atlas + padding 4', digits, { ...padded, padding: 4, resizeKernel: 'cubic' }],
    ['RGB 28×28 copy', rgb, { ...padded, channels: 3, layout: 'NHWC', background: '#ffffff' }],
    ['grey, grey padding colour (sharp path)', digits.slice(0, 20), { ...padded, background: '#808080' }],
  ];
  for (const [what, raws, spec] of cases) {
    const before = raws.map((r) => Buffer.from(r.data));
    const fast = await prepareBatch(raws, spec, DEFAULT_MAX_INPUT_PIXELS);
    const slow = await Promise.all(raws.map((r) => toModelImage(r, spec)));
    assertSame(fast, slow, what);
    assert.equal((fast[0] as ModelImage).pixels.length, spec.width * spec.height * spec.channels);
    raws.forEach((r, i) => assert.deepEqual(Buffer.from(r.data), before[i], `${what}: the input pixels were modified`));
  }
  // The border really is the background and the digit sits unscaled inside it.
  const [first] = (await prepareBatch([digits[0]], padded, DEFAULT_MAX_INPUT_PIXELS)) as ModelImage[];
  assert.equal(first.pixels[0], 0);
  assert.deepEqual(Array.from(first.pixels.subarray(2 * 32 + 2, 2 * 32 + 30)), Array.from(digits[0].data.subarray(0, 28)));
});

test('grey pixels stored as RGB (the samples\' 28×28 PNGs) into a grey model: the copy path equals sharp, every grey value and the real samples; colour RGB still goes through sharp', async () => {
  const padded: InputSpec = { ...mnistSpec, padding: 2 };
  // Every grey value 0–255 (and the rest of the 28×28 as a ramp), stored as RGB.
  const ramp = new Uint8Array(28 * 28 * 3);
  for (let i = 0; i < 28 * 28; i++) ramp.fill(i % 256, 3 * i, 3 * i + 3);
  const samples = ['mnist-test-00000.png', 'mnist-test-00001.png', 'fashion-test-00000.png', 'hen-mnist-like.png'].map((f) => new Uint8Array(readFileSync(join(REPO, 'samples', f))));
  for (const png of samples) assert.equal(decodeSmallPng(png)?.channels, 3, 'the samples are stored as RGB');
  const tinted = new Uint8Array(ramp);
  tinted[3 * 100] = 7; // one pixel not grey: the whole image must take sharp's conversion
  const rawRgb = (data: Uint8Array) => ({ width: 28, height: 28, channels: 3 as const, data });
  const sources: (Uint8Array | ReturnType<typeof rawRgb>)[] = [rawRgb(ramp), ...samples, rawRgb(tinted)];
  for (const spec of [padded, { ...padded, invert: true, background: '#ffffff' }]) {
    const fast = await prepareBatch(sources, spec, DEFAULT_MAX_INPUT_PIXELS);
    const slow = await Promise.all(sources.map((s) => toModelImage(s, spec)));
    assertSame(fast, slow, `grey stored as RGB, invert ${spec.invert}`);
  }
  assert.deepEqual(Array.from(ramp.subarray(0, 3)), [0, 0, 0], 'the input pixels are not modified');
});
