/**
 * sharp, loaded on its first call rather than when the bundle loads: requiring sharp (libvips) takes
 * ~100–150 ms of a one-image CLI run, and a run whose images all take the in-process PNG path (the built-in
 * MNIST pair's 28×28 PNGs, image/fastpath.ts) never calls it. Only the call is forwarded, not sharp's static
 * members (`sharp.cache`, `sharp.concurrency`…): code that needs those imports 'sharp' itself.
 */
import type SharpModule from 'sharp';

type Sharp = typeof SharpModule;
let loaded: Sharp | undefined;

function sharpOnFirstCall(this: unknown, ...args: unknown[]): ReturnType<Sharp> {
  loaded ??= require('sharp') as Sharp;
  return (loaded as (...a: unknown[]) => ReturnType<Sharp>)(...args);
}

const sharp = sharpOnFirstCall as unknown as Sharp;
export default sharp;
