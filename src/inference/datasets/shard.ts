/**
 * `--shard K/N`: a deterministic split of the inputs for job arrays (Kubernetes Indexed Jobs, Slurm arrays,
 * CI matrices). Each input goes to the shard picked by a hash of its key — its path relative to the
 * argument it came from, with '/' separators — so the split is the same on every machine, whatever the
 * mount point of the data and whatever order a listing returns, and shards never overlap.
 */
import { createHash } from 'node:crypto';

export interface Shard {
  index: number;
  count: number;
}

/** Parses "K/N" (0 ≤ K < N); throws an Error whose message says what is wrong. */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) throw new Error(`--shard must be K/N, e.g. 0/4 (got "${text}")`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (!Number.isSafeInteger(count) || count < 1) throw new Error(`--shard: N must be at least 1 (got "${text}")`);
  if (index >= count) throw new Error(`--shard: K runs from 0 to N-1 (got "${text}"; with Kubernetes use $JOB_COMPLETION_INDEX, with Slurm $SLURM_ARRAY_TASK_ID and --array=0-${count - 1})`);
  return { index, count };
}

/**
 * The shard (0..count-1) of an input key: the first 48 bits of the key's SHA-256 modulo `count`. SHA-256
 * rather than a cheap hash because file names are highly regular (img-000001.png, img-000002.png, …) and
 * a weak hash's low bits follow that regularity; ~1 µs per key.
 */
export function shardOfKey(key: string, count: number): number {
  if (count <= 1) return 0;
  const digest = createHash('sha256').update(key, 'utf8').digest();
  return digest.readUIntBE(0, 6) % count;
}

export function inShard(key: string, shard: Shard | undefined): boolean {
  return !shard || shardOfKey(key, shard.count) === shard.index;
}
