/**
 * The size, speed and epochs of the VAE `fit` trains (fit/vaeTraining.ts), as plain arithmetic: Create Pair
 * estimates the training time from these on the extension host without loading TensorFlow.js.
 */

/** The trained VAE's longest side: the classifier's input is scaled down to this, aspect kept. */
export const VAE_MAX_SIDE = 64;

/** The VAE's image: the classifier's input scaled down to at most 64 px on its long side, aspect kept. */
export function vaeImageSize(width: number, height: number): { width: number; height: number } {
  const scale = Math.min(1, VAE_MAX_SIDE / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/**
 * Training speed measured on the WebAssembly backend (2 busy cores): about 300 images/s at 784 pixels, falling
 * with the pixel count (both dense layers touching the pixels cost in proportion to it). Used to choose the
 * default number of epochs and to estimate the time before training starts.
 */
export function nominalImagesPerSecond(pixels: number): number {
  return (300 * 784) / Math.max(pixels, 64);
}

/** Default epochs: about `seconds` (default 300) of training at the nominal speed, 2 to 40 epochs. */
export function defaultVaeEpochs(trainImages: number, pixels: number, seconds = 300): number {
  const passes = seconds * nominalImagesPerSecond(pixels);
  return Math.max(2, Math.min(40, Math.round(passes / Math.max(1, trainImages))));
}

/** Estimated training seconds for `images` in-distribution images (fit trains on 45% of them, less 10% held out). */
export function estimatedVaeSeconds(images: number, width: number, height: number, channels: number): number {
  const size = vaeImageSize(width, height);
  const pixels = size.width * size.height * channels;
  const train = Math.max(1, Math.round(images * 0.45 * 0.9));
  return (defaultVaeEpochs(train, pixels) * train) / nominalImagesPerSecond(pixels);
}
