/**
 * Feature banks are stored as float16 and read back through a table of every bit pattern's value
 * (features/float16.ts). The table is made by arithmetic, not through the library: it must give exactly the
 * library's value for each of the 65,536 patterns, or every KNN distance would be read from other numbers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Float16Array } from '@petamoriken/float16';
import { fromFloat16Bytes, halfTable, toFloat16Bytes } from '../../../src/inference/features/float16';

test('the float16 table holds the library\'s value for every bit pattern (zeros, subnormals, infinities and NaN included)', () => {
  const patterns = new Uint16Array(65536).map((_, i) => i);
  const library = new Float16Array(patterns.buffer);
  const table = halfTable();
  let checked = 0;
  for (let bits = 0; bits < 65536; bits++) {
    const want = library[bits];
    const got = table[bits];
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `pattern 0x${bits.toString(16)}: NaN expected, got ${got}`);
    else assert.ok(Object.is(got, want), `pattern 0x${bits.toString(16)}: ${want} expected, got ${got}`);
    checked++;
  }
  assert.equal(checked, 65536);
  assert.ok(Object.is(table[0x8000], -0) && table[0x3c00] === 1 && table[0x0001] === 2 ** -24 && table[0x7bff] === 65504);
});

test('a bank written as float16 reads back as the nearest float16 of each value', () => {
  const values = Float32Array.from([0, -0.5, 1 / 3, 0.1, 65504, -(2 ** -20), 1e-9, 3.14159]);
  const back = fromFloat16Bytes(toFloat16Bytes(values), values.length, 'test bank');
  const nearest = Float32Array.from(new Float16Array(values));
  assert.deepEqual(Array.from(back), Array.from(nearest));
  assert.throws(() => fromFloat16Bytes(new Uint8Array(6), 4, 'short.f16'), /short\.f16: holds 6 bytes, expected 8/);
});
