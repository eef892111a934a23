/**
 * A full garbage collection of this thread's heap every so many results, for the CLI's main thread while it
 * scores a long list of inputs.
 *
 * Why: that thread receives every result, writes it out and drops it, and a fraction of this garbage outlives two
 * young-generation collections and lands in the old generation. With the thread idle most of the time V8 sees no
 * reason for a full collection, and whether one comes at all varies from run to run: measured on the built-in pair,
 * 100,000 PNGs, its heap grew from ~80 to ~155 MB in some runs (peak RSS 470–480 MB) and was collected at ~60 MB in
 * others (peak 413–422 MB). A collection every 10,000 results (~20 ms each; a few seconds apart) keeps the heap near
 * its live size: peaks of 370, 370 and 393 MB (every 20,000: 367 and 384 MB, and up to 406 MB in a bench's three runs).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collectGarbage: (() => void) | undefined;

/** V8's `gc()`, without starting Node with --expose-gc: the flag applies to contexts made after it is set. */
function fullCollection(): () => void {
  if (!collectGarbage) {
    setFlagsFromString('--expose-gc');
    collectGarbage = runInNewContext('gc') as () => void;
  }
  return collectGarbage;
}

/** Counts results; every `every`-th one, collects this thread's heap in full. */
export class PeriodicCollection {
  private count = 0;

  constructor(private readonly every = 10_000) {}

  /** One more result handed on. */
  tick(): void {
    if (++this.count % this.every === 0) fullCollection()();
  }
}
