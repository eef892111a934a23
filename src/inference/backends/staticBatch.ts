/**
 * Models exported with a fixed batch size (ONNX-zoo style `[1, 1, 28, 28]`, or a TF.js model with a fixed
 * batch_input_shape) run any batch: the batch is cut into chunks of the model's size along the first axis,
 * the last chunk padded with zeros, and the outputs joined again. Rewriting the model's batch axis instead is
 * not safe: such graphs often reshape with constant shapes that bake the batch size in.
 */
import { DelegatingRunner } from './delegatingRunner';
import { type FloatTensor, ModelError, type ModelRunner, type TensorInfo } from './types';

/** The fixed batch size every input of the model declares, or undefined when the batch is free. */
export function declaredStaticBatch(runner: Pick<ModelRunner, 'inputs'>): number | undefined {
  const sizes = new Set(runner.inputs.map((i) => (i.shape && i.shape.length > 0 ? i.shape[0] : null)));
  if (sizes.size !== 1) return undefined;
  const [size] = sizes;
  return typeof size === 'number' && size > 0 ? size : undefined;
}

const freeBatch = (infos: TensorInfo[]): TensorInfo[] => infos.map((t) => ({ ...t, shape: t.shape && t.shape.length ? [null, ...t.shape.slice(1)] : t.shape }));

export class StaticBatchRunner extends DelegatingRunner {
  readonly inputs: TensorInfo[];
  readonly outputs: TensorInfo[];
  /** The inputs as the model file declares them (with the fixed batch), for messages. */
  readonly declaredInputs: TensorInfo[];
  constructor(inner: ModelRunner, readonly staticBatch: number) {
    super(inner);
    this.declaredInputs = inner.inputs;
    this.inputs = freeBatch(inner.inputs);
    this.outputs = freeBatch(inner.outputs);
  }

  async run(feeds: Record<string, FloatTensor>, outputNames?: string[]): Promise<Record<string, FloatTensor>> {
    const entries = Object.entries(feeds);
    if (!entries.length) return this.inner.run(feeds, outputNames);
    const n = entries[0][1].dims[0];
    if (entries.some(([, t]) => t.dims[0] !== n)) throw new ModelError(this.source, 'every input of one run needs the same batch size');
    const b = this.staticBatch;
    if (n === b) return this.inner.run(feeds, outputNames);
    const parts: Record<string, FloatTensor>[] = [];
    for (let start = 0; start < n; start += b) {
      const take = Math.min(b, n - start);
      const chunk: Record<string, FloatTensor> = {};
      for (const [name, t] of entries) {
        const per = t.data.length / n;
        // A full chunk is a view (no copy); the last one is padded with zeros up to the model's batch.
        const data = take === b ? t.data.subarray(start * per, (start + b) * per) : padded(t.data, start * per, take * per, b * per);
        chunk[name] = { data, dims: [b, ...t.dims.slice(1)] };
      }
      const out = await this.inner.run(chunk, outputNames);
      parts.push(take === b ? out : trim(out, take, b));
    }
    return join(parts);
  }
}

function padded(data: Float32Array, offset: number, length: number, size: number): Float32Array {
  const out = new Float32Array(size);
  out.set(data.subarray(offset, offset + length));
  return out;
}

function trim(out: Record<string, FloatTensor>, keep: number, batch: number): Record<string, FloatTensor> {
  const result: Record<string, FloatTensor> = {};
  for (const [name, t] of Object.entries(out)) {
    const per = t.data.length / batch;
    result[name] = { data: t.data.subarray(0, keep * per), dims: [keep, ...t.dims.slice(1)] };
  }
  return result;
}

function join(parts: Record<string, FloatTensor>[]): Record<string, FloatTensor> {
  const result: Record<string, FloatTensor> = {};
  for (const name of Object.keys(parts[0])) {
    const tensors = parts.map((p) => p[name]);
    const data = new Float32Array(tensors.reduce((a, t) => a + t.data.length, 0));
    let offset = 0;
    for (const t of tensors) {
      data.set(t.data, offset);
      offset += t.data.length;
    }
    result[name] = { data, dims: [tensors.reduce((a, t) => a + t.dims[0], 0), ...tensors[0].dims.slice(1)] };
  }
  return result;
}

/** The runner itself when its batch is free, else a wrapper that runs any batch through the fixed size. */
export function withAnyBatch(runner: ModelRunner): ModelRunner {
  const b = declaredStaticBatch(runner);
  return b === undefined ? runner : new StaticBatchRunner(runner, b);
}
