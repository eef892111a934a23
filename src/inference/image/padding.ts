/** Padding an image into a model's input (a pure helper, shared by fit's feeding check and Create Pair). */
export const paddingFlag = (padding: number) => `--padding ${padding}`;

/**
 * The padding that would fit images of these sizes into a width × height input without resizing (every image
 * the same size, smaller by the same even amount on both axes), or null.
 */
export function paddingThatFits(sizes: { width: number; height: number }[], width: number, height: number): number | null {
  if (!sizes.length || sizes.some((s) => s.width !== sizes[0].width || s.height !== sizes[0].height)) return null;
  const dx = width - sizes[0].width;
  return dx > 0 && dx % 2 === 0 && height - sizes[0].height === dx ? dx / 2 : null;
}

/**
 * The colour to pad with: the images' own edge colour (the median of each channel over the outermost ring of
 * pixels of every image given, HWC 8-bit), as '#rrggbb'. Padding in another colour (the manifest's default
 * white around white-on-black FashionMNIST) draws a frame the model never saw.
 */
export function edgeColour(images: { width: number; height: number; channels: number; pixels: Uint8Array }[]): string {
  const values: number[][] = [[], [], []];
  for (const img of images) {
    const { width: w, height: h, channels: c, pixels } = img;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (y !== 0 && y !== h - 1 && x !== 0 && x !== w - 1) continue;
        for (let k = 0; k < 3; k++) values[k].push(pixels[(y * w + x) * c + Math.min(k, c - 1)]);
      }
    }
  }
  const median = (v: number[]) => (v.length ? [...v].sort((a, b) => a - b)[v.length >> 1] : 0);
  return '#' + values.map((v) => median(v).toString(16).padStart(2, '0')).join('');
}
