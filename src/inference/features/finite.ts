/**
 * The index of the first value that is not a finite number, or −1. A plain loop: `findIndex` with a callback
 * took 18–31 ms over the 1.3 M floats of a 224×224 pair's layer Gaussians in a fresh thread (each scoring
 * shard checks them at load), this 2–6 ms.
 */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}
