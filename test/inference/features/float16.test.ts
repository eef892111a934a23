/**
 * Feature banks are stored as float16 and read back by bit arithmetic in WebAssembly (features/bank.wat), not
 * through the library: it must give exactly the library's value for each of the 65,536 patterns, or every KNN
 * distance would be read from other numbers.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Float16Array } from '@petamoriken/float16';
import { fromFloat16Bytes, toFloat16Bytes } from '../../../src/inference/features/float16';

test('decoding gives the library\'s value for every bit pattern (zeros, subnormals, infinities and NaN included), in any chunk', () => {
  // Every pattern four times and five more: the chunk boundary at 262,144 values is crossed. (Decoded eight at a
  // time; the few left over one at a time, checked on every pattern below.)
  const patterns = new Uint16Array(4 * 65536 + 5).map((_, i) => i % 65536);
  const library = new Float16Array(patterns.buffer);
  const table = fromFloat16Bytes(new Uint8Array(patterns.buffer), patterns.length, 'every pattern');
  let checked = 0;
  for (let i = 0; i < patterns.length; i++) {
    const want = library[i];
    const got = table[i];
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `value ${i}, pattern 0x${patterns[i].toString(16)}: NaN expected, got ${got}`);
    else assert.ok(Object.is(got, want), `value ${i}, pattern 0x${patterns[i].toString(16)}: ${want} expected, got ${got}`);
    checked++;
  }
  assert.equal(checked, 4 * 65536 + 5);
  assert.ok(Object.is(table[0x8000], -0) && table[0x3c00] === 1 && table[0x0001] === 2 ** -24 && table[0x7bff] === 65504);
  // Seven values a call: each goes through the one-at-a-time path.
  for (let from = 0; from < 65536; from += 7) {
    const n = Math.min(7, 65536 - from);
    const one = fromFloat16Bytes(new Uint8Array(patterns.buffer, 2 * from, 2 * n), n, 'seven patterns');
    for (let i = 0; i < n; i++) assert.ok(Object.is(one[i], table[from + i]) || (Number.isNaN(one[i]) && Number.isNaN(table[from + i])), `pattern 0x${(from + i).toString(16)} one at a time: ${one[i]} against ${table[from + i]}`);
  }
});

test('a bank written as float16 reads back as the nearest float16 of each value', () => {
  const values = Float32Array.from([0, -0.5, 1 / 3, 0.1, 65504, -(2 ** -20), 1e-9, 3.14159]);
  const back = fromFloat16Bytes(toFloat16Bytes(values), values.length, 'test bank');
  const nearest = Float32Array.from(new Float16Array(values));
  assert.deepEqual(Array.from(back), Array.from(nearest));
  assert.throws(() => fromFloat16Bytes(new Uint8Array(6), 4, 'short.f16'), /short\.f16: holds 6 bytes, expected 8/);
});

test('the committed bank kernel is the one wabt assembles from bank.wat now (run `node scripts/wasmKernels.mjs` after editing it)', async () => {
  const { kernels, kernelSource } = await import('../../../scripts/wasmKernels.mjs');
  const kernel = kernels.find((k) => k.wat.endsWith('bank.wat'))!;
  assert.equal(readFileSync(kernel.generated, 'utf8'), await kernelSource(kernel));
});
