/**
 * Writes MNIST and FashionMNIST resized to the default pairs' 32×32 input by the engine's own
 * preprocessing (sharp), as IDX files that train.py reads: training sees exactly what the engine feeds.
 *   npx tsx training/prepare-data.ts [outDir] [--limit N] [--dataset mnist|fashion]
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { idxImages, readIdxFile } from '../src/inference/io/idx';
import { toModelImage } from '../src/inference/image/preprocess';
import { DATASETS, MNIST_LIKE_INPUT } from './datasets';

async function resizeAll(imagesPath: string, limit: number): Promise<Buffer> {
  const all = idxImages(readIdxFile(imagesPath), imagesPath);
  const images = { ...all, count: Math.min(all.count, limit) };
  const { width, height } = MNIST_LIKE_INPUT;
  const out = Buffer.alloc(images.count * width * height);
  let next = 0;
  const worker = async () => {
    while (next < images.count) {
      const i = next++;
      const img = await toModelImage({ width: images.width, height: images.height, channels: 1, data: images.image(i) }, MNIST_LIKE_INPUT);
      out.set(img.pixels, i * width * height);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x00000803, 0);
  header.writeUInt32BE(images.count, 4);
  header.writeUInt32BE(height, 8);
  header.writeUInt32BE(width, 12);
  return Buffer.concat([header, out]);
}

async function main() {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { limit: { type: 'string' }, dataset: { type: 'string', multiple: true } } });
  const outDir = positionals[0] ?? join(__dirname, '.cache');
  const limit = values.limit ? Number(values.limit) : Infinity;
  mkdirSync(outDir, { recursive: true });
  for (const [name, splits] of Object.entries(DATASETS)) {
    if (values.dataset && !values.dataset.includes(name)) continue;
    for (const [split, files] of Object.entries(splits)) {
      const t0 = Date.now();
      const images = await resizeAll(files.images, limit);
      const target = join(outDir, `${name}-${split}-images-32.idx`);
      writeFileSync(target + '.tmp', images);
      renameSync(target + '.tmp', target);
      const labelBytes = files.labels.endsWith('.gz') ? gunzipSync(readFileSync(files.labels)) : readFileSync(files.labels);
      const count = (images.length - 16) / (MNIST_LIKE_INPUT.width * MNIST_LIKE_INPUT.height);
      const labels = Buffer.from(labelBytes.subarray(0, 8 + count));
      labels.writeUInt32BE(count, 4);
      writeFileSync(join(outDir, `${name}-${split}-labels.idx`), labels);
      console.log(`${name} ${split}: ${(images.length - 16) / 1024} images in ${((Date.now() - t0) / 1000).toFixed(1)} s → ${target}`);
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
