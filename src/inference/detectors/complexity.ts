/**
 * Input complexity L(x) (Serrà et al., ICLR 2020): the length in bits of the model's input under a generic
 * lossless compressor, one per pair (`complexity.compressor` in the manifest; the calibration records it):
 *  - `png` (default): PNG at maximum compression — zlib level 9 with adaptive per-row filtering — as pngjs
 *    writes it, computed in-process (pngjs's row filters, Node's native zlib); PNG is the compressor Serrà et
 *    al. found to work well on small images, and it costs ~35 µs per 32×32 image.
 *  - `webp-lossless`: WebP lossless (libwebp as WebAssembly, @jsquash/webp; method 4, quality 100, exact):
 *    a stronger generic compressor — 30% shorter codes on MNIST, 14% on FashionMNIST — that ranks simple
 *    images more faithfully (AUROC of −L(x), FashionMNIST vs MNIST test: 0.993 against PNG's 0.969), at
 *    ~300–550 µs per image. The built-in FashionMNIST pair uses it: there S(x) carries the verdict.
 * Fixed header costs shift every score equally and so leave p-values unchanged.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { filterRows } from '../image/pngRows';

/**
 * The 8-bit image whose complexity is measured (preprocess.ts's ModelImage has this shape; declared here so
 * that this module does not import the preprocessing one, which imports the manifest, which imports this).
 */
interface PixelImage {
  width: number;
  height: number;
  channels: 1 | 3;
  /** Interleaved (HWC) pixel values 0..255. */
  pixels: Uint8Array;
}

export type Compressor = 'png' | 'webp-lossless';

/** In words, for reports. */
export const COMPRESSORS: Record<Compressor, string> = {
  png: 'PNG (zlib level 9, adaptive row filters) via pngjs',
  'webp-lossless': 'WebP lossless (libwebp 1.x as WebAssembly via @jsquash/webp; method 4, quality 100, exact)',
};

const COLOUR_TYPE = { 1: 0, 3: 2 } as const;

function pngOptions(channels: 1 | 3) {
  const colorType = COLOUR_TYPE[channels];
  return { colorType, inputColorType: colorType, inputHasAlpha: false, bitDepth: 8, deflateLevel: 9, filterType: -1 } as const;
}

/** The PNG file itself, as pngjs writes it; complexityBits is its length in bits (a test holds them equal). */
export function complexityPng(image: PixelImage): Buffer {
  return PNG.sync.write({ width: image.width, height: image.height, data: Buffer.from(image.pixels.buffer, image.pixels.byteOffset, image.pixels.byteLength) } as PNG, pngOptions(image.channels));
}

/**
 * Bytes of a PNG that pngjs writes besides the compressed pixels: signature (8), IHDR (25), the one IDAT
 * chunk's length, type and CRC (12), IEND (12). No other chunks are written for these options.
 */
const PNG_OVERHEAD_BYTES = 57;

// pngjs's packer, for its deflate options only (level 9, Z_RLE); the rows are filtered by `filterRows`.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Packer = require('pngjs/lib/packer') as new (options: object) => { getDeflateOptions(): { chunkSize: number; level: number; strategy: number } };
const DEFLATE_OPTIONS = new Packer(pngOptions(1)).getDeflateOptions();

/** L(x) in bits under `compressor`; `webp-lossless` needs `loadCompressor` once per thread first. */
export function complexityBits(image: PixelImage, compressor: Compressor = 'png'): number {
  return compressor === 'png' ? pngBits(image) : webpBits(image);
}

function pngBits(image: PixelImage): number {
  const filtered = filterRows(image.pixels, image.width, image.height, image.channels);
  // A small output buffer: the deflated image is about its filtered size; zlib grows it when needed.
  const options = { ...DEFLATE_OPTIONS, chunkSize: Math.max(1024, Math.min(filtered.length + 64, 64 * 1024)) };
  return 8 * (PNG_OVERHEAD_BYTES + deflateSync(filtered, options).length);
}

/** S(x) = −log₂ p(x) − L(x), with −log₂ p(x) bounded by −ELBO / ln 2. Higher = more out-of-distribution. */
export function complexityCorrectedScore(elboNats: number, bits: number): number {
  return -elboNats / Math.LN2 - bits;
}

// ---------------------------------------------------------------------------------------------------------
// WebP lossless through libwebp compiled to WebAssembly. The non-SIMD build is loaded explicitly (not the
// package's feature detection), so that every machine runs the same code and gets the same lengths.

interface WebpModule {
  encode(data: Uint8ClampedArray, width: number, height: number, options: Record<string, number>): Uint8Array | null;
}

let webp: WebpModule | undefined;
let webpLoading: Promise<void> | undefined;

/** libwebp's configuration: the package's defaults (its meta.js) with lossless, maximum quality, method 4. */
let webpOptions: Record<string, number> | undefined;

/** Prepares `compressor` on this thread (PNG needs nothing). Safe to call repeatedly. */
export function loadCompressor(compressor: Compressor): Promise<void> {
  if (compressor === 'png' || webp) return Promise.resolve();
  webpLoading ??= (async () => {
    const root = dirname(require.resolve('@jsquash/webp/package.json'));
    const dir = join(root, 'codec', 'enc');
    const wasm = await WebAssembly.compile(readFileSync(join(dir, 'webp_enc.wasm')));
    const { defaultOptions } = (await import(pathToFileURL(join(root, 'meta.js')).href)) as { defaultOptions: Record<string, number> };
    const factory = (await import(pathToFileURL(join(dir, 'webp_enc.js')).href)).default as (options: object) => Promise<WebpModule>;
    webpOptions = { ...defaultOptions, lossless: 1, quality: 100, method: 4, exact: 1 };
    webp = await factory({
      noInitialRun: true,
      instantiateWasm: (imports: WebAssembly.Imports, done: (instance: WebAssembly.Instance) => void) => {
        const instance = new WebAssembly.Instance(wasm, imports);
        done(instance);
        return instance.exports;
      },
    });
  })().catch((err: Error) => {
    webpLoading = undefined;
    throw new Error(`cannot load the WebP encoder (@jsquash/webp): ${err.message}`);
  });
  return webpLoading;
}

function webpBits(image: PixelImage): number {
  if (!webp || !webpOptions) throw new Error('the WebP encoder is not loaded (call loadCompressor first)');
  const { width, height, channels, pixels } = image;
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    const q = p * channels;
    rgba[4 * p] = pixels[q];
    rgba[4 * p + 1] = pixels[channels === 1 ? q : q + 1];
    rgba[4 * p + 2] = pixels[channels === 1 ? q : q + 2];
    rgba[4 * p + 3] = 255;
  }
  const out = webp.encode(rgba, width, height, webpOptions);
  if (!out) throw new Error(`WebP could not encode a ${width}×${height} image`);
  return out.byteLength * 8;
}
