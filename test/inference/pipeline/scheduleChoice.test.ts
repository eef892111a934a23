import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseSchedule, THREADS_FREE_WITHIN } from '../../../src/inference/pipeline/scheduleChoice';

test('threads that cost more CPU than one thread: one single-threaded shard per core (MobileNetV3-Small on 2 cores)', () => {
  const choice = chooseSchedule({ prepareMs: 1.9, modelOneThreadMs: 2.6, modelAllThreadsMs: 3.1 }, 2);
  assert.equal(choice.pipeline, 'sharded');
  assert.equal(choice.parallelism, 2);
  assert.ok(Math.abs(choice.expected.sharded - 2000 / 4.5) < 1e-9 && Math.abs(choice.expected.overlapped - 2000 / 5.0) < 1e-9, JSON.stringify(choice.expected));
  assert.match(choice.reason, /3\.10 ms an image on 2 threads against 2\.60 on one/);
});

test('threads that cost no more than one thread (a large model): one session with every thread, preprocessing beside it', () => {
  const choice = chooseSchedule({ prepareMs: 2, modelOneThreadMs: 40, modelAllThreadsMs: 40 * THREADS_FREE_WITHIN }, 4);
  assert.equal(choice.pipeline, 'overlapped');
  assert.equal(choice.parallelism, 4);
  assert.match(choice.reason, /one session holds one copy of the model/);
  // Just past the tolerance, the cheaper schedule wins again.
  assert.equal(chooseSchedule({ prepareMs: 2, modelOneThreadMs: 40, modelAllThreadsMs: 40 * THREADS_FREE_WITHIN + 0.01 }, 4).pipeline, 'sharded');
});

test('the choice follows the model cost, not the preprocessing cost (every schedule pays that)', () => {
  for (const prepareMs of [0, 0.5, 5, 50]) {
    assert.equal(chooseSchedule({ prepareMs, modelOneThreadMs: 1, modelAllThreadsMs: 1.3 }, 2).pipeline, 'sharded');
    assert.equal(chooseSchedule({ prepareMs, modelOneThreadMs: 1, modelAllThreadsMs: 1 }, 2).pipeline, 'overlapped');
  }
});

test('one core: a single shard; nonsense costs are refused naming the field', () => {
  assert.deepEqual([chooseSchedule({ prepareMs: 1, modelOneThreadMs: 1, modelAllThreadsMs: 1 }, 1).pipeline, chooseSchedule({ prepareMs: 1, modelOneThreadMs: 1, modelAllThreadsMs: 1 }, 1).parallelism], ['sharded', 1]);
  assert.throws(() => chooseSchedule({ prepareMs: Number.NaN, modelOneThreadMs: 1, modelAllThreadsMs: 1 }, 2), /prepareMs must be a finite number/);
  assert.throws(() => chooseSchedule({ prepareMs: 1, modelOneThreadMs: -1, modelAllThreadsMs: 1 }, 2), /modelOneThreadMs/);
  assert.throws(() => chooseSchedule({ prepareMs: 1, modelOneThreadMs: 1, modelAllThreadsMs: 1 }, 0), /cores must be a whole number/);
});
