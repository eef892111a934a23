import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import type { InputSpec } from '../../../src/inference/pair/manifest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { crc32, deflateSync, inflateSync } from 'node:zlib';
import { describeSharpError, ImageDecodeError, readChecked, readCheckedSync, toModelImage, toTensorData } from '../../../src/inference/image/preprocess';
import { FIXTURES, tempDir } from '../../helpers';

const grey32: InputSpec = { width: 32, height: 32, channels: 1, layout: 'NCHW', resize: 'fill', resizeKernel: 'linear', background: '#000000' };

/** A 64×48 RGB image: left half white, right half black. */
async function halfWhite(format: 'png' | 'jpeg' | 'webp' | 'gif' | 'tiff' | 'avif'): Promise<Buffer> {
  const w = 64, h = 48;
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w / 2; x++) raw.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).toFormat(format, format === 'jpeg' || format === 'webp' || format === 'avif' ? { quality: 100 } : {}).toBuffer();
}

for (const format of ['png', 'jpeg', 'webp', 'gif', 'tiff', 'avif'] as const) {
  test(`decodes ${format} to grey 32×32 with the white half on the left`, async () => {
    const img = await toModelImage(await halfWhite(format), grey32);
    assert.equal(img.pixels.length, 32 * 32);
    assert.ok(img.pixels[5 * 32 + 2] > 240, `left pixel ${img.pixels[5 * 32 + 2]}`);
    assert.ok(img.pixels[5 * 32 + 29] < 15, `right pixel ${img.pixels[5 * 32 + 29]}`);
  });
}

test('invert, RGB layout and mean/std normalisation', async () => {
  const png = await halfWhite('png');
  const inverted = await toModelImage(png, { ...grey32, invert: true });
  assert.ok(inverted.pixels[2] < 15 && inverted.pixels[29] > 240);
  const rgbSpec: InputSpec = { width: 4, height: 2, channels: 3, layout: 'NHWC', range: [-1, 1], mean: [0, 0, 0.5], std: [1, 1, 2] };
  const rgb = await toModelImage(png, rgbSpec);
  assert.equal(rgb.pixels.length, 4 * 2 * 3);
  const nhwc = toTensorData(rgb, rgbSpec, 'NHWC');
  const nchw = toTensorData(rgb, rgbSpec, 'NCHW');
  // Pixel (0,0) is white: range maps 255 → 1; channel 2 → (1 − 0.5) / 2.
  assert.equal(nhwc[0], 1);
  assert.equal(nhwc[2], 0.25);
  assert.equal(nchw[0], 1);
  assert.equal(nchw[2 * 8], 0.25);
});

test('transparent pixels are flattened onto the manifest background', async () => {
  const rgba = await sharp({ create: { width: 8, height: 8, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
  const onWhite = await toModelImage(rgba, { ...grey32, background: '#ffffff' });
  assert.equal(onWhite.pixels[0], 255);
  const onBlack = await toModelImage(rgba, grey32);
  assert.equal(onBlack.pixels[0], 0);
});

/** The PNG with its first row's filter type set to 9 (PNG defines 0–4), IDAT re-compressed with a valid CRC. */
function withUnknownRowFilter(png: Buffer): Buffer {
  let pos = 8;
  while (png.toString('latin1', pos + 4, pos + 8) !== 'IDAT') pos += 12 + png.readUInt32BE(pos);
  const length = png.readUInt32BE(pos);
  const rows = inflateSync(png.subarray(pos + 8, pos + 8 + length));
  rows[0] = 9;
  const body = Buffer.concat([Buffer.from('IDAT', 'latin1'), deflateSync(rows)]);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length - 4);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([png.subarray(0, pos), head, body, crc, png.subarray(pos + 12 + length)]);
}

test('bad inputs give clear ImageDecodeErrors', async () => {
  const png = await halfWhite('png');
  const cases: [string, Buffer, RegExp][] = [
    ['empty', Buffer.alloc(0), /the file is empty/],
    ['text', Buffer.from('hello, not an image'), /not an image sharp can decode/],
    ['truncated png', png.subarray(0, Math.floor(png.length / 2)), /truncated or corrupt|could not decode/],
    ['png with an unknown row filter type (valid CRCs)', withUnknownRowFilter(png), /image data is (truncated or )?corrupt/],
  ];
  for (const [what, bytes, expected] of cases) {
    await assert.rejects(toModelImage(bytes, grey32), (e: Error) => e instanceof ImageDecodeError && expected.test(e.message), what);
  }
  // libpng's refusal reads the same whether libvips kept its words or another thread's image cleared them first.
  const cut = png.subarray(0, 80);
  const alone = await toModelImage(cut, grey32).then(() => 'decoded', (e: Error) => e.message);
  assert.equal(alone, 'image data is truncated or corrupt: libpng could not read the PNG data');
  assert.equal(describeSharpError(new Error('Unknown error'), cut), alone);
  assert.equal(describeSharpError(new Error('Unknown error'), Buffer.from('hello')), 'image data is corrupt (the decoder said: Unknown error)');
  // A cut JPEG: sharp appends libvips' shared buffer to "corrupt header", with this image's line or without it
  // (CI saw both within one test); one wording either way.
  const cutJpeg = (await sharp(join(FIXTURES, 'cat.png')).jpeg().toBuffer()).subarray(0, 300);
  const jpegAlone = await toModelImage(cutJpeg, grey32).then(() => 'decoded', (e: Error) => e.message);
  assert.equal(jpegAlone, 'image data is truncated or corrupt: could not read the JPEG header (libvips: Input buffer has corrupt header)');
  for (const raced of ['Input buffer has corrupt header: ', 'Input buffer has corrupt header: VipsJpeg: premature end of JPEG image\nVipsPng: other image'])
    assert.equal(describeSharpError(new Error(raced), cutJpeg), jpegAlone);
  // A decompression bomb: more pixels than the cap.
  const big = await sharp({ create: { width: 3000, height: 3000, channels: 3, background: '#000' } }).png().toBuffer();
  await assert.rejects(toModelImage(big, grey32, 1_000_000), (e: Error) => e instanceof ImageDecodeError && /too large/.test(e.message));
});

test('padding: the image is resized into the inner field and framed with the background', async () => {
  const png = await halfWhite('png'); // 64×48: white left half
  const img = await toModelImage(png, { ...grey32, padding: 4, background: '#808080' });
  assert.equal(img.pixels.length, 32 * 32);
  assert.equal(img.pixels[0], 128); // border
  assert.equal(img.pixels[3 * 32 + 16], 128);
  assert.ok(img.pixels[10 * 32 + 5] > 240, 'inner left is white'); // x = 5 lies inside the 24-wide field
  assert.ok(img.pixels[10 * 32 + 26] < 15, 'inner right is black');
  const inverted = await toModelImage(png, { ...grey32, padding: 4, background: '#000000', invert: true });
  assert.equal(inverted.pixels[0], 255); // inversion applies to the border too, as to `contain`'s bars
});

test('file reads (async and the workers\' sync path) name the problem the same way', async () => {
  const dir = tempDir();
  const file = join(dir, 'a.png');
  writeFileSync(file, await halfWhite('png'));
  writeFileSync(join(dir, 'empty.png'), '');
  mkdirSync(join(dir, 'folder.png'));
  execFileSync('mkfifo', [join(dir, 'pipe.png')]);
  assert.deepEqual(Buffer.from(readCheckedSync(file, 1e6)), Buffer.from(await readChecked(file, 1e6)));
  const cases: [string, RegExp][] = [
    ['missing.png', /file not found/],
    ['empty.png', /the file is empty/],
    ['folder.png', /is a folder, not an image/],
  ];
  for (const [name, expected] of cases) {
    assert.throws(() => readCheckedSync(join(dir, name), 1e6), (e: Error) => e instanceof ImageDecodeError && expected.test(e.message), name);
    await assert.rejects(readChecked(join(dir, name), 1e6), (e: Error) => e instanceof ImageDecodeError && expected.test(e.message), name);
  }
  assert.throws(() => readCheckedSync(file, 10), /file is too large \(\d+ bytes; the limit is 10\)/);
  // A named pipe with no writer must not block the thread.
  assert.throws(() => readCheckedSync(join(dir, 'pipe.png'), 1e6), /is not a regular file/);
});
