/**
 * Enlarging straight into a model's input in WebAssembly (bilinear.wat): onnxruntime's bilinear Resize, its
 * rounding to 8 bits and toTensorData's scaling, to the bit (test/inference/image/onnxResize.test.ts holds it
 * equal to the onnxruntime graph and toTensorData). Why not the onnxruntime graph itself: a session call per
 * image, and seven passes over 150,528 values for a 224×224 RGB image (resize, round, clip, three in double
 * precision, cast), measured 0.7–1.0 ms of CPU an image inside a scoring shard, a quarter of MobileNetV3-Small's
 * own time; this is one pass, four values at a time.
 */
import { instantiateKernel, memoryWithAtLeast } from '../backends/wasmKernel';
import { bilinearWasmBase64 } from './bilinearWasm.generated';

/** 8-bit pixels, HWC (preprocess.ts's RawImage, restated: preprocess.ts imports onnxResize.ts, which imports this module). */
export interface Pixels {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

/**
 * A model's scaling of 8-bit values: value = pixel · scale[c] + shift[c] (preprocess.ts `tensorScaling`: the
 * manifest's range and mean/std folded into one multiply-add per channel).
 */
export interface ChannelScaling {
  scale: readonly number[];
  shift: readonly number[];
}

interface Kernel {
  memory: WebAssembly.Memory;
  enlarge: (...pointers: number[]) => void;
}

/** One instance per thread (each scoring shard and worker has its own), made on first use. */
let kernel: Kernel | undefined;

const instance = (): Kernel => (kernel ??= instantiateKernel<Kernel>(bilinearWasmBase64));

/**
 * One axis as onnxruntime's Resize sets it up (linear, half_pixel, the size given): for each output index, the
 * two source indices and their weights, in float32 arithmetic (`Math.fround` after each operation is float32's
 * own result: every operand here is a float32, and double precision holds their exact sums and products).
 */
export function bilinearAxis(inSize: number, outSize: number): { i1: Int32Array; i2: Int32Array; d1: Float32Array; d2: Float32Array } {
  const f = Math.fround;
  const scale = f(outSize / inSize);
  const i1 = new Int32Array(outSize);
  const i2 = new Int32Array(outSize);
  const d1 = new Float32Array(outSize);
  const d2 = new Float32Array(outSize);
  for (let o = 0; o < outSize; o++) {
    let at = scale === 1 ? o : f(f(f(o + 0.5) / scale) - 0.5);
    at = Math.max(0, Math.min(at, inSize - 1));
    const a = Math.min(Math.trunc(at), inSize - 1);
    const b = Math.min(a + 1, inSize - 1);
    i1[o] = a;
    i2[o] = b;
    if (a === b) {
      d1[o] = 0.5;
      d2[o] = 0.5;
    } else {
      d1[o] = Math.abs(f(at - a));
      d2[o] = Math.abs(f(at - b));
    }
  }
  return { i1, i2, d1, d2 };
}

/** Byte offsets of each array in the kernel's memory for one geometry, 16-byte aligned. */
interface Layout {
  key: string;
  src: number;
  x1c: number;
  x2c: number;
  dx1: number;
  dx2: number;
  y1: number;
  y2: number;
  dy1: number;
  dy2: number;
  scale: number;
  shift: number;
  e1: number;
  e2: number;
  out: number;
  end: number;
}

/** The geometry whose axis tables are in memory now: consecutive images of one size write them once. */
let current: Layout | undefined;

function layoutFor(w: number, h: number, c: number, W: number, H: number): Layout {
  const key = `${w}x${h}x${c}>${W}x${H}`;
  if (current?.key === key) return current;
  let at = 0;
  const take = (bytes: number) => {
    const start = at;
    at += Math.ceil(bytes / 16) * 16;
    return start;
  };
  const layout: Layout = {
    key,
    src: take(w * h * c),
    x1c: take(4 * W),
    x2c: take(4 * W),
    dx1: take(4 * W),
    dx2: take(4 * W),
    y1: take(4 * H),
    y2: take(4 * H),
    dy1: take(4 * H),
    dy2: take(4 * H),
    scale: take(8 * c),
    shift: take(8 * c),
    e1: take(4 * h * W),
    e2: take(4 * h * W),
    out: take(4 * c * H * W),
    end: 0,
  };
  layout.end = at;
  const buffer = memoryWithAtLeast(instance().memory, layout.end);
  const ax = bilinearAxis(w, W);
  const ay = bilinearAxis(h, H);
  new Int32Array(buffer, layout.x1c, W).set(ax.i1.map((i) => i * c));
  new Int32Array(buffer, layout.x2c, W).set(ax.i2.map((i) => i * c));
  new Float32Array(buffer, layout.dx1, W).set(ax.d1);
  new Float32Array(buffer, layout.dx2, W).set(ax.d2);
  new Int32Array(buffer, layout.y1, H).set(ay.i1);
  new Int32Array(buffer, layout.y2, H).set(ay.i2);
  new Float32Array(buffer, layout.dy1, H).set(ay.d1);
  new Float32Array(buffer, layout.dy2, H).set(ay.d2);
  current = layout;
  return layout;
}

/**
 * Enlarges one image (HWC, 8-bit; no axis shrinks) to `width` × `height` into `out` (C × H × W floats), each
 * value rounded to 8 bits and scaled as toTensorData scales it. The caller checks the geometry (onnxResize.ts).
 */
export function enlargeIntoTensorWasm(image: Pixels, width: number, height: number, scaling: ChannelScaling, out: Float32Array): void {
  const { width: w, height: h, channels: c } = image;
  const k = instance();
  const l = layoutFor(w, h, c, width, height);
  const buffer = k.memory.buffer;
  new Uint8Array(buffer, l.src, w * h * c).set(image.data.subarray(0, w * h * c));
  new Float64Array(buffer, l.scale, c).set(scaling.scale);
  new Float64Array(buffer, l.shift, c).set(scaling.shift);
  k.enlarge(l.src, w, h, c, width, height, l.x1c, l.x2c, l.dx1, l.dx2, l.y1, l.y2, l.dy1, l.dy2, l.scale, l.shift, l.e1, l.e2, l.out);
  out.set(new Float32Array(buffer, l.out, c * width * height));
}
