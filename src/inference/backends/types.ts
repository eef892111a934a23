/** One interface for every runtime (onnxruntime-node, TensorFlow.js): float tensors in, float tensors out. */

export type ExecutionProviderSetting = 'auto' | 'cuda' | 'cpu';

export interface FloatTensor {
  data: Float32Array;
  dims: number[];
}

export interface TensorInfo {
  name: string;
  /** Dimension sizes; null (or a symbolic name) where the model leaves the size free, such as the batch. */
  shape: (number | null)[] | null;
  dtype: string;
}

export interface ModelRunner {
  /** Where the model came from, for messages. */
  readonly source: string;
  /** Which runtime and execution provider actually runs it, e.g. "onnxruntime CPU", "tfjs wasm". */
  readonly backend: string;
  readonly provider: string;
  readonly inputs: TensorInfo[];
  readonly outputs: TensorInfo[];
  run(feeds: Record<string, FloatTensor>, outputNames?: string[]): Promise<Record<string, FloatTensor>>;
  dispose(): Promise<void>;
  /**
   * TensorFlow.js layers models loaded with `layerPools`: per exposed layer, the layer read and the output
   * holding its activations average-pooled to 2×2 ([batch, 4·C], quadrant-major).
   */
  readonly layerPools?: { tensor: string; output: string }[];
}

export interface LoadOptions {
  provider: ExecutionProviderSetting;
  /** Threads for one model's operators (onnxruntime intra-op); 0 = runtime default. */
  threads?: number;
  /** false: idle runtime threads sleep rather than spin (onnxruntime allow_spinning = 0). */
  spinning?: boolean;
  /**
   * onnxruntime (CPU): no memory-pattern planning (one block for all of a run's activations), so a session's
   * arena holds only the tensors a run has live at once. Asked for by the scoring shards. Measured on the built-in
   * MNIST pair, 100,000 PNGs: with arena and patterns (the default) 394–398 MB peak RSS; with neither 383–455 MB
   * (eight runs: every run's activations, ~57 MB a batch of 64 in ~20 mallocs of 0.25–8 MB, went through glibc,
   * whose per-thread heap then held ~63 MB a shard, fragmented: its mmap threshold rises to the largest block
   * freed); with the arena only 341–357 MB, 2–5% faster. The 224×224 MobileNet pair, 2,000 PNGs, at the same
   * speed: 489–500 → 448–459 MB; with its VAE 617–632 → 551–562 MB. Not on the engine's own thread: there its
   * mallocs share glibc's main arena with V8's, and scoring 10,000 images in-process (a 1,000,000-row manifest)
   * grew the process by ~70 MB.
   */
  lowMemory?: boolean;
  /** TensorFlow.js layers models: inner layers whose outputs become extra model outputs, named after the layer. */
  outputLayers?: string[];
  /**
   * TensorFlow.js layers models: conv-block activation layers whose outputs, average-pooled to 2×2 on the
   * backend, become extra outputs (`ModelRunner.layerPools`) — these layers by name, or the last `last` conv-block
   * activations the model has (the earlier-layer test).
   */
  layerPools?: string[] | { last: number };
  /** Inputs besides the image fed the same number on every run (`classifier.constants`, fit's `--const`). */
  constants?: Record<string, number>;
}

/**
 * Input element types OOD Lens can feed: float32, and (ONNX) integer inputs converted from the float feed, so
 * that a `uint8` image input gets the 8-bit pixels and an integer constant its value.
 */
export const FEEDABLE_DTYPES = /^(float(32)?|uint8|int8|int32|int64|bool)$/;

export class ModelError extends Error {
  constructor(readonly modelPath: string, message: string) {
    super(`${modelPath}: ${message}`);
    this.name = 'ModelError';
  }
}

/**
 * Checks a feed against a model's declared input before it reaches native code, so that a mismatched
 * model gives a readable error instead of an abort inside the runtime.
 */
export function checkFeed(runner: Pick<ModelRunner, 'source' | 'inputs'>, name: string, tensor: FloatTensor): void {
  const info = runner.inputs.find((i) => i.name === name);
  if (!info) {
    throw new ModelError(runner.source, `has no input named "${name}" (inputs: ${runner.inputs.map((i) => i.name).join(', ') || 'none'})`);
  }
  if (info.dtype && !FEEDABLE_DTYPES.test(info.dtype)) {
    throw new ModelError(runner.source, `input "${name}" is ${info.dtype}; OOD Lens feeds float32 images (uint8 images get the 8-bit pixels)`);
  }
  if (info.shape) {
    const want = info.shape;
    const got = tensor.dims;
    const fmt = (s: (number | null)[]) => `[${s.map((d) => (d === null ? '?' : d)).join(', ')}]`;
    if (want.length !== got.length || want.some((d, i) => d !== null && d > 0 && d !== got[i])) {
      throw new ModelError(runner.source, `input "${name}" expects shape ${fmt(want)} but the pair manifest gives ${fmt(got)} (check the width, height, channels and layout the pair manifest gives this model: its own fields, else input.*)`);
    }
  }
  const expected = tensor.dims.reduce((a, b) => a * b, 1);
  if (tensor.data.length !== expected) throw new ModelError(runner.source, `feed "${name}" has ${tensor.data.length} values for shape [${tensor.dims.join(', ')}]`);
}
