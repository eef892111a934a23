/**
 * Writes MNIST and FashionMNIST resized to the default pairs' 32×32 input by the engine's own
 * preprocessing (sharp), as IDX files that train.py reads: training sees exactly what the engine feeds.
 *   npx tsx training/prepare-data.ts [outDir]
 */
import { mkdirSync, renameSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { idxImages, readIdxFile } from '../src/inference/idx';
import { toModelImage } from '../src/inference/preprocess';
import { DATASETS, MNIST_LIKE_INPUT } from './datasets';

async function resizeAll(imagesPath: string): Promise<Buffer> {
  const images = idxImages(readIdxFile(imagesPath), imagesPath);
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
  const outDir = process.argv[2] ?? join(__dirname, '.cache');
  mkdirSync(outDir, { recursive: true });
  for (const [name, splits] of Object.entries(DATASETS)) {
    for (const [split, files] of Object.entries(splits)) {
      const t0 = Date.now();
      const images = await resizeAll(files.images);
      const target = join(outDir, `${name}-${split}-images-32.idx`);
      writeFileSync(target + '.tmp', images);
      renameSync(target + '.tmp', target);
      const labels = files.labels.endsWith('.gz') ? gunzipSync(readFileSync(files.labels)) : readFileSync(files.labels);
      writeFileSync(join(outDir, `${name}-${split}-labels.idx`), labels);
      console.log(`${name} ${split}: ${(images.length - 16) / 1024} images in ${((Date.now() - t0) / 1000).toFixed(1)} s → ${target}`);
    }
  }
  void copyFileSync;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
