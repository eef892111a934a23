import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { OodEngine } from '../../../src/inference/engine';
import { PreprocessPool } from '../../../src/inference/pipeline/preprocessPool';
import { MNIST_PAIR, pairReady, REPO } from '../../helpers';

test('a preprocessing worker that dies makes prepare() reject at once, and the engine falls back in-process when none is left', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, async () => {
  const pool = new PreprocessPool(1);
  // Kill the worker from the outside, as a crash would.
  await (pool as unknown as { workers: { terminate(): Promise<number> }[] }).workers[0].terminate();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(pool.alive, false);
  await assert.rejects(pool.prepare([{ path: 'x.png' }], { classifier: { width: 32, height: 32, channels: 1, layout: 'NCHW' } }, { maxInputPixels: 1e6, maxFileBytes: 1e6, complexity: false }), /no preprocessing worker/);

  // The preprocessing pool serves the overlapped pipeline (the sharded one has shards instead).
  const engine = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', pipeline: 'overlapped' });
  const workers = (engine as unknown as { scheduler: { pool: { workers: { terminate(): Promise<number> }[] } } }).scheduler.pool.workers;
  await Promise.all([...workers].map((w) => w.terminate()));
  await new Promise((r) => setTimeout(r, 50));
  const results: string[] = [];
  await engine.scoreAll([{ path: join(REPO, 'samples', 'mnist-test-00000.png') }, { path: join(REPO, 'samples', 'missing.png') }], (r) => void results.push(r.verdict));
  await engine.dispose();
  assert.deepEqual(results, ['in-distribution', 'error']);
});

test('a batch split across two workers comes back whole and in order, errors in place', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, async () => {
  const pool = new PreprocessPool(2);
  const samples = join(REPO, 'samples');
  const names = ['mnist-test-00000.png', 'missing.png', 'mnist-test-00001.png', 'fashion-test-00000.png', 'cat-photo.png', 'mnist-test-00002.png', 'mnist-test-00003.png', 'mnist-test-00004.png'];
  const items = [...names, ...names].map((n) => ({ path: join(samples, n) }));
  const spec = { width: 32, height: 32, channels: 1 as const, layout: 'NCHW' as const, resize: 'fill' as const, resizeKernel: 'linear' as const, background: '#000000', padding: 2 };
  const out = await pool.prepare(items, { classifier: spec }, { maxInputPixels: 1e8, maxFileBytes: 1e8, complexity: 'png' });
  await pool.dispose();
  assert.equal(out.length, items.length);
  const { prepareBatch } = await import('../../../src/inference/image/fastpath');
  const { readChecked } = await import('../../../src/inference/image/preprocess');
  const inProcess = await prepareBatch(await Promise.all(items.map((i) => readChecked(i.path, 1e8).catch((e: Error) => e))), spec, 1e8);
  out.forEach((img, i) => {
    if (names[i % names.length] === 'missing.png') return assert.match((img as Error).message, /file not found/);
    assert.ok(!(img instanceof Error), (img as Error).message);
    assert.deepEqual(Buffer.from(img.pixels), Buffer.from((inProcess[i] as { pixels: Uint8Array }).pixels), `item ${i} (${names[i % names.length]})`);
    assert.ok((img.complexityBits ?? 0) > 0);
  });
});
