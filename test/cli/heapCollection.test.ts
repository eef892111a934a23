/**
 * The CLI's periodic full collection (heapCollection.ts): every `every`-th result it frees this thread's
 * old-generation garbage, which V8 may otherwise keep for the whole run.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PeriodicCollection } from '../../src/cli/heapCollection';

test('every n-th tick collects the garbage in the old generation, and no other tick does', () => {
  const collection = new PeriodicCollection(3);
  // ~64 MB in V8's large-object space (old generation): only a full collection frees it.
  let garbage: number[] | null = new Array(8_000_000).fill(0.5);
  assert.equal(garbage.length, 8_000_000);
  garbage = null;
  const held = process.memoryUsage().heapUsed;
  collection.tick();
  collection.tick();
  assert.ok(process.memoryUsage().heapUsed > held - 32 * 1024 * 1024, 'nothing collected before the third tick');
  collection.tick();
  const after = process.memoryUsage().heapUsed;
  assert.ok(after < held - 48 * 1024 * 1024, `the third tick freed the 64 MB array (heap ${(held / 2 ** 20).toFixed(0)} → ${(after / 2 ** 20).toFixed(0)} MB)`);
});
