import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { inflateSync } from 'node:zlib';
import sharp from 'sharp';
import { idxImages, readIdxFile } from '../../../src/inference/io/idx';
import { filterRows, unfilterRows } from '../../../src/inference/image/pngRows';
import { FASHION_TEST_IMAGES, FIXTURES, MNIST_TEST_IMAGES } from '../../helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const Packer = require('pngjs/lib/packer');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const FilterSync = require('pngjs/lib/filter-parse-sync');

type Case = { pixels: Uint8Array; width: number; height: number; channels: 1 | 3 };

/** 4,000 real images (MNIST and FashionMNIST test, padded to 32×32), and noise and noisy gradients in odd sizes. */
function cases(): Case[] {
  const out: Case[] = [];
  for (const idx of [MNIST_TEST_IMAGES, FASHION_TEST_IMAGES]) {
    const set = idxImages(readIdxFile(idx));
    for (let i = 0; i < 2000; i++) {
      const pixels = new Uint8Array(32 * 32);
      const digit = set.image(i);
      for (let y = 0; y < 28; y++) pixels.set(digit.subarray(y * 28, (y + 1) * 28), (y + 2) * 32 + 2);
      out.push({ pixels, width: 32, height: 32, channels: 1 });
    }
  }
  let seed = 11;
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  for (const [width, height, channels] of [[32, 32, 1], [32, 32, 3], [7, 5, 1], [13, 9, 3], [1, 1, 1], [64, 3, 3]] as const) {
    for (let k = 0; k < 20; k++) {
      // Noise, and gradients with a little noise, so that every filter type wins some rows.
      const pixels = Uint8Array.from({ length: width * height * channels }, (_, i) => (k % 2 ? random() : ((i * (k + 1)) % 256) ^ (random() & 3)));
      out.push({ pixels, width, height, channels });
    }
  }
  return out;
}

test('filterRows picks and applies the same row filters as pngjs, byte for byte; unfilterRows inverts it', () => {
  const packer = (channels: 1 | 3) => new Packer({ colorType: channels === 1 ? 0 : 2, inputColorType: channels === 1 ? 0 : 2, inputHasAlpha: false, bitDepth: 8, deflateLevel: 9, filterType: -1 });
  const typesSeen = new Set<number>();
  for (const [n, c] of cases().entries()) {
    const ours = filterRows(c.pixels, c.width, c.height, c.channels);
    const theirs: Buffer = packer(c.channels).filterData(Buffer.from(c.pixels), c.width, c.height);
    assert.deepEqual(Buffer.from(ours), theirs, `case ${n} (${c.width}×${c.height}×${c.channels})`);
    assert.deepEqual(unfilterRows(ours, c.width, c.height, c.channels), c.pixels, `case ${n}: unfilter(filter(x)) = x`);
    for (let y = 0; y < c.height; y++) typesSeen.add(ours[y * (c.width * c.channels + 1)]);
  }
  assert.deepEqual([...typesSeen].sort(), [0, 1, 2, 3, 4], 'every filter type was chosen somewhere');
});

test('unfilterRows equals pngjs on the IDAT of PNGs from other encoders (libvips/libpng, grey and RGBA), and refuses unknown filter types', async () => {
  const pngs = [
    await sharp(join(FIXTURES, 'cat.png')).resize(61, 47).png({ compressionLevel: 9, adaptiveFiltering: true }).toBuffer(),
    await sharp(join(FIXTURES, 'hen.png')).resize(40, 33).ensureAlpha().png({ adaptiveFiltering: true }).toBuffer(),
    await sharp(join(FIXTURES, 'rooster.png')).resize(50, 50).toColourspace('b-w').png({ adaptiveFiltering: true }).toBuffer(),
  ];
  for (const png of pngs) {
    const width = png.readUInt32BE(16);
    const height = png.readUInt32BE(20);
    const bpp = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[png[25]];
    const idat: Buffer[] = [];
    for (let pos = 8; pos < png.length; pos += 12 + png.readUInt32BE(pos)) if (png.toString('latin1', pos + 4, pos + 8) === 'IDAT') idat.push(png.subarray(pos + 8, pos + 8 + png.readUInt32BE(pos)));
    const filtered = inflateSync(Buffer.concat(idat));
    const theirs: Buffer = FilterSync.process(filtered, { width, height, interlace: false, bpp, depth: 8 });
    assert.deepEqual(Buffer.from(unfilterRows(filtered, width, height, bpp)!), theirs, `${width}×${height}×${bpp}`);
    const bad = Buffer.from(filtered);
    bad[0] = 7;
    assert.equal(unfilterRows(bad, width, height, bpp), null);
  }
});
