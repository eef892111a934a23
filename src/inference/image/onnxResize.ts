/**
 * Enlarging in onnxruntime, for pairs whose manifest says `input.enlargeWith: "onnxruntime"` (new fits): an
 * image smaller than the model's input is enlarged by onnxruntime's Resize operator — bilinear with half-pixel
 * centres, torchvision's and PIL's convention — and rounded to 8 bits, in one native call per batch of
 * same-size images. Why not libvips: sharp enlarges through vips_affine, one interpolator call per pixel,
 * ~1.5 ms of CPU per 64×64 → 224×224 RGB image even batched into one atlas; this graph does it in ~0.6 ms.
 * libvips' bilinear enlarging also sits ~0.2 pixel off torchvision's (mean 2.2 levels from PIL on a 64×64
 * photo → 224×224; this graph: 0.3, rounding only). Shrinking stays in libvips (its reduce is fast and
 * antialiased), so this path takes only images that no axis shrinks. A scoring shard's images go straight into
 * the model's feed through the same arithmetic in WebAssembly (`enlargeIntoTensor`, bilinearWasm.ts).
 */
import type { InferenceSession } from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { ort } from '../backends/onnx';
import { type ChannelScaling, enlargeIntoTensorWasm, type Pixels } from './bilinearWasm';

export type { ChannelScaling, Pixels };

/** Output values of one Resize call at most (2 images of 224×224 RGB): each shard's session then holds ~10 MB, not ~50. */
const MAX_VALUES_PER_CALL = 320_000;
/**
 * The same for the channel-planar graph (one 224×224 RGB image): measured on the 224×224 pair's 2,000 PNGs, the
 * whole process peaked at 574–576 MB with one image a call, 584–590 with two and 611–623 with four, at the same CPU.
 */
const PLANES_VALUES_PER_CALL = 160_000;

const T = onnx.TensorProto;
const A = onnx.AttributeProto.AttributeType;
const node = (opType: string, input: string[], output: string[], attribute: onnx.IAttributeProto[] = []) => onnx.NodeProto.create({ opType, input, output, attribute });
const perm = (name: string, ints: number[]) => ({ name, type: A.INTS, ints });

/**
 * The graph: uint8 pixels [n, h, w, c] and the output size [n, H, W, c] → uint8 [n, H, W, c]. The pixels are
 * resized as floats in NCHW (onnxruntime's fastest bilinear path, measured 0.62 against 0.84 ms an image for
 * Resize on uint8 NHWC), rounded half to even and clamped to 0..255.
 */
export function enlargeModel(): Uint8Array {
  return resizeGraph('enlarge', [
    node('Cast', ['clamped'], ['bytes'], [{ name: 'to', type: A.INT, i: T.DataType.UINT8 }]),
    node('Transpose', ['bytes'], ['enlarged'], [perm('perm', [0, 2, 3, 1])]),
  ], [], [onnx.ValueInfoProto.create({ name: 'enlarged', type: { tensorType: { elemType: T.DataType.UINT8 } } })]);
}

/**
 * The same enlarged 8-bit values, channel-planar: uint8 [n, c, H, W]. It skips the transpose back to HWC (about
 * half of the graph's time: measured 0.5 against 1.0 ms CPU a 64×64 → 224×224 RGB image), and an NCHW model's
 * tensor is then written plane by plane (preprocess.ts `toTensorData`).
 */
export function enlargeToPlanesModel(): Uint8Array {
  return resizeGraph('enlarge-to-planes', [node('Cast', ['clamped'], ['planar'], [{ name: 'to', type: A.INT, i: T.DataType.UINT8 }])], [], [onnx.ValueInfoProto.create({ name: 'planar', type: { tensorType: { elemType: T.DataType.UINT8 } } })]);
}

/** uint8 pixels [n, h, w, c] and the output size [n, H, W, c] → `clamped`, float [n, c, H, W], then `tail`. */
function resizeGraph(name: string, tail: onnx.INodeProto[], inputs: onnx.IValueInfoProto[], outputs: onnx.IValueInfoProto[]): Uint8Array {
  const text = (s: string) => new TextEncoder().encode(s);
  const graph = onnx.GraphProto.create({
    name,
    initializer: [
      T.create({ name: 'toNchw', dims: [4], dataType: T.DataType.INT64, int64Data: [0, 3, 1, 2] }),
      T.create({ name: 'lo', dims: [], dataType: T.DataType.FLOAT, floatData: [0] }),
      T.create({ name: 'hi', dims: [], dataType: T.DataType.FLOAT, floatData: [255] }),
    ],
    input: [
      onnx.ValueInfoProto.create({ name: 'pixels', type: { tensorType: { elemType: T.DataType.UINT8, shape: { dim: [{ dimParam: 'n' }, { dimParam: 'h' }, { dimParam: 'w' }, { dimParam: 'c' }] } } } }),
      onnx.ValueInfoProto.create({ name: 'sizes', type: { tensorType: { elemType: T.DataType.INT64, shape: { dim: [{ dimValue: 4 }] } } } }),
      ...inputs,
    ],
    output: outputs,
    node: [
      node('Cast', ['pixels'], ['values'], [{ name: 'to', type: A.INT, i: T.DataType.FLOAT }]),
      node('Transpose', ['values'], ['planes'], [perm('perm', [0, 3, 1, 2])]),
      node('Gather', ['sizes', 'toNchw'], ['planeSizes'], [{ name: 'axis', type: A.INT, i: 0 }]),
      node('Resize', ['planes', '', '', 'planeSizes'], ['resized'], [
        { name: 'mode', type: A.STRING, s: text('linear') },
        { name: 'coordinate_transformation_mode', type: A.STRING, s: text('half_pixel') },
      ]),
      node('Round', ['resized'], ['rounded']),
      node('Clip', ['rounded', 'lo', 'hi'], ['clamped']),
      ...tail,
    ],
  });
  return onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 7, opsetImport: [{ domain: '', version: 13 }], producerName: 'ood-lens', graph })).finish();
}

/** One session per thread (each scoring shard and worker has its own), made on first use. */
let session: Promise<InferenceSession> | undefined;
let planesSession: Promise<InferenceSession> | undefined;

function newSession(model: Uint8Array): Promise<InferenceSession> {
  // One intra-op thread: the caller is a shard or worker that already has a core of its own.
  return ort().InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', logSeverityLevel: 3, extra: { session: { intra_op: { allow_spinning: '0' } } } });
}

function enlargeSession(): Promise<InferenceSession> {
  session ??= newSession(enlargeModel());
  return session;
}

/** An image that this path enlarges: no axis shrinks (and a size to go to). */
export function enlargesOnly(width: number, height: number, toWidth: number, toHeight: number): boolean {
  return width <= toWidth && height <= toHeight;
}

/**
 * Enlarges images of one size and channel count (HWC, 8-bit) to `width` × `height`: one Resize call per chunk of
 * images. Each image's result depends on it alone (not on the others in the call).
 */
export async function enlargeWithOnnxruntime(images: Pixels[], width: number, height: number): Promise<Uint8Array[]> {
  if (!images.length) return [];
  checkGroup(images, width, height, 'enlargeWithOnnxruntime');
  return runInChunks(await enlargeSession(), 'enlarged', MAX_VALUES_PER_CALL, images, width, height);
}

/** Runs an enlarging graph over the images, as many a call as `valuesPerCall` allows; each image's output in turn. */
async function runInChunks(session: InferenceSession, output: string, valuesPerCall: number, images: Pixels[], width: number, height: number): Promise<Uint8Array[]> {
  const size = width * height * images[0].channels;
  const per = Math.max(1, Math.floor(valuesPerCall / size));
  const out: Uint8Array[] = [];
  for (let from = 0; from < images.length; from += per) {
    const chunk = images.slice(from, from + per);
    const result = await session.run(resizeFeeds(chunk, width, height));
    const bytes = result[output].data as Uint8Array;
    for (let k = 0; k < chunk.length; k++) out.push(bytes.subarray(k * size, (k + 1) * size));
  }
  return out;
}

/** The pixels of same-size images in one uint8 [n, h, w, c] tensor, and the output sizes, for a call of either graph. */
function resizeFeeds(chunk: Pixels[], width: number, height: number) {
  const { width: w, height: h, channels: c } = chunk[0];
  const { Tensor } = ort();
  const input = new Uint8Array(chunk.length * w * h * c);
  chunk.forEach((img, k) => input.set(img.data.subarray(0, w * h * c), k * w * h * c));
  return { pixels: new Tensor('uint8', input, [chunk.length, h, w, c]), sizes: new Tensor('int64', BigInt64Array.from([chunk.length, height, width, c], BigInt), [4]) };
}

function checkGroup(images: Pixels[], width: number, height: number, what: string): void {
  const { width: w, height: h, channels: c } = images[0];
  if (images.some((img) => img.width !== w || img.height !== h || img.channels !== c)) throw new Error(`${what}: the images must share one size and channel count`);
  if (!enlargesOnly(w, h, width, height)) throw new Error(`${what}: ${w}×${h} does not fit inside ${width}×${height} (shrinking is libvips' job)`);
}

/**
 * `enlargeWithOnnxruntime`'s images, each channel-planar (C × H × W) instead of interleaved: the same values in
 * another order. One call per chunk of images.
 */
export async function enlargeToPlanes(images: Pixels[], width: number, height: number): Promise<Uint8Array[]> {
  if (!images.length) return [];
  checkGroup(images, width, height, 'enlargeToPlanes');
  planesSession ??= newSession(enlargeToPlanesModel());
  return runInChunks(await planesSession, 'planar', PLANES_VALUES_PER_CALL, images, width, height);
}

/**
 * Enlarges one image (HWC, 8-bit, no axis shrinking) to `width` × `height` straight into its model's input: `out`
 * (C × H × W floats, a slice of the batch's feed) is written in place, with the values `enlargeToPlanes` gives
 * scaled by `scaling` as toTensorData would scale them. It spares the 8-bit copy and the passes over every value
 * after it: the arithmetic of this module's graphs, run in WebAssembly (bilinearWasm.ts), synchronously.
 */
export function enlargeIntoTensor(image: Pixels, width: number, height: number, scaling: ChannelScaling, out: Float32Array): void {
  checkGroup([image], width, height, 'enlargeIntoTensor');
  const c = image.channels;
  if (scaling.scale.length !== c || scaling.shift.length !== c) throw new Error(`enlargeIntoTensor: an image of ${c} channels needs ${c} scales and shifts`);
  if (out.length !== c * width * height) throw new Error(`enlargeIntoTensor: the output holds ${out.length} values, not ${c}×${height}×${width}`);
  enlargeIntoTensorWasm(image, width, height, scaling, out);
}
