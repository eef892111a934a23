/**
 * Listing in chunks (files.ts `walkImageChunks`, `expandInputChunks`): the same inputs in the same order as
 * one at a time, each chunk within its size and never across a subfolder, IDX archives too.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { expandInputChunks, expandInputs, walkImageChunks, walkImages } from '../../../src/inference/io/files';
import { MNIST_TEST_IMAGES, tempDir } from '../../helpers';

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of source) out.push(item);
  return out;
}

/** 2,500 images at the top (more than two chunks), a nested folder between them by name, a hidden file, a text file. */
function tree(): string {
  const root = tempDir('listing-');
  const touch = (rel: string) => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), '');
  };
  for (let i = 0; i < 2500; i++) touch(`${i < 1200 ? 'a' : 'c'}${String(i).padStart(5, '0')}.png`);
  for (const rel of ['b/x/1.png', 'b/x/2.jpg', 'b/0.png', 'b/notes.txt', '.hidden.png']) touch(rel);
  return root;
}

describe('listing in chunks', () => {
  test('a folder walk: the same files in the same order, chunks of at most 1,024, none across a subfolder', async () => {
    const root = tree();
    const chunks = await collect(walkImageChunks(root, true));
    const one = await collect(walkImages(root, true));
    assert.deepEqual(chunks.flat(), one);
    assert.equal(one.length, 2503);
    // a00000…a01199, then b/ (its own files, then b/x/), then c01200…
    assert.equal(one[1199].path, join(root, 'a01199.png'));
    assert.deepEqual(one.slice(1200, 1203).map((f) => f.path), [join(root, 'b', '0.png'), join(root, 'b', 'x', '1.png'), join(root, 'b', 'x', '2.jpg')]);
    assert.equal(one[1203].path, join(root, 'c01200.png'));
    for (const chunk of chunks) {
      assert.ok(chunk.length >= 1 && chunk.length <= 1024, `a chunk of ${chunk.length}`);
      assert.equal(new Set(chunk.map((f) => dirname(f.path))).size, 1, 'one folder a chunk');
    }
    assert.deepEqual(chunks.map((c) => c.length), [1024, 176, 1, 2, 1024, 276]);
    // Without --recursive the subfolder is skipped and the top level runs on in the same chunks.
    const flat = await collect(walkImageChunks(root, false));
    assert.deepEqual(flat.map((c) => c.length), [1024, 1024, 452]);
  });

  test('arguments: a file, a folder and an IDX archive, in order, as expandInputs gives them', async () => {
    const root = tree();
    const args = [join(root, 'b', '0.png'), join(root, 'b'), MNIST_TEST_IMAGES, join(root, 'missing.png')];
    const chunks = await collect(expandInputChunks(args, { recursive: true }));
    const one = await collect(expandInputs(args, { recursive: true }));
    assert.deepEqual(chunks.flat(), one);
    assert.equal(one.length, 1 + 3 + 10000 + 1);
    assert.deepEqual(one.slice(0, 4).map((i) => i.key), ['0.png', '0.png', 'x/1.png', 'x/2.jpg']);
    const idx = chunks.filter((c) => c[0].path.startsWith(MNIST_TEST_IMAGES));
    assert.deepEqual(idx.map((c) => c.length), [1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024, 1024, 784]);
    assert.equal(idx[9][783].path, `${MNIST_TEST_IMAGES}#9999`);
    assert.deepEqual(one[one.length - 1], { path: join(root, 'missing.png'), arg: 3, key: 'missing.png' });
  });
});
