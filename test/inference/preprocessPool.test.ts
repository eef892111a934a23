import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { OodEngine } from '../../src/inference/engine';
import { PreprocessPool } from '../../src/inference/preprocessPool';
import { MNIST_PAIR, pairReady, REPO } from '../helpers';

test('a preprocessing worker that dies makes prepare() reject at once, and the engine falls back in-process', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, async () => {
  const pool = new PreprocessPool(1);
  // Kill the worker from the outside, as a crash would.
  await (pool as unknown as { workers: { terminate(): Promise<number> }[] }).workers[0].terminate();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(pool.alive, false);
  await assert.rejects(pool.prepare([{ path: 'x.png' }], { width: 32, height: 32, channels: 1, layout: 'NCHW' }, { maxInputPixels: 1e6, maxFileBytes: 1e6, complexity: false }), /no preprocessing worker/);

  const engine = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu' });
  const workers = (engine as unknown as { pool: { workers: { terminate(): Promise<number> }[] } }).pool.workers;
  await workers[0].terminate();
  await new Promise((r) => setTimeout(r, 50));
  const results: string[] = [];
  await engine.scoreAll([{ path: join(REPO, 'samples', 'mnist-test-00000.png') }, { path: join(REPO, 'samples', 'missing.png') }], (r) => void results.push(r.verdict));
  await engine.dispose();
  assert.deepEqual(results, ['in-distribution', 'error']);
});
