/**
 * Writes samples/: a few MNIST test digits, FashionMNIST test clothes, the hen made MNIST-like and the cat
 * photo — what `npm run demo` scores. Run once; the output is committed.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mnistLike } from '../src/report/mnistLike';
import { FASHION_TEST_IMAGES, FIXTURES, MNIST_TEST_IMAGES, REPO, writeIdxPngs } from '../test/helpers';

async function main() {
  const dir = join(REPO, 'samples');
  mkdirSync(dir, { recursive: true });
  await writeIdxPngs(MNIST_TEST_IMAGES, [0, 1, 2, 3, 4], dir, 'mnist-test');
  await writeIdxPngs(FASHION_TEST_IMAGES, [0, 1, 2, 3], dir, 'fashion-test');
  writeFileSync(join(dir, 'hen-mnist-like.png'), await mnistLike(join(FIXTURES, 'hen.png')));
  copyFileSync(join(FIXTURES, 'cat.png'), join(dir, 'cat-photo.png'));
}
main();
