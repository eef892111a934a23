/**
 * Reader for the IDX format used by MNIST and FashionMNIST (optionally gzipped).
 * http://yann.lecun.com/exdb/mnist/ describes it: a magic number whose third byte is the
 * element type (0x08 = unsigned byte) and fourth the number of dimensions, then the sizes.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

export function parseIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  const buf = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) {
    throw new Error(`${source}: not an IDX file (bad magic number)`);
  }
  if (buf[2] !== 0x08) throw new Error(`${source}: only unsigned-byte IDX files are supported (type 0x${buf[2].toString(16)})`);
  const dims = buf[3];
  if (buf.length < 4 + 4 * dims) throw new Error(`${source}: truncated IDX header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const shape: number[] = [];
  for (let d = 0; d < dims; d++) shape.push(view.getUint32(4 + 4 * d, false));
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = 4 + 4 * dims;
  if (buf.length - offset < count) throw new Error(`${source}: truncated IDX data (expected ${count} bytes, found ${buf.length - offset})`);
  return { shape, data: new Uint8Array(buf.buffer, buf.byteOffset + offset, count) };
}

export function readIdxFile(path: string): IdxArray {
  return parseIdx(readFileSync(path), path);
}

/** An IDX image file as a list of raw greyscale images. */
export interface IdxImages {
  count: number;
  width: number;
  height: number;
  image(index: number): Uint8Array;
}

export function idxImages(array: IdxArray, source = 'IDX data'): IdxImages {
  if (array.shape.length !== 3) throw new Error(`${source}: expected a 3-D image array [n, height, width], got [${array.shape.join(', ')}]`);
  const [count, height, width] = array.shape;
  const size = width * height;
  return { count, width, height, image: (i) => array.data.subarray(i * size, (i + 1) * size) };
}

export function looksLikeIdx(path: string): boolean {
  return /-idx\d-ubyte(\.gz)?$/.test(path) || /\.idx\d?(\.gz)?$/.test(path);
}
