/**
 * A feature bank's float16 decoding and its row checks in WebAssembly (bank.wat): the same values and sums as the
 * JS loops they replace, without a cold thread's slow first pass over millions of values (a scoring shard reads
 * the built-in pair's 2.56 M at every start). The bank goes through the kernel's memory a chunk at a time.
 */
import { bankWasmBase64 } from './bankWasm.generated';

interface Kernel {
  memory: WebAssembly.Memory;
  decode: (src: number, n: number, out: number) => void;
  rowStats: (bank: number, rows: number, dims: number, norms2: number) => number;
  meanOfRows: (bank: number, rows: number, dims: number, norms2: number, mean: number) => void;
}

/** Values a chunk: 512 KB of float16 in, 1 MB of float32 out. */
const CHUNK_VALUES = 1 << 18;

let kernel: Kernel | undefined;

function instance(): Kernel {
  if (!kernel) {
    const module = new WebAssembly.Module(Buffer.from(bankWasmBase64, 'base64'));
    kernel = new WebAssembly.Instance(module).exports as unknown as Kernel;
  }
  return kernel;
}

/** The kernel's memory with at least `bytes`, its buffer taken after any growth. */
function memoryOf(k: Kernel, bytes: number): ArrayBuffer {
  const missing = bytes - k.memory.buffer.byteLength;
  if (missing > 0) k.memory.grow(Math.ceil(missing / 65536));
  return k.memory.buffer;
}

/** `count` little-endian float16 values (`bytes`, 2 a value) as float32, exactly. */
export function decodeFloat16(bytes: Uint8Array, count: number): Float32Array {
  const k = instance();
  const out = new Float32Array(count);
  const outAt = 2 * CHUNK_VALUES;
  const buffer = memoryOf(k, outAt + 4 * CHUNK_VALUES);
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
}

/** Rows of `dims` a chunk, and the memory a chunk needs: its floats, their rows' sums, the mean. */
function chunkLayout(dims: number) {
  const rows = Math.max(1, Math.floor(CHUNK_VALUES / dims));
  const bankBytes = 4 * rows * dims;
  return { rows, bankAt: 0, normsAt: bankBytes, meanAt: bankBytes + 8 * rows, end: bankBytes + 8 * rows + 8 * dims };
}

export function bankRowStats(bank: Float32Array, dims: number): BankRowStats {
  const k = instance();
  const count = bank.length / dims;
  const c = chunkLayout(dims);
  const buffer = memoryOf(k, c.end);
  const norms2 = new Float64Array(count);
  let firstNonFinite = -1;
  for (let from = 0; from < count; from += c.rows) {
    const rows = Math.min(c.rows, count - from);
    new Float32Array(buffer, c.bankAt, rows * dims).set(bank.subarray(from * dims, (from + rows) * dims));
    const bad = k.rowStats(c.bankAt, rows, dims, c.normsAt);
    if (bad >= 0 && firstNonFinite < 0) firstNonFinite = from * dims + bad;
    norms2.set(new Float64Array(buffer, c.normsAt, rows), from);
  }
  return { norms2, firstNonFinite };
}

/** The sum, per dimension, of the rows whose length is at least 1e-6 (`norms2` from bankRowStats). */
export function sumOfLongRows(bank: Float32Array, dims: number, norms2: Float64Array): Float64Array {
  const k = instance();
  const count = bank.length / dims;
  const c = chunkLayout(dims);
  const buffer = memoryOf(k, c.end);
  const sum = new Float64Array(buffer, c.meanAt, dims);
  sum.fill(0);
  for (let from = 0; from < count; from += c.rows) {
    const rows = Math.min(c.rows, count - from);
    new Float32Array(buffer, c.bankAt, rows * dims).set(bank.subarray(from * dims, (from + rows) * dims));
    new Float64Array(buffer, c.normsAt, rows).set(norms2.subarray(from, from + rows));
    k.meanOfRows(c.bankAt, rows, dims, c.normsAt, c.meanAt);
  }
  return sum.slice();
}
