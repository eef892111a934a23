/**
 * Feature banks on disk: float16 (half the size of float32; cosine similarities of L2-normalised 128-d
 * features change by < 1e-3), little-endian, rows one after the other.
 */
import { Float16Array } from '@petamoriken/float16';

export function toFloat16Bytes(values: Float32Array): Uint8Array {
  const half = new Float16Array(values.length);
  for (let i = 0; i < values.length; i++) half[i] = values[i];
  const bytes = new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
  return littleEndian() ? bytes : swapPairs(bytes);
}

export function fromFloat16Bytes(bytes: Uint8Array, count: number, source: string): Float32Array {
  if (bytes.byteLength !== count * 2) throw new Error(`${source}: holds ${bytes.byteLength} bytes, expected ${count * 2} (${count} float16 values); fit the detectors again`);
  const own = littleEndian() ? bytes.slice() : swapPairs(bytes);
  const bits = new Uint16Array(own.buffer, own.byteOffset, count);
  const table = halfTable();
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = table[bits[i]];
  return out;
}

let decoded: Float32Array | undefined;

/**
 * Every float16 bit pattern's value (65,536 floats, 256 KB), made once. Reading a bank through Float16Array's
 * per-element getter took 1.2 s for the built-in pair's 2.56 M values; filling this table through it took
 * 26–38 ms of every scoring shard's start. Each value here is exact (every float16 is a float32), and a test
 * holds the table equal to the library's decoding of all 65,536 patterns.
 */
export function halfTable(): Float32Array {
  if (!decoded) {
    const table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) {
      const exponent = (bits >> 10) & 0x1f;
      const fraction = bits & 0x3ff;
      const magnitude = exponent === 0 ? fraction * 2 ** -24 : exponent === 31 ? (fraction ? NaN : Infinity) : (1024 + fraction) * 2 ** (exponent - 25);
      table[bits] = bits & 0x8000 ? -magnitude : magnitude;
    }
    decoded = table;
  }
  return decoded;
}

function littleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

function swapPairs(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    out[i] = bytes[i + 1];
    out[i + 1] = bytes[i];
  }
  return out;
}
