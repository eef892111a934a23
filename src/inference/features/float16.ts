/**
 * Feature banks on disk: float16 (half the size of float32; cosine similarities of L2-normalised 128-d
 * features change by < 1e-3), little-endian, rows one after the other.
 */
import { Float16Array } from '@petamoriken/float16';
import { decodeFloat16 } from './bankWasm';

export function toFloat16Bytes(values: Float32Array): Uint8Array {
  const half = new Float16Array(values.length);
  for (let i = 0; i < values.length; i++) half[i] = values[i];
  const bytes = new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
  return littleEndian() ? bytes : swapPairs(bytes);
}

/**
 * `count` float16 values as float32 (exact: every float16 is a float32), decoded in WebAssembly (bankWasm.ts). A
 * JS table lookup took 11–35 ms of every scoring shard's start for the built-in pair's 2.56 M values; a test holds
 * the decoding equal to the library's for all 65,536 bit patterns.
 */
export function fromFloat16Bytes(bytes: Uint8Array, count: number, source: string): Float32Array {
  if (bytes.byteLength !== count * 2) throw new Error(`${source}: holds ${bytes.byteLength} bytes, expected ${count * 2} (${count} float16 values); fit the detectors again`);
  return decodeFloat16(littleEndian() ? bytes : swapPairs(bytes), count);
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
