/**
 * The 2×2 average pooling of the earlier-layer test done in JavaScript, for ONNX classifiers whose opset (below
 * 11) cannot express it in the graph for any input size (onnxGraph.ts exposeLayerPools): the raw activations are
 * exposed as outputs and this runner pools them as they come back, so the rest of OOD Lens sees the same
 * [batch, 4·C] outputs, quadrant-major, as the graph edit gives. Old opsets are rare; these models are small
 * (MobileNet-era), and their last conv blocks' activations are a few thousand values per image.
 */
import { DelegatingRunner } from '../backends/delegatingRunner';
import { type FloatTensor, ModelError, type ModelRunner, type TensorInfo } from '../backends/types';

/**
 * [B, C, H, W] → [B, 4·C]: the means of the four quadrants (top-left, top-right, bottom-left, bottom-right), each
 * C channels; an odd side's middle row (column) goes to the second half, and a side of 1 is read whole by both.
 */
export function poolQuadrantsNchw(t: FloatTensor, source: string, tensor: string): FloatTensor {
  if (t.dims.length !== 4) throw new ModelError(source, `tensor "${tensor}" has shape [${t.dims.join(', ')}], not [batch, channels, height, width]; the earlier-layer features need a conv block's output`);
  const [b, c, h, w] = t.dims;
  const halves = (size: number): [number, number][] => {
    const half = Math.floor(size / 2);
    return half === 0 ? [[0, size], [0, size]] : [[0, half], [half, size]];
  };
  const quadrants = halves(h).flatMap((rows) => halves(w).map((cols) => [rows, cols] as const));
  const out = new Float32Array(b * 4 * c);
  for (let n = 0; n < b; n++) {
    quadrants.forEach(([[y0, y1], [x0, x1]], q) => {
      const area = (y1 - y0) * (x1 - x0);
      for (let ch = 0; ch < c; ch++) {
        const plane = (n * c + ch) * h * w;
        let sum = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += t.data[plane + y * w + x];
        out[n * 4 * c + q * c + ch] = sum / area;
      }
    });
  }
  return { data: out, dims: [b, 4 * c] };
}

/** Shows each exposed activation `tensor` as its pooled output `output`, pooled on the way back. */
export class JsPooledLayersRunner extends DelegatingRunner {
  readonly outputs: TensorInfo[];
  readonly layerPools: { tensor: string; output: string }[];
  private readonly sourceOf = new Map<string, string>();
  constructor(inner: ModelRunner, layers: { tensor: string; output: string }[]) {
    super(inner);
    this.layerPools = layers;
    for (const l of layers) this.sourceOf.set(l.output, l.tensor);
    const raw = new Set(layers.map((l) => l.tensor));
    this.outputs = [...inner.outputs.filter((o) => !raw.has(o.name)), ...layers.map((l) => ({ name: l.output, shape: [null, null], dtype: 'float32' }))];
  }
  get inputs(): TensorInfo[] {
    return this.inner.inputs;
  }

  async run(feeds: Record<string, FloatTensor>, outputNames?: string[]): Promise<Record<string, FloatTensor>> {
    const wanted = outputNames ?? this.outputs.map((o) => o.name);
    const out = await this.inner.run(feeds, wanted.map((name) => this.sourceOf.get(name) ?? name));
    const result: Record<string, FloatTensor> = {};
    for (const name of wanted) {
      const tensor = this.sourceOf.get(name);
      result[name] = tensor === undefined ? out[name] : poolQuadrantsNchw(out[tensor], this.source, tensor);
    }
    return result;
  }
}
