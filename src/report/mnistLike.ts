/**
 * Makes a photo or drawing look like an MNIST digit, the way the MNIST set itself was made:
 * flatten transparency onto white paper, grey, crop to the object (trim the uniform border), invert
 * (MNIST is white ink on black), fit the longer side into 20 px and pad to 28×28 with black.
 */
import sharp from '../inference/io/lazySharp';

export const MNIST_LIKE_STEPS = 'flattened onto white, converted to grey, cropped to the bird (sharp trim of the uniform background), inverted to white-on-black, fitted into a 20×20 box (aspect ratio kept) and padded with 4 black pixels per side to 28×28 — as MNIST digits were size-normalised — then fed to the pair like any 28×28 MNIST image';

export async function mnistLike(input: Buffer | string): Promise<Buffer> {
  const trimmed = await sharp(input).flatten({ background: '#ffffff' }).greyscale().trim({ threshold: 20 }).negate({ alpha: false }).toBuffer();
  const box = await sharp(trimmed).resize(20, 20, { fit: 'contain', background: '#000000', kernel: 'lanczos3' }).greyscale().toBuffer();
  return sharp(box).extend({ top: 4, bottom: 4, left: 4, right: 4, background: '#000000' }).greyscale().png().toBuffer();
}

export const FASHION_MNIST_LIKE_STEPS = 'flattened onto white, converted to grey, cropped to the bird, inverted to white-on-black and fitted into 28×28 (aspect ratio kept, black margins) — as FashionMNIST product photos were processed';

/** Makes a photo or drawing look like a FashionMNIST item: trimmed, inverted, filling the 28×28 field. */
export async function fashionMnistLike(input: Buffer | string): Promise<Buffer> {
  const trimmed = await sharp(input).flatten({ background: '#ffffff' }).greyscale().trim({ threshold: 20 }).negate({ alpha: false }).toBuffer();
  return sharp(trimmed).resize(28, 28, { fit: 'contain', background: '#000000', kernel: 'lanczos3' }).greyscale().png().toBuffer();
}
