/**
 * Which schedule a pair's measured costs call for, on `cores` cores: one scoring shard per core (each a
 * single-threaded onnxruntime session doing its own batches start to finish), or one session with every
 * intra-op thread on this thread while preprocessing workers prepare the next batch (`overlapped`).
 *
 * Why by cost, not by a fixed rule: when the cores are busy, what a schedule achieves is the CPU time it spends
 * per image. Every schedule pays the preprocessing; they differ in what the models cost. A small model
 * (the MNIST pair) gains little from intra-op threads and pays for their hand-offs on every batch; a large
 * one keeps them busy, and then one session holds one copy of the model and its buffers instead of one per
 * core. Measured on 2 cores, batch 16: MobileNetV3-Small (224×224 RGB) costs 2.6 ms a core per image on one
 * thread and 3.1 ms on two (sharded wins by ~20%); the MNIST pair's models ran at 6,300–6,600 images/s as two
 * single-threaded sessions against 5,500–6,500 as one two-threaded one (scoringShards.ts).
 */

/** CPU milliseconds per image, measured on this machine with the pair's own batches. */
export interface ScheduleCosts {
  /** Reading, decoding, resizing and converting one image (the same whichever schedule runs it). */
  prepareMs: number;
  /** The models on one intra-op thread (one shard's session). */
  modelOneThreadMs: number;
  /** The models on `cores` intra-op threads, CPU time summed over the threads. */
  modelAllThreadsMs: number;
}

export interface ScheduleChoice {
  pipeline: 'sharded' | 'overlapped';
  /** Scoring shards (sharded) or intra-op threads of the one session (overlapped). */
  parallelism: number;
  /** Images per second each schedule is expected to reach with every core busy: what the choice compared. */
  expected: { sharded: number; overlapped: number };
  reason: string;
}

/**
 * Threads that cost at most this much more CPU than one thread count as free: one session then wins on
 * memory (one copy of the model), which the rate estimate does not see.
 */
export const THREADS_FREE_WITHIN = 1.05;

/** Picks the schedule with the higher expected rate; a tie within THREADS_FREE_WITHIN goes to one session. */
export function chooseSchedule(costs: ScheduleCosts, cores: number): ScheduleChoice {
  for (const [name, value] of Object.entries(costs)) {
    if (!(Number.isFinite(value) && value >= 0)) throw new RangeError(`chooseSchedule: ${name} must be a finite number of milliseconds ≥ 0 (got ${value})`);
  }
  if (!(Number.isInteger(cores) && cores >= 1)) throw new RangeError(`chooseSchedule: cores must be a whole number ≥ 1 (got ${cores})`);
  const { prepareMs, modelOneThreadMs, modelAllThreadsMs } = costs;
  const rate = (msPerImage: number) => (msPerImage > 0 ? (1000 * cores) / msPerImage : Infinity);
  const expected = { sharded: rate(prepareMs + modelOneThreadMs), overlapped: rate(prepareMs + modelAllThreadsMs) };
  const fmt = (ms: number) => ms.toFixed(2);
  if (cores === 1) return { pipeline: 'sharded', parallelism: 1, expected, reason: 'one core: nothing to overlap or shard' };
  if (modelAllThreadsMs <= modelOneThreadMs * THREADS_FREE_WITHIN) {
    return {
      pipeline: 'overlapped',
      parallelism: cores,
      expected,
      reason: `the models cost ${fmt(modelAllThreadsMs)} ms an image on ${cores} threads against ${fmt(modelOneThreadMs)} on one: the threads are free, and one session holds one copy of the model`,
    };
  }
  return {
    pipeline: 'sharded',
    parallelism: cores,
    expected,
    reason: `the models cost ${fmt(modelAllThreadsMs)} ms an image on ${cores} threads against ${fmt(modelOneThreadMs)} on one: a single-threaded session per core spends less (preprocessing ${fmt(prepareMs)} ms either way)`,
  };
}
