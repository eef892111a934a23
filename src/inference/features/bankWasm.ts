/**
 * A feature bank's float16 decoding and its row checks in WebAssembly (bank.wat): the same values and sums as the
 * JS loops they replace, without a cold thread's slow first pass over millions of values (a scoring shard reads
 * the built-in pair's 2.56 M at every start). The bank goes through the kernel's memory a chunk at a time.
 */
import { instantiateKernel, memoryWithAtLeast } from '../backends/wasmKernel';
import { bankWasmBase64 } from './bankWasm.generated';

interface Kernel {
  memory: WebAssembly.Memory;
  decode: (src: number, n: number, out: number) => void;
  rowStats: (bank: number, rows: number, dims: number, norms2: number, sum: number) => number;
}

/** Values a chunk: 512 KB of float16 in, 1 MB of float32 out. */
const CHUNK_VALUES = 1 << 18;

let kernel: Kernel | undefined;

const instance = (): Kernel => (kernel ??= instantiateKernel<Kernel>(bankWasmBase64));

/** `count` little-endian float16 values (`bytes`, 2 a value) as float32, exactly. */
export function decodeFloat16(bytes: Uint8Array, count: number): Float32Array {
  const k = instance();
  const out = new Float32Array(count);
  const outAt = 2 * CHUNK_VALUES;
  const buffer = memoryWithAtLeast(k.memory, outAt + 4 * CHUNK_VALUES);
  for (let from = 0; from < count; from += CHUNK_VALUES) {
    const n = Math.min(CHUNK_VALUES, count - from);
    new Uint8Array(buffer, 0, 2 * n).set(bytes.subarray(2 * from, 2 * (from + n)));
    k.decode(0, n, outAt);
    out.set(new Float32Array(buffer, outAt, n), from);
  }
  return out;
}

export interface BankRowStats {
  /** Each row's sum of squares (double precision, in order). */
  norms2: Float64Array;
  /** The index of the first value that is not a finite number, or −1. */
  firstNonFinite: number;
  /** Per dimension, the sum of the rows whose length is at least 1e-6 (in row order). */
  sumOfLongRows: Float64Array;
}

/** One pass over the bank (`count` rows of `dims`), a chunk of rows at a time. */
export function bankRowStats(bank: Float32Array, dims: number): BankRowStats {
  const k = instance();
  const count = bank.length / dims;
  const chunkRows = Math.max(1, Math.floor(CHUNK_VALUES / dims));
  const normsAt = 4 * chunkRows * dims;
  const sumAt = normsAt + 8 * chunkRows;
  const buffer = memoryWithAtLeast(k.memory, sumAt + 8 * dims);
  const sum = new Float64Array(buffer, sumAt, dims).fill(0);
  const norms2 = new Float64Array(count);
  let firstNonFinite = -1;
  for (let from = 0; from < count; from += chunkRows) {
    const rows = Math.min(chunkRows, count - from);
    new Float32Array(buffer, 0, rows * dims).set(bank.subarray(from * dims, (from + rows) * dims));
    const bad = k.rowStats(0, rows, dims, normsAt, sumAt);
    if (bad >= 0 && firstNonFinite < 0) firstNonFinite = from * dims + bad;
    norms2.set(new Float64Array(buffer, normsAt, rows), from);
  }
  return { norms2, firstNonFinite, sumOfLongRows: sum.slice() };
}
