/**
 * Input complexity L(x) (Serrà et al., ICLR 2020): the length in bits of the model's input under a generic
 * lossless compressor. We use PNG at maximum compression (zlib level 9, adaptive row filters) through
 * sharp: lossless, available everywhere the engine runs, and the compressor Serrà et al. found to work well
 * on small images; its fixed header cost shifts every score equally and so leaves p-values unchanged.
 */
import sharp from 'sharp';
import type { ModelImage } from './preprocess';

export const COMPRESSOR = 'PNG (zlib level 9, adaptive filtering) via sharp';

export async function complexityBits(image: ModelImage): Promise<number> {
  const png = await sharp(image.pixels, { raw: { width: image.width, height: image.height, channels: image.channels } })
    .png({ compressionLevel: 9, adaptiveFiltering: true, palette: false })
    .toBuffer();
  return png.length * 8;
}

/** S(x) = −log₂ p(x) − L(x), with −log₂ p(x) bounded by −ELBO / ln 2. Higher = more out-of-distribution. */
export function complexityCorrectedScore(elboNats: number, bits: number): number {
  return -elboNats / Math.LN2 - bits;
}
