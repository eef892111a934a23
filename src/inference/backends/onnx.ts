/** onnxruntime-node backend: CUDA when asked for (or available under `auto`), CPU otherwise. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import type * as OrtTypes from 'onnxruntime-node';
import { BoundedReadError, checkFileSync, LIMITS } from '../io/boundedRead';
import { checkFeed, type FloatTensor, type LoadOptions, ModelError, type ModelRunner, type TensorInfo } from './types';

export type Ort = typeof OrtTypes;
let ortModule: Ort | undefined;
/** onnxruntime-node, loaded on first use (for graphs run outside a ModelRunner: image/onnxResize.ts). */
export function ort(): Ort {
  if (!ortModule) {
    prepareOrtEnvironment();
    // Loaded lazily: the native addon is only needed when an ONNX pair is used.
    ortModule = require('onnxruntime-node') as Ort;
  }
  return ortModule;
}

/**
 * onnxruntime gathers platform telemetry when it first starts, matching std::regex patterns against strings such
 * as the process's command line; GCC's regex recurses per character, so a long command line (`ood-lens score`
 * with thousands of image paths) overflows the stack: a segfault (measured here: fine at 28,000 characters,
 * crashed at 80,000; vespa-engine/vespa#37786). The variable skips that code. Only the main thread's process.env
 * reaches the real environment: it is set here before this thread loads onnxruntime and before it starts a worker
 * thread that may (preprocessPool.ts `startWorker`), whichever comes first.
 */
export function prepareOrtEnvironment(): void {
  if (isMainThread) process.env.ORT_DISABLE_TELEMETRY ??= '1';
}

function toInfo(meta: readonly OrtTypes.InferenceSession.ValueMetadata[]): TensorInfo[] {
  return meta.map((m) => {
    if (!m.isTensor) return { name: m.name, shape: null, dtype: 'non-tensor' };
    return { name: m.name, dtype: m.type, shape: m.shape.map((d) => (typeof d === 'number' && d > 0 ? d : null)) };
  });
}

/**
 * The float feed as the input's own element type: a uint8 image input gets the pixel values (the pair feeds it
 * range [0, 255]), rounded and clamped; integer and boolean constants their value.
 */
function typedTensor(Tensor: Ort['Tensor'], dtype: string, t: FloatTensor): OrtTypes.Tensor {
  const round = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, Math.round(v)));
  switch (dtype) {
    case 'uint8':
      return new Tensor('uint8', Uint8Array.from(t.data, (v) => round(v, 0, 255)), t.dims);
    case 'int8':
      return new Tensor('int8', Int8Array.from(t.data, (v) => round(v, -128, 127)), t.dims);
    case 'int32':
      return new Tensor('int32', Int32Array.from(t.data, (v) => round(v, -(2 ** 31), 2 ** 31 - 1)), t.dims);
    case 'int64':
      return new Tensor('int64', BigInt64Array.from(t.data, (v) => BigInt(Math.round(v))), t.dims);
    case 'bool':
      return new Tensor('bool', Uint8Array.from(t.data, (v) => (v ? 1 : 0)), t.dims);
    default:
      return new Tensor('float32', t.data, t.dims);
  }
}

class OnnxRunner implements ModelRunner {
  readonly backend = 'onnxruntime-node';
  readonly inputs: TensorInfo[];
  readonly outputs: TensorInfo[];
  constructor(readonly source: string, private readonly session: OrtTypes.InferenceSession, readonly provider: string) {
    this.inputs = toInfo(session.inputMetadata);
    this.outputs = toInfo(session.outputMetadata);
  }

  async run(feeds: Record<string, FloatTensor>, outputNames?: string[]): Promise<Record<string, FloatTensor>> {
    const { Tensor } = ort();
    const ortFeeds: Record<string, OrtTypes.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      checkFeed(this, name, t);
      ortFeeds[name] = typedTensor(Tensor, this.inputs.find((i) => i.name === name)?.dtype ?? 'float32', t);
    }
    for (const name of outputNames ?? []) {
      if (!this.outputs.some((o) => o.name === name)) {
        throw new ModelError(this.source, `has no output named "${name}" (outputs: ${this.outputs.map((o) => o.name).join(', ')})`);
      }
    }
    let result: OrtTypes.InferenceSession.ReturnType;
    try {
      result = outputNames ? await this.session.run(ortFeeds, outputNames) : await this.session.run(ortFeeds);
    } catch (err) {
      throw new ModelError(this.source, `inference failed: ${(err as Error).message}`);
    }
    const out: Record<string, FloatTensor> = {};
    for (const [name, tensor] of Object.entries(result)) {
      if (tensor.type !== 'float32') throw new ModelError(this.source, `output "${name}" is ${tensor.type}, expected float32`);
      out[name] = { data: tensor.data as Float32Array, dims: tensor.dims.slice() };
    }
    return out;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** True when this onnxruntime-node install carries the CUDA provider libraries. */
export function cudaProviderInstalled(): boolean {
  try {
    // On Linux the CUDA provider is a library of its own that onnxruntime-node's install script downloads: its file
    // answers without loading onnxruntime (~20 ms of the CLI's start, before the scoring shards can be started).
    if (process.platform === 'linux') return cudaLibraryPresent();
    const backends = (ort() as unknown as { listSupportedBackends?: () => { name: string; bundled: boolean }[] }).listSupportedBackends?.() ?? [];
    const cuda = backends.find((b) => b.name === 'cuda');
    if (!cuda) return false;
    return cuda.bundled || cudaLibraryPresent();
  } catch {
    return false;
  }
}

/** Whether onnxruntime-node's CUDA provider library is in its native-library folder for this platform. */
function cudaLibraryPresent(): boolean {
  return existsSync(join(dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so'));
}

/** Loads an ONNX model from `path`, or from `bytes` (a graph edited in memory; `path` then names it in messages). */
export async function loadOnnx(path: string, options: LoadOptions, bytes?: Uint8Array): Promise<ModelRunner> {
  // A named pipe would block onnxruntime's read forever, a device never ends: regular files only, size checked.
  if (!bytes) {
    try {
      checkFileSync(path, { maxBytes: LIMITS.modelBytes, what: 'model file' });
    } catch (err) {
      throw new ModelError(path, err instanceof BoundedReadError ? err.reason : (err as Error).message);
    }
  }
  const { InferenceSession } = ort();
  const base: OrtTypes.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    ...(options.lowMemory ? { enableMemPattern: false } : {}),
    ...(options.threads ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
    // Idle intra-op threads sleep instead of spinning, so that they leave the core to other work (the
    // preprocessing worker) between and within batches.
    ...(options.spinning === false ? { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } } : {}),
  };
  const tryCuda = options.provider === 'cuda' || (options.provider === 'auto' && cudaProviderInstalled());
  if (tryCuda) {
    try {
      const session = await (bytes ? InferenceSession.create(bytes, { ...base, executionProviders: ['cuda'] }) : InferenceSession.create(path, { ...base, executionProviders: ['cuda'] }));
      return new OnnxRunner(path, session, 'cuda');
    } catch (err) {
      if (options.provider === 'cuda') {
        throw new ModelError(path, `the CUDA execution provider could not start (${firstLine(err)}). Install onnxruntime-node's CUDA binaries (see README, "GPU (CUDA)") or use --provider cpu`);
      }
    }
  }
  try {
    const session = await (bytes ? InferenceSession.create(bytes, { ...base, executionProviders: ['cpu'] }) : InferenceSession.create(path, { ...base, executionProviders: ['cpu'] }));
    return new OnnxRunner(path, session, 'cpu');
  } catch (err) {
    throw new ModelError(path, `not a loadable ONNX model: ${firstLine(err)}`);
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 300);
}
