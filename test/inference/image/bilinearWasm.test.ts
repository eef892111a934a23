/**
 * The enlarging kernel's WebAssembly: the committed module is the one wabt assembles from bilinear.wat now, and
 * its axis tables are onnxruntime's (the values themselves are held to onnxruntime's in onnxResize.test.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { bilinearAxis } from '../../../src/inference/image/bilinearWasm';

test('the committed kernel is the one wabt assembles from bilinear.wat now (run `node scripts/wasmKernels.mjs` after editing it)', async () => {
  const { kernels, kernelSource } = await import('../../../scripts/wasmKernels.mjs');
  const kernel = kernels.find((k) => k.wat.endsWith('bilinear.wat'))!;
  assert.equal(readFileSync(kernel.generated, 'utf8'), await kernelSource(kernel));
});

test('an axis of the same size maps each index to itself; a doubled one has the half-pixel weights 1/4 and 3/4, clamped at the edges', () => {
  const same = bilinearAxis(5, 5);
  assert.deepEqual([...same.i1], [0, 1, 2, 3, 4]);
  assert.deepEqual([...same.d1], [0, 0, 0, 0, 0.5]);
  const doubled = bilinearAxis(2, 4);
  // Output 0 sits at source -0.25 (clamped to 0), 1 at 0.25, 2 at 0.75, 3 at 1.25 (clamped to 1).
  assert.deepEqual([...doubled.i1], [0, 0, 0, 1]);
  assert.deepEqual([...doubled.i2], [1, 1, 1, 1]);
  assert.deepEqual([...doubled.d1], [0, 0.25, 0.75, 0.5]);
  assert.deepEqual([...doubled.d2], [1, 0.75, 0.25, 0.5]);
});
