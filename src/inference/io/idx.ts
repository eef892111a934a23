/**
 * Reader for the IDX format used by MNIST and FashionMNIST (optionally gzipped).
 * http://yann.lecun.com/exdb/mnist/ describes it: a magic number whose third byte is the
 * element type (0x08 = unsigned byte) and fourth the number of dimensions, then the sizes.
 */
import { constants, gunzipSync } from 'node:zlib';
import { BoundedReadError, gunzipBounded, isGzip, LIMITS, readBoundedSync } from './boundedRead';

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

/**
 * The size an IDX file's header declares (header + data), read from the first bytes only: for gzip, a
 * prefix of the compressed data is inflated (at most a few MB), so that a decompression bomb is judged by
 * its header before it is inflated, and then inflated to the declared size at most.
 */
function declaredIdxBytes(bytes: Uint8Array): number | null {
  let head: Uint8Array = bytes;
  if (isGzip(bytes)) {
    try {
      head = gunzipSync(bytes.subarray(0, 4096), { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: 8 * 1024 * 1024 });
    } catch {
      return null; // corrupt or tiny: the full inflate below says what is wrong
    }
  }
  if (head.length < 4 || head[0] !== 0 || head[1] !== 0 || head[2] !== 0x08) return null;
  const dims = head[3];
  if (head.length < 4 + 4 * dims) return null;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let count = 1;
  for (let d = 0; d < dims; d++) count *= view.getUint32(4 + 4 * d, false);
  return 4 + 4 * dims + count;
}

export function parseIdx(bytes: Uint8Array, source = 'IDX data', maxInflatedBytes: number = LIMITS.idxInflatedBytes): IdxArray {
  let buf = bytes;
  if (isGzip(bytes)) {
    const declared = declaredIdxBytes(bytes);
    if (declared !== null && declared > maxInflatedBytes) {
      throw new BoundedReadError(source, 'too-large', `IDX header declares ${declared} bytes of data, over the limit of ${maxInflatedBytes}`);
    }
    try {
      // Never more than the header declares (+1 to notice trailing data): a bomb stops there.
      buf = gunzipBounded(bytes, declared === null ? maxInflatedBytes : declared + 1, source);
    } catch (err) {
      if (err instanceof BoundedReadError && err.problem === 'too-large' && declared !== null) {
        throw new BoundedReadError(source, 'too-large', `decompresses to more than the ${declared} bytes its IDX header declares; refused`);
      }
      throw err;
    }
  }
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) {
    throw new Error(`${source}: not an IDX file (bad magic number)`);
  }
  if (buf[2] !== 0x08) throw new Error(`${source}: only unsigned-byte IDX files are supported (type 0x${buf[2].toString(16)})`);
  const dims = buf[3];
  if (buf.length < 4 + 4 * dims) throw new Error(`${source}: truncated IDX file (the header needs ${4 + 4 * dims} bytes, the file has ${buf.length})`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const shape: number[] = [];
  for (let d = 0; d < dims; d++) shape.push(view.getUint32(4 + 4 * d, false));
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = 4 + 4 * dims;
  if (buf.length - offset < count) throw new Error(`${source}: truncated IDX file (the header declares ${count} bytes of data, the file has ${buf.length - offset})`);
  return { shape, data: new Uint8Array(buf.buffer, buf.byteOffset + offset, count) };
}

export function readIdxFile(path: string): IdxArray {
  return parseIdx(readBoundedSync(path, { maxBytes: LIMITS.idxBytes, what: 'IDX file' }), path);
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
