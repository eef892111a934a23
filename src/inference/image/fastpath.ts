/**
 * The fast path for datasets of small images, where libvips' per-call overhead (~1–2 ms) dwarfs the work:
 *  1. small 8-bit PNGs are decoded in-process: Node's native zlib inflates, then the PNG row filters are
 *     reversed (lossless, so the pixels are exactly sharp's; ~8 µs per 28×28 PNG against ~1 ms for a sharp call);
 *  2. images of the same size are stacked into one tall "atlas" with edge-replicated gaps and resized by a
 *     single sharp call, then cut apart. The gaps are wide enough for every resize kernel's support and make
 *     each tile's output rows land on integer positions, so each result is bit-identical to resizing the image
 *     alone (test/inference/fastpath.test.ts checks this on real images).
 *  3. images already at the resize target (MNIST's 28×28 digits for a 32×32 input with padding 2) are
 *     copied into the padded frame: sharp's resize is the identity there.
 * Anything else (JPEG, large images, palettes, colour profiles, `contain`/`cover` with other aspect ratios,
 * padding in colours other than black or white) goes through the ordinary per-image sharp pipeline.
 */
import * as zlib from 'node:zlib';
import sharp from '../io/lazySharp';
import type { InputSpec } from '../pair/manifest';
import { enlargesOnly, enlargeToPlanes, enlargeWithOnnxruntime } from './onnxResize';
import { unfilterRows } from './pngRows';
import { decodeToRaw, deferredEnlargement, enlargesToPlanes, ImageDecodeError, imageFromPlanes, innerSize, type ModelImage, type RawImage, resizeOptions, toModelImage } from './preprocess';

export const FAST_PNG_MAX_PIXELS = 512 * 512;
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Chunks that make libvips treat pixels differently from their raw values (colour management, transparency, orientation). */
const UNSAFE_CHUNKS = new Set(['iCCP', 'gAMA', 'cHRM', 'sRGB', 'tRNS', 'eXIf', 'acTL', 'PLTE']);

/** The PNG signature followed by an IHDR chunk (which has to come first). */
function isPng(bytes: Uint8Array): boolean {
  return bytes.length > 33 && PNG_SIGNATURE.every((b, i) => bytes[i] === b) && String.fromCharCode(bytes[12], bytes[13], bytes[14], bytes[15]) === 'IHDR';
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const pngjsCrc = require('pngjs/lib/crc') as { crc32(data: Uint8Array): number };

/** pngjs's table-driven CRC-32, unsigned: for Node versions without `zlib.crc32` (before 20.15, as in older VS Code builds). */
export function crc32Js(data: Uint8Array): number {
  return pngjsCrc.crc32(data) >>> 0;
}

/** CRC-32 of PNG chunks: Node's native one where it exists, else pngjs's. */
const crc32: (data: Uint8Array) => number = (zlib as { crc32?: (data: Uint8Array) => number }).crc32 ?? crc32Js;

/** Channels as stored, by PNG colour type: grey, grey+alpha, RGB, RGBA (palettes take the sharp path). */
const CHANNELS: Record<number, RawImage['channels']> = { 0: 1, 4: 2, 2: 3, 6: 4 };

/**
 * Decodes a small, plain 8-bit PNG in-process; null when the image should take the sharp path instead
 * (another format, palette, 16-bit, interlaced, colour-managed, or anything malformed: sharp words the error).
 * Chunk CRCs are checked as libpng does; IDAT is inflated by Node's zlib into a buffer of the exact image
 * size (zlib's default 16 KB output chunk per call cost more than the inflate), and the row filters are
 * reversed by `unfilterRows`. Measured on 28×28 MNIST PNGs: ~8 µs against ~40 µs for pngjs's `PNG.sync.read`.
 */
export function decodeSmallPng(bytes: Uint8Array): RawImage | null {
  if (!isPng(bytes)) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  const channels = CHANNELS[bytes[25]];
  const plain = bytes[24] === 8 && bytes[26] === 0 && bytes[27] === 0 && bytes[28] === 0; // depth 8, deflate, adaptive filters, not interlaced
  if (!channels || !plain || width * height > FAST_PNG_MAX_PIXELS || width === 0 || height === 0) return null;
  const idat: Uint8Array[] = [];
  let ended = false;
  for (let pos = 8; pos + 12 <= bytes.length && !ended; ) {
    const length = view.getUint32(pos);
    const end = pos + 8 + length;
    if (end + 4 > bytes.length) return null; // truncated
    if (crc32(bytes.subarray(pos + 4, end)) !== view.getUint32(end)) return null; // corrupt chunk
    const type = String.fromCharCode(bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]);
    // Bail out on anything that changes how pixels are interpreted.
    if (UNSAFE_CHUNKS.has(type)) return null;
    if (type === 'IDAT') idat.push(bytes.subarray(pos + 8, end));
    ended = type === 'IEND';
    pos = end + 4;
  }
  if (!ended || !idat.length) return null;
  const rowBytes = width * channels + 1;
  try {
    const compressed = idat.length === 1 ? idat[0] : Buffer.concat(idat);
    const filtered = zlib.inflateSync(compressed, { chunkSize: Math.max(zlib.constants.Z_MIN_CHUNK, rowBytes * height), maxOutputLength: rowBytes * height });
    if (filtered.length !== rowBytes * height) return null;
    const data = unfilterRows(filtered, width, height, channels);
    return data && { width, height, channels, data };
  } catch {
    return null; // let sharp decode it and word the error
  }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * Rows of edge-replicated padding above and below each tile so that (a) no kernel reaches the next tile
 * and (b) the padding maps to a whole number of output rows. Null when the geometry does not allow it.
 */
export function atlasPadding(inH: number, outH: number): number | null {
  if (inH >= 2 * outH) return null; // libvips pre-shrinks by integer factors there: keep those per image
  const margin = Math.ceil(4 * Math.max(1, inH / outH)) + 2; // lanczos3 reaches 3 input pixels (scaled when shrinking)
  const period = inH / gcd(outH, inH); // P·outH/inH must be an integer
  const p = Math.ceil(margin / period) * period;
  return p <= 4 * inH + 64 ? p : null;
}

/**
 * The grey/RGB value sharp pads with, when it is unambiguous: black or white. Other colours go through
 * sharp's own conversion, so those specs keep the per-image path.
 */
function plainBackground(spec: InputSpec): number | null {
  const bg = (spec.background ?? '#ffffff').toLowerCase();
  if (bg === '#000' || bg === '#000000') return 0;
  if (bg === '#fff' || bg === '#ffffff') return 255;
  return null;
}

/** `frame` can pad this spec's images itself: no padding, or padding in black or white. */
function framesInJs(spec: InputSpec): boolean {
  return !spec.padding || plainBackground(spec) !== null;
}

function eligible(width: number, height: number, spec: InputSpec): boolean {
  const fit = spec.resize ?? 'fill';
  const inner = innerSize(spec);
  const sameAspect = width * inner.height === height * inner.width;
  return framesInJs(spec) && (fit === 'fill' || sameAspect) && width < 2 * inner.width && atlasPadding(height, inner.height) !== null;
}

/**
 * Images already at the resize target with the model's channels (grey → grey, RGB → RGB, no alpha):
 * sharp's resize is then the identity (tested against sharp), so the pixels are copied into the padded
 * frame without a libvips call. MNIST's 28×28 digits in the 32×32 field take this path.
 */
function copiesExactly(raw: RawImage, spec: InputSpec): boolean {
  const inner = innerSize(spec);
  return raw.width === inner.width && raw.height === inner.height && raw.channels === spec.channels && framesInJs(spec);
}

/**
 * An RGB image whose every pixel has R = G = B, at a grey model's resize target (the samples' 28×28 digits are
 * stored this way): sharp's grey conversion gives each pixel's value back unchanged (tested for all 256), so the
 * image takes the copy path as its grey channel instead of a libvips call (a one-image run then never loads sharp).
 */
function greyStoredAsRgb(raw: RawImage, spec: InputSpec): boolean {
  const inner = innerSize(spec);
  if (spec.channels !== 1 || raw.channels !== 3 || raw.width !== inner.width || raw.height !== inner.height) return false;
  const d = raw.data;
  for (let i = 0; i < d.length; i += 3) if (d[i] !== d[i + 1] || d[i] !== d[i + 2]) return false;
  return true;
}

function greyChannel(raw: RawImage): RawImage {
  const grey = new Uint8Array(raw.width * raw.height);
  for (let i = 0; i < grey.length; i++) grey[i] = raw.data[3 * i];
  return { width: raw.width, height: raw.height, channels: 1, data: grey };
}

/** Places `inner`-sized HWC pixels into the model frame (padding filled with the background), inverting if asked. */
function frame(pixels: Uint8Array, spec: InputSpec): ModelImage {
  const { width: iw, height: ih, padding } = innerSize(spec);
  const c = spec.channels;
  let out: Uint8Array;
  if (!padding) out = pixels;
  else {
    out = new Uint8Array(spec.width * spec.height * c).fill(plainBackground(spec)!);
    const row = iw * c;
    // A byte loop, not a subarray per row: those were a tenth of the JS allocation per image.
    for (let y = 0; y < ih; y++) {
      const from = y * row;
      const to = ((y + padding) * spec.width + padding) * c;
      for (let x = 0; x < row; x++) out[to + x] = pixels[from + x];
    }
  }
  if (spec.invert) for (let k = 0; k < out.length; k++) out[k] = 255 - out[k];
  return { width: spec.width, height: spec.height, channels: spec.channels, pixels: out };
}

/** Resizes same-sized raw images with one sharp call; results equal `toModelImage` on each image. */
async function resizeGroup(images: RawImage[], spec: InputSpec): Promise<ModelImage[]> {
  const { width, height, channels } = images[0];
  const inner = innerSize(spec);
  const pad = atlasPadding(height, inner.height)!;
  const tileIn = height + 2 * pad;
  const tileOut = (tileIn * inner.height) / height;
  const skip = (pad * inner.height) / height;
  const row = width * channels;
  const atlas = Buffer.allocUnsafe(row * tileIn * images.length);
  images.forEach((img, i) => {
    for (let y = 0; y < tileIn; y++) {
      const sy = Math.min(height - 1, Math.max(0, y - pad));
      atlas.set(img.data.subarray(sy * row, (sy + 1) * row), (i * tileIn + y) * row);
    }
  });
  let pipeline = sharp(atlas, { raw: { width, height: tileIn * images.length, channels }, limitInputPixels: false }).flatten({ background: spec.background ?? '#ffffff' });
  pipeline = spec.channels === 1 ? pipeline.toColourspace('b-w') : pipeline.toColourspace('srgb');
  const out = await pipeline.resize({ ...resizeOptions(spec), height: tileOut * images.length, fit: 'fill' }).raw().toBuffer();
  const size = inner.width * inner.height * spec.channels;
  return images.map((_, i) => {
    const start = (i * tileOut + skip) * inner.width * spec.channels;
    return frame(new Uint8Array(out.subarray(start, start + size)), spec);
  });
}

/**
 * A pair that enlarges in onnxruntime (`input.enlargeWith`), an image in the model's channels that no axis
 * shrinks, framed in JS: enlarged with the others of its size in one call (onnxResize.ts), as `toModelImage`
 * would one by one.
 */
function enlargesInOnnxruntime(raw: RawImage, spec: InputSpec): boolean {
  const inner = innerSize(spec);
  return spec.enlargeWith === 'onnxruntime' && raw.channels === spec.channels && framesInJs(spec) && enlargesOnly(raw.width, raw.height, inner.width, inner.height);
}

/** An image that a pair enlarging in onnxruntime enlarges, though not here (other channels: `toModelImage` converts it first). */
function enlargedElsewhere(raw: RawImage, spec: InputSpec): boolean {
  const inner = innerSize(spec);
  return spec.enlargeWith === 'onnxruntime' && enlargesOnly(raw.width, raw.height, inner.width, inner.height);
}

async function enlargeGroup(images: RawImage[], spec: InputSpec, deferEnlarging: boolean): Promise<ModelImage[]> {
  const inner = innerSize(spec);
  if (deferEnlarging && enlargesToPlanes(spec)) return images.map((raw) => deferredEnlargement(raw, spec));
  if (enlargesToPlanes(spec)) return (await enlargeToPlanes(images, inner.width, inner.height)).map((planes) => imageFromPlanes(planes, spec));
  return (await enlargeWithOnnxruntime(images, inner.width, inner.height)).map((pixels) => frame(pixels, spec));
}

export type Prepared = ModelImage | ImageDecodeError;

export interface PrepareOptions {
  /**
   * Leave the images that onnxruntime enlarges into an NCHW model's tensor for the model's feed to enlarge
   * (`ModelImage.enlargeFrom`; BatchScorer.batchTensor): for a caller whose classifier images nothing else reads.
   */
  deferEnlarging?: boolean;
}

/**
 * Preprocesses a batch: raw and small-PNG inputs are resized together per size (atlas); the rest go
 * through sharp one by one. Order is kept; failures are returned as ImageDecodeError in place.
 */
export async function prepareBatch(sources: (RawImage | Uint8Array | Error)[], spec: InputSpec, maxInputPixels: number, options: PrepareOptions = {}): Promise<Prepared[]> {
  const out: Prepared[] = new Array(sources.length);
  const groups = new Map<string, { index: number; raw: RawImage }[]>();
  const enlarging = new Map<string, { index: number; raw: RawImage }[]>();
  const slow: Promise<void>[] = [];
  sources.forEach((source, index) => {
    if (source instanceof Error) {
      out[index] = source instanceof ImageDecodeError ? source : new ImageDecodeError(source.message);
      return;
    }
    const decoded = source instanceof Uint8Array ? decodeSmallPng(source) : source;
    const raw = decoded && greyStoredAsRgb(decoded, spec) ? greyChannel(decoded) : decoded;
    const small = raw !== null && raw.width * raw.height <= maxInputPixels;
    if (small && copiesExactly(raw, spec)) {
      out[index] = frame(raw.data.slice(), spec); // a copy: inversion must not touch the caller's pixels
    } else if (small && enlargesInOnnxruntime(raw, spec)) {
      const key = `${raw.width}x${raw.height}x${raw.channels}`;
      if (!enlarging.has(key)) enlarging.set(key, []);
      enlarging.get(key)!.push({ index, raw });
    } else if (small && eligible(raw.width, raw.height, spec) && !enlargedElsewhere(raw, spec)) {
      const key = `${raw.width}x${raw.height}x${raw.channels}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key)!.push({ index, raw });
    } else {
      slow.push(toModelImage(raw ?? (source as Uint8Array), spec, maxInputPixels).then((img) => void (out[index] = img), (err: ImageDecodeError) => void (out[index] = err)));
    }
  });
  for (const members of enlarging.values()) {
    slow.push(
      enlargeGroup(members.map((m) => m.raw), spec, options.deferEnlarging ?? false).then(
        (images) => members.forEach((m, k) => (out[m.index] = images[k])),
        (err: Error) => members.forEach((m) => (out[m.index] = new ImageDecodeError(`could not resize: ${err.message}`))),
      ),
    );
  }
  for (const members of groups.values()) {
    slow.push(
      resizeGroup(members.map((m) => m.raw), spec).then(
        (images) => members.forEach((m, k) => (out[m.index] = images[k])),
        (err: Error) => members.forEach((m) => (out[m.index] = new ImageDecodeError(`could not resize: ${err.message}`))),
      ),
    );
  }
  await Promise.all(slow);
  return out;
}

/**
 * The 8-bit images a pair's models need: the classifier's, and the VAE's own when its size, channels or
 * padding differ (absent when the VAE sees the classifier's image, or there is no VAE).
 */
export interface PairImageSpecs {
  classifier: InputSpec;
  vae?: InputSpec;
}

/** `vae` only where the VAE's image differs from the classifier's. */
export function pairImageSpecs(inputs: { classifier: InputSpec; vae?: InputSpec }): PairImageSpecs {
  const c = inputs.classifier;
  const v = inputs.vae;
  const same = !v || (v.width === c.width && v.height === c.height && v.channels === c.channels && (v.padding ?? 0) === (c.padding ?? 0));
  return same ? { classifier: c } : { classifier: c, vae: v };
}

/** Large images decoded at the same time on the two-model path (each holds its full-size pixels meanwhile). */
const LARGE_DECODES_AT_ONCE = 2;

/**
 * Preprocesses a batch for both models of a pair. With one image size this is `prepareBatch`. With two, each
 * file is decoded once: small PNGs and in-memory pixels go through `prepareBatch` once per model (the atlas
 * resize and exact copies included); anything else is decoded by sharp into full-size pixels, from which
 * both models' images are resized, a couple of images at a time so that full-size pixels never pile up.
 * Each result carries the VAE's image as `forVae`; a failure for either model fails the image, in place.
 */
export async function preparePairBatch(sources: (RawImage | Uint8Array | Error)[], specs: PairImageSpecs, maxInputPixels: number, options: PrepareOptions = {}): Promise<Prepared[]> {
  const vaeSpec = specs.vae;
  if (!vaeSpec) return prepareBatch(sources, specs.classifier, maxInputPixels, options);
  const out: Prepared[] = new Array(sources.length);
  const small: { index: number; raw: RawImage }[] = [];
  const large: { index: number; source: RawImage | Uint8Array }[] = [];
  sources.forEach((source, index) => {
    if (source instanceof Error) out[index] = source instanceof ImageDecodeError ? source : new ImageDecodeError(source.message);
    else {
      const raw = source instanceof Uint8Array ? decodeSmallPng(source) : source;
      if (raw && raw.width * raw.height <= Math.min(FAST_PNG_MAX_PIXELS, maxInputPixels)) small.push({ index, raw });
      else large.push({ index, source });
    }
  });
  // The classifier's image is its own (made for this file): the VAE's goes on it, not on a copy (spreading it
  // would read `pixels`, which an image enlarged later does not have, and which a channel-planar one makes).
  const join = (c: Prepared, v: Prepared): Prepared => (c instanceof Error ? c : v instanceof Error ? v : Object.assign(c, { forVae: v }));
  const both = async (raw: RawImage | Uint8Array) => Promise.all([toModelImage(raw, specs.classifier, maxInputPixels), toModelImage(raw, vaeSpec, maxInputPixels)]);
  const work: Promise<void>[] = [];
  if (small.length) {
    const raws = small.map((s) => s.raw);
    work.push(
      Promise.all([prepareBatch(raws, specs.classifier, maxInputPixels, options), prepareBatch(raws, vaeSpec, maxInputPixels)]).then(([c, v]) => small.forEach((s, k) => (out[s.index] = join(c[k], v[k])))),
    );
  }
  const rgb = specs.classifier.channels === 3 || vaeSpec.channels === 3;
  const background = specs.classifier.background ?? '#ffffff';
  let next = 0;
  const worker = async () => {
    while (next < large.length) {
      const { index, source } = large[next++];
      try {
        const raw = source instanceof Uint8Array ? await decodeToRaw(source, { rgb, background, maxInputPixels }) : source;
        const [c, v] = await both(raw);
        out[index] = Object.assign(c, { forVae: v });
      } catch (err) {
        out[index] = err instanceof ImageDecodeError ? err : new ImageDecodeError((err as Error).message);
      }
    }
  };
  for (let k = 0; k < Math.min(LARGE_DECODES_AT_ONCE, large.length); k++) work.push(worker());
  await Promise.all(work);
  return out;
}
