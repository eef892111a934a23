/**
 * Bilinear resizing with half-pixel centres (torchvision's and PIL's convention when enlarging; ONNX Resize's
 * `half_pixel`), written out by hand in doubles: the reference the pixels of `input.enlargeWith: "onnxruntime"`
 * are checked against.
 */
import type { RawImage } from '../src/inference/image/preprocess';

/** Every value before rounding (HWC), and rounded half to even to 8 bits. */
export function halfPixelBilinear(img: RawImage, outW: number, outH: number): { values: Float64Array; rounded: Uint8Array } {
  const { width: w, height: h, channels: c, data } = img;
  const values = new Float64Array(outW * outH * c);
  const coord = (o: number, scale: number, n: number) => {
    const x = Math.min(n - 1, Math.max(0, (o + 0.5) / scale - 0.5));
    const i0 = Math.floor(x);
    return { i0, i1: Math.min(n - 1, i0 + 1), f: x - i0 };
  };
  for (let y = 0; y < outH; y++) {
    const cy = coord(y, outH / h, h);
    for (let x = 0; x < outW; x++) {
      const cx = coord(x, outW / w, w);
      for (let k = 0; k < c; k++) {
        const p = (yy: number, xx: number) => data[(yy * w + xx) * c + k];
        const top = p(cy.i0, cx.i0) * (1 - cx.f) + p(cy.i0, cx.i1) * cx.f;
        const bottom = p(cy.i1, cx.i0) * (1 - cx.f) + p(cy.i1, cx.i1) * cx.f;
        values[(y * outW + x) * c + k] = top * (1 - cy.f) + bottom * cy.f;
      }
    }
  }
  const halfEven = (v: number) => (Math.abs(v - Math.trunc(v)) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v));
  return { values, rounded: Uint8Array.from(values, halfEven) };
}
