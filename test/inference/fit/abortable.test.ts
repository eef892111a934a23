import assert from 'node:assert/strict';
import { test } from 'node:test';
import { untilAborted } from '../../../src/inference/fit/abortable';

const cancelled = () => new Error('cancelled');

test('untilAborted: a cancel answers at once even when the work never settles', async () => {
  const controller = new AbortController();
  const never = new Promise<number>(() => undefined);
  const run = untilAborted(never, controller.signal, cancelled);
  controller.abort();
  await assert.rejects(run, /cancelled/);
});

test('untilAborted: an already aborted signal rejects without waiting for the work', async () => {
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(untilAborted(new Promise<number>(() => undefined), controller.signal, cancelled), /cancelled/);
});

test('untilAborted: what the work yields after the cancel is handed to `late` (to be released)', async () => {
  const controller = new AbortController();
  let finish!: (v: string) => void;
  const work = new Promise<string>((r) => (finish = r));
  const released: string[] = [];
  const run = untilAborted(work, controller.signal, cancelled, (v) => released.push(v));
  controller.abort();
  await assert.rejects(run, /cancelled/);
  finish('model');
  await work;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(released, ['model']);
});

test('untilAborted: without a cancel, the work\'s value and errors pass through and nothing is released', async () => {
  const controller = new AbortController();
  const released: number[] = [];
  assert.equal(await untilAborted(Promise.resolve(7), controller.signal, cancelled, (v) => released.push(v)), 7);
  await assert.rejects(untilAborted(Promise.reject(new Error('corrupt model')), controller.signal, cancelled), /corrupt model/);
  controller.abort(); // after settling: no effect
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(released, []);
  assert.equal(await untilAborted(Promise.resolve(3), undefined, cancelled), 3);
});
