/**
 * TensorFlow.js backend for layers models (`model.json` from `model.save`/`tensorflowjs_converter
 * --output_format tfjs_layers_model`) and graph models (`tfjs_graph_model`).
 *
 * Runtime: @tensorflow/tfjs-node-gpu (CUDA) if it can be required, else @tensorflow/tfjs-node, else the
 * plain @tensorflow/tfjs package on its WebAssembly backend (always installed, no native addon; inference only).
 * Models are read from disk by our own IOHandler, so that nothing depends on a `file://` handler and every
 * weights path is checked to stay inside the model's folder.
 */
import { existsSync, statSync } from 'node:fs';
import { type BoundedReadError, LIMITS, linkedOutside, ReadBudget, readBoundedTextSync } from '../io/boundedRead';
import { jsonSyntaxProblem } from '../io/jsonText';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type * as TfTypes from '@tensorflow/tfjs';
import { checkFeed, type ExecutionProviderSetting, type FloatTensor, type LoadOptions, ModelError, type ModelRunner, type TensorInfo } from './types';

type Tf = typeof TfTypes;
export type TfjsFormat = 'tfjs-layers' | 'tfjs-graph';

export interface TfjsRuntime {
  /** The TensorFlow.js namespace in use (tfjs-node's when it is installed: same API, native kernels). */
  tf: Tf;
  /** tfjs backend name: "tensorflow" (tfjs-node / tfjs-node-gpu), "wasm" or "cpu". */
  backendName: string;
  /** For messages, e.g. "tensorflow.js (wasm)". */
  label: string;
  provider: 'cpu' | 'cuda';
}

// TensorFlow.js has one global engine with one active backend, so the runtime is chosen once per process.
let runtimePromise: Promise<TfjsRuntime> | undefined;

/** Requires an optional package; undefined when it is absent or its native part fails to load. */
function optionalRequire(name: string): unknown {
  try {
    // A variable module name keeps bundlers (esbuild) from trying to resolve packages we do not ship.
    return require(name);
  } catch {
    return undefined;
  }
}

const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm'];

/**
 * Folder holding the .wasm binaries: next to this file first (the build copies them into dist/ beside the
 * bundle), else the installed package's dist folder (running from source).
 */
function wasmDir(): string | undefined {
  const candidates = [__dirname];
  try {
    candidates.push(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')));
  } catch {
    // Not resolvable (bundled without node_modules): only __dirname can work.
  }
  return candidates.find((dir) => WASM_FILES.every((f) => existsSync(join(dir, f))));
}

async function initRuntime(allowGpu: boolean): Promise<TfjsRuntime> {
  const native: [string, 'cpu' | 'cuda'][] = [
    ...(allowGpu ? [['@tensorflow/tfjs-node-gpu', 'cuda'] as [string, 'cuda']] : []),
    ['@tensorflow/tfjs-node', 'cpu'],
  ];
  for (const [pkg, provider] of native) {
    const tf = optionalRequire(pkg) as Tf | undefined;
    if (tf && typeof tf.setBackend === 'function' && (await tf.setBackend('tensorflow').catch(() => false))) {
      await tf.ready();
      return { tf, backendName: 'tensorflow', label: `tensorflow.js (${pkg.replace('@tensorflow/tfjs-', '')})`, provider };
    }
  }
  const tf = require('@tensorflow/tfjs') as Tf;
  const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
  const dir = wasmDir();
  // Without the binaries the wasm backend would only abort noisily, so it is not even tried.
  if (dir) {
    // The wasm backend concatenates prefix + file name, so the prefix must end with a separator.
    wasm.setWasmPaths(dir.endsWith(sep) ? dir : dir + sep);
    if (await tf.setBackend('wasm').catch(() => false)) {
      await tf.ready();
      return { tf, backendName: 'wasm', label: 'tensorflow.js (wasm)', provider: 'cpu' };
    }
  }
  // Last resort (wasm binaries missing or unusable): the pure-JS kernels, correct but many times slower.
  await tf.setBackend('cpu');
  await tf.ready();
  return { tf, backendName: 'cpu', label: 'tensorflow.js (cpu, pure JavaScript)', provider: 'cpu' };
}

/**
 * The process-wide TensorFlow.js runtime, initialised on first use. `cpu` on the first call keeps
 * tfjs-node-gpu out; later calls reuse whatever the first one chose.
 */
export function tfjsRuntime(provider: ExecutionProviderSetting = 'auto'): Promise<TfjsRuntime> {
  if (!runtimePromise) {
    runtimePromise = initRuntime(provider !== 'cpu');
    runtimePromise.catch(() => {
      runtimePromise = undefined; // let a later call retry instead of caching the failure
    });
  }
  return runtimePromise;
}

// ---------------------------------------------------------------------------------------------------------
// Reading model.json and its weight files

type ModelJSON = TfTypes.io.ModelJSON;
type WeightsManifestEntry = TfTypes.io.WeightsManifestEntry;

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2, complex64: 8 };

function modelJsonPath(path: string): string {
  try {
    if (statSync(path).isDirectory()) return join(path, 'model.json');
  } catch {
    // Missing: reported by readModelJson with the path the user gave.
  }
  return path;
}

function readModelJson(file: string, format: TfjsFormat): ModelJSON {
  let text: string;
  try {
    text = readBoundedTextSync(file, { maxBytes: LIMITS.manifestBytes, what: 'model.json' });
  } catch (err) {
    const e = err as BoundedReadError;
    throw new ModelError(file, e.problem === 'not-found' ? 'model.json not found' : `cannot read model.json (${e.reason ?? e.message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ModelError(file, `is ${jsonSyntaxProblem(err, text)}`);
  }
  if (!json || typeof json !== 'object' || !('modelTopology' in json) || !(json as ModelJSON).modelTopology) {
    throw new ModelError(file, 'is not a TensorFlow.js model.json (no modelTopology)');
  }
  const model = json as ModelJSON;
  // Catch a layers/graph mix-up here: tfjs's own message for it is an obscure topology error.
  const want = format === 'tfjs-layers' ? 'layers-model' : 'graph-model';
  if (model.format && model.format !== want) {
    const other = model.format === 'graph-model' ? 'tfjs-graph' : model.format === 'layers-model' ? 'tfjs-layers' : undefined;
    throw new ModelError(file, `is a ${model.format} but the pair manifest says "${format}"${other ? ` (set format to "${other}")` : ''}`);
  }
  if (!Array.isArray(model.weightsManifest)) throw new ModelError(file, 'has no weightsManifest list');
  return model;
}

/** Resolves a weights manifest path, refusing anything that would read outside the model's folder. */
function weightFilePath(modelFile: string, dir: string, path: unknown): string {
  if (typeof path !== 'string' || path === '') throw new ModelError(modelFile, `weightsManifest has an invalid path ${JSON.stringify(path)}`);
  let decoded = path;
  try {
    decoded = decodeURIComponent(path); // manifest paths are URL-relative; "%2e%2e/" must not slip through
  } catch {
    // Not URL-encoded: keep the literal path.
  }
  for (const p of new Set([path, decoded])) {
    const target = resolve(dir, p);
    const rel = relative(dir, target);
    if (/^[a-z][a-z0-9+.-]+:/i.test(p) || isAbsolute(p) || rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
      throw new ModelError(modelFile, `weights path "${path}" points outside the model folder; TensorFlow.js weight files must sit beside model.json`);
    }
  }
  // And by real path: a symbolic link beside model.json must not read a file elsewhere (links into the
  // repository's git-annex or DVC object store, which keep large files that way, are followed).
  const literal = resolve(dir, path);
  const file = existsSync(literal) ? literal : resolve(dir, decoded);
  const outside = linkedOutside(dir, file);
  if (outside) throw new ModelError(modelFile, `weights path "${path}" is a symbolic link to ${outside}, outside the model folder; TensorFlow.js weight files must sit beside model.json`);
  return file;
}

function entryBytes(entry: WeightsManifestEntry): number | undefined {
  const count = (entry.shape ?? []).reduce((a, b) => a * b, 1);
  const per = DTYPE_BYTES[entry.quantization?.dtype ?? entry.dtype];
  return per === undefined ? undefined : count * per; // undefined: variable-size (string) weights
}

/** Reads every weight group, checking each group's files against the sizes its manifest declares. */
function readWeights(modelFile: string, manifest: TfTypes.io.WeightsManifestConfig): [WeightsManifestEntry[], ArrayBuffer] {
  const dir = dirname(modelFile);
  const specs: WeightsManifestEntry[] = [];
  const buffers: Buffer[] = [];
  // Every weight file is read once, regular files only, and all of them together stay under one limit
  // (a model.json listing one file 20,000 times must not read it 20,000 times).
  const budget = new ReadBudget(LIMITS.weightsTotalBytes, 'weights file');
  const listed = new Set<string>();
  for (const group of manifest) {
    if (!group || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new ModelError(modelFile, 'weightsManifest entries need "paths" and "weights" lists');
    }
    const files = group.paths.map((p) => weightFilePath(modelFile, dir, p));
    for (const f of files) {
      if (listed.has(f)) throw new ModelError(modelFile, `weightsManifest lists the weights file ${basename(f)} more than once`);
      listed.add(f);
    }
    const groupBuffers = files.map((f) => {
      try {
        return budget.readSync(f);
      } catch (err) {
        const e = err as BoundedReadError;
        throw new ModelError(f, e.problem === 'not-found' ? `weights file listed in ${basename(modelFile)} not found` : `cannot read weights file (${e.reason ?? e.message})`);
      }
    });
    const sizes = group.weights.map(entryBytes);
    if (sizes.every((s) => s !== undefined)) {
      const expected = (sizes as number[]).reduce((a, b) => a + b, 0);
      const actual = groupBuffers.reduce((a, b) => a + b.length, 0);
      if (expected !== actual) {
        const which = files.length === 1 ? files[0] : `${files.length} weight files (${group.paths.join(', ')})`;
        throw new ModelError(which, `has ${actual} bytes but ${basename(modelFile)} declares ${expected} bytes of weights (${actual < expected ? 'truncated' : 'from another model'}?)`);
      }
    }
    specs.push(...group.weights);
    buffers.push(...groupBuffers);
  }
  const all = Buffer.concat(buffers);
  // A standalone ArrayBuffer: Buffers from readFileSync may be views into a shared pool.
  return [specs, all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer];
}

// ---------------------------------------------------------------------------------------------------------
// The runner

const freeDims = (shape: readonly (number | null | undefined)[] | undefined): (number | null)[] | null =>
  shape ? shape.map((d) => (typeof d === 'number' && d > 0 ? d : null)) : null;

/**
 * Names for a layers model's outputs that tell them apart. Keras names an output after the layer that makes
 * it, so a model whose outputs come from sub-models (a VAE assembled from an `encoder` model with two
 * outputs and a `decoder`) has outputs named `decoder, encoder, encoder`. A repeated name becomes
 * `<sub-model>/<its output layer>` (`encoder/mu`, `encoder/logvar`), or `<name>:<index>` when that is not
 * unique either; the repeated name alone is then refused as ambiguous, never mapped to the first one.
 */
export function distinctOutputNames(names: readonly string[], innerNames: readonly (string | undefined)[]): string[] {
  const count = (xs: readonly string[], x: string) => xs.filter((y) => y === x).length;
  const first = names.map((name, i) => (count(names, name) === 1 ? name : innerNames[i] ? `${name}/${innerNames[i]}` : `${name}:${i}`));
  return first.map((name, i) => (count(first, name) === 1 ? name : `${names[i]}:${i}`));
}

/** Sub-model output layer behind each output of a layers model (for distinctOutputNames). */
function innerOutputNames(m: TfTypes.LayersModel): (string | undefined)[] {
  return m.outputs.map((t) => {
    const layer = t.sourceLayer as unknown as { outputNames?: string[] };
    return Array.isArray(layer.outputNames) ? layer.outputNames[t.outputTensorIndex ?? 0] : undefined;
  });
}

/**
 * Keras writes a Sequential model's input shape in ways tfjs-layers does not read: `build_input_shape` on the
 * model (Keras 2) or `batch_shape` on an InputLayer (Keras 3). Both are moved to where tfjs looks
 * (`batch_input_shape`), so such a model loads with its input instead of "no inputs".
 */
export function normaliseKerasTopology(topology: unknown): void {
  const t = topology as { class_name?: string; config?: { layers?: { class_name?: string; config?: Record<string, unknown> }[]; build_input_shape?: unknown } | unknown[] };
  const config = t?.config;
  if (!config || Array.isArray(config)) return;
  for (const layer of config.layers ?? []) {
    const c = layer?.config;
    if (c && c.batch_shape !== undefined && c.batch_input_shape === undefined) {
      c.batch_input_shape = c.batch_shape;
      delete c.batch_shape;
    }
  }
  const first = config.layers?.[0]?.config;
  if (t.class_name === 'Sequential' && first && first.batch_input_shape === undefined && Array.isArray(config.build_input_shape)) {
    first.batch_input_shape = config.build_input_shape;
  }
}

/**
 * The layer names of a layers model, read from its model.json without loading it (what `features.layer` and
 * `ood-lens fit --features` may name): the top-level layers, as the loaded model lists them.
 */
export function tfjsLayerNames(path: string): string[] {
  const file = modelJsonPath(path);
  const topology = readModelJson(file, 'tfjs-layers').modelTopology as { model_config?: unknown } & Record<string, unknown>;
  // Keras-converted files wrap the model's config in model_config; TF.js's own serializer does not.
  const model = (topology.model_config ?? topology) as { config?: { layers?: { name?: unknown; config?: { name?: unknown } }[] } | { name?: unknown; config?: { name?: unknown } }[] };
  const layers = Array.isArray(model.config) ? model.config : model.config?.layers ?? [];
  return layers.map((l) => l?.name ?? l?.config?.name).filter((n): n is string => typeof n === 'string');
}

/**
 * The layer whose output the model's last Dense layer reads — the penultimate features, as the input of an ONNX
 * model's last Gemm is — read from model.json without loading the model; null when it has no Dense layer or
 * the Dense layer reads the model input itself. Sequential: the layer before it; functional: its inbound layer.
 */
export function tfjsLastDenseInput(path: string): string | null {
  const file = modelJsonPath(path);
  const topology = readModelJson(file, 'tfjs-layers').modelTopology as { model_config?: unknown } & Record<string, unknown>;
  type LayerJson = { class_name?: string; name?: string; config?: { name?: string }; inbound_nodes?: unknown[] };
  const model = (topology.model_config ?? topology) as { class_name?: string; config?: { layers?: LayerJson[] } | LayerJson[] };
  const layers = Array.isArray(model.config) ? model.config : model.config?.layers ?? [];
  const nameOf = (l: LayerJson | undefined) => l?.name ?? l?.config?.name;
  const last = layers.map((l, i) => [l, i] as const).filter(([l]) => l?.class_name === 'Dense').at(-1);
  if (!last) return null;
  const [dense, index] = last;
  const inbound = dense.inbound_nodes;
  if (Array.isArray(inbound) && inbound.length) {
    // Keras 2 / TF.js: [[["layer", nodeIndex, tensorIndex, {}]]]; Keras 3: [{"args": [{"config": {"keras_history": ["layer", 0, 0]}}]}].
    const first = inbound[0] as unknown;
    const k2 = Array.isArray(first) && Array.isArray(first[0]) ? (first[0] as unknown[])[0] : undefined;
    const k3 = (first as { args?: { config?: { keras_history?: unknown[] } }[] })?.args?.[0]?.config?.keras_history?.[0];
    const from = typeof k2 === 'string' ? k2 : typeof k3 === 'string' ? k3 : null;
    const source = layers.find((l) => nameOf(l) === from);
    return from && source?.class_name !== 'InputLayer' ? from : null;
  }
  const before = layers[index - 1];
  return before && before.class_name !== 'InputLayer' ? nameOf(before) ?? null : null;
}

const NO_INPUT_SHAPE = 'declares no input shape (a Sequential model whose first layer has no batch_input_shape); save it with an input shape: tf.keras.Input(shape=…) as its first layer, or inputShape on the first layer in TensorFlow.js';

/** A Sequential topology that says nowhere what its input is (tfjs would fail with a bare "must get an inputShape"). */
function sequentialWithoutInputShape(topology: unknown): boolean {
  const t = topology as { class_name?: string; config?: { layers?: { config?: Record<string, unknown> }[] } | unknown[] };
  if (t?.class_name !== 'Sequential' || !t.config || Array.isArray(t.config)) return false;
  const first = t.config.layers?.[0]?.config;
  return !!first && first.batch_input_shape === undefined && first.input_shape === undefined;
}

const CONV_LAYERS = new Set(['Conv2D', 'DepthwiseConv2D', 'SeparableConv2D']);
/** Activation layers that end a conv block when a conv feeds them (through batch norm or a residual Add). */
const ACTIVATION_LAYERS = new Set(['Activation', 'ReLU', 'LeakyReLU', 'ELU', 'PReLU', 'ThresholdedReLU']);
const THROUGH_LAYERS = new Set(['BatchNormalization', 'Add']);
/** Activations that are no conv block's nonlinearity: none at all, or a classifier head's. */
const NOT_BLOCK_ACTIVATIONS = new Set(['linear', 'softmax']);

type TfLayer = TfTypes.layers.Layer;
const inboundLayers = (layer: TfLayer): TfLayer[] => (layer.inboundNodes ?? []).flatMap((n) => n.inboundLayers ?? []);
const layerActivation = (layer: TfLayer): unknown => (layer.getConfig() as { activation?: unknown }).activation;

/** A conv layer, or one whose input traces back through batch norm or a residual Add to one. */
function fedByConv(layer: TfLayer, seen = new Set<TfLayer>()): boolean {
  if (seen.has(layer)) return false;
  seen.add(layer);
  const kind = layer.getClassName();
  if (CONV_LAYERS.has(kind)) return true;
  return THROUGH_LAYERS.has(kind) && inboundLayers(layer).some((l) => fedByConv(l, seen));
}

/**
 * The conv blocks' activation layers of a layers model, in model order: a Conv2D (depthwise, separable) with a
 * nonlinear activation of its own, or an activation layer (Activation, ReLU, LeakyReLU, …) fed by a conv through
 * batch norm or an Add. Only rank-4 outputs count (a dense head's ReLU never does).
 */
export function tfjsConvActivationLayers(m: TfTypes.LayersModel): string[] {
  return m.layers
    .filter((layer) => {
      const shape = layer.outputShape;
      if (!Array.isArray(shape) || shape.length !== 4 || Array.isArray(shape[0])) return false;
      const kind = layer.getClassName();
      const activation = layerActivation(layer);
      if (CONV_LAYERS.has(kind)) return typeof activation === 'string' && !NOT_BLOCK_ACTIVATIONS.has(activation);
      if (!ACTIVATION_LAYERS.has(kind)) return false;
      if (kind === 'Activation' && (typeof activation !== 'string' || NOT_BLOCK_ACTIVATIONS.has(activation))) return false;
      return inboundLayers(layer).some((l) => fedByConv(l));
    })
    .map((layer) => layer.name);
}

/** Prefix of the pooled outputs' names: no Keras layer name has a slash. */
const POOL_PREFIX = 'ood_lens_pool/';

interface LayerPool {
  tensor: string;
  output: string;
  /** The layer's data format: channels last (NHWC, TF.js's default) unless it says channels_first. */
  channelsFirst: boolean;
  channels: number | null;
}

/**
 * 2×2 average pooling as four quadrant means, quadrant-major ([top-left C, top-right C, bottom-left C,
 * bottom-right C]) as the ONNX graph edit does it; an odd side's middle row (column) goes to the second half.
 */
function pool2x2(tf: Tf, x: TfTypes.Tensor, channelsFirst: boolean): TfTypes.Tensor {
  const [hAxis, wAxis] = channelsFirst ? [2, 3] : [1, 2];
  const [h, w] = [x.shape[hAxis], x.shape[wAxis]];
  const halves = (size: number) => {
    const half = Math.floor(size / 2);
    // A side of 1 has no halves: both quadrants read it whole.
    return half === 0 ? [[0, size], [0, size]] : [[0, half], [half, size - half]];
  };
  const quadrants = halves(h).flatMap(([y, hy]) =>
    halves(w).map(([x0, wx]) => {
      const begin = [0, 0, 0, 0];
      const size = [...x.shape];
      begin[hAxis] = y;
      size[hAxis] = hy;
      begin[wAxis] = x0;
      size[wAxis] = wx;
      return tf.mean(tf.slice(x, begin, size), [hAxis, wAxis]);
    }),
  );
  return tf.concat(quadrants, 1);
}

class TfjsRunner implements ModelRunner {
  readonly backend: string;
  readonly provider: string;
  readonly inputs: TensorInfo[];
  readonly outputs: TensorInfo[];
  private disposed = false;
  /** Layers models: position of each (distinct) output name in predict()'s result. */
  private readonly outputIndex = new Map<string, number>();
  /** Pooled outputs by name: their activations are the model's last outputs, pooled in run(). */
  private readonly pools = new Map<string, LayerPool>();
  readonly layerPools?: { tensor: string; output: string }[];

  constructor(
    readonly source: string,
    private readonly rt: TfjsRuntime,
    private readonly model: { kind: 'layers'; m: TfTypes.LayersModel } | { kind: 'graph'; m: TfTypes.GraphModel },
    pools: LayerPool[] = [],
  ) {
    this.backend = rt.label;
    this.provider = rt.provider;
    if (model.kind === 'layers') {
      const m = model.m;
      // A loaded Sequential model leaves inputNames/outputNames empty until its first predict(): its names
      // are then Keras's (`<first layer>_input`, the last layer's name).
      const inputNames = m.inputs.map((t, i) => m.inputNames[i] ?? (m.inputs.length === 1 ? `${m.layers[0].name}_input` : t.name));
      const outputNames = m.outputs.map((t, i) => m.outputNames[i] ?? (m.outputs.length === 1 ? m.layers[m.layers.length - 1].name : t.name));
      // The pooled layers' activations are the last outputs; the others keep the names they have without them.
      const plain = m.outputs.length - pools.length;
      const distinct = [...distinctOutputNames(outputNames.slice(0, plain), innerOutputNames(m).slice(0, plain)), ...pools.map((p) => p.output)];
      distinct.forEach((name, i) => this.outputIndex.set(name, i));
      for (const p of pools) this.pools.set(p.output, p);
      if (pools.length) this.layerPools = pools.map(({ tensor, output }) => ({ tensor, output }));
      this.inputs = inputNames.map((name, i) => ({ name, shape: freeDims(m.inputs[i].shape), dtype: m.inputs[i].dtype }));
      this.outputs = distinct.map((name, i) => {
        const pool = this.pools.get(name);
        return pool ? { name, shape: [null, pool.channels === null ? null : 4 * pool.channels], dtype: 'float32' } : { name, shape: freeDims(m.outputs[i].shape), dtype: m.outputs[i].dtype };
      });
    } else {
      const m = model.m;
      this.inputs = m.inputs.map((t) => ({ name: t.name, shape: freeDims(t.shape), dtype: t.dtype }));
      this.outputs = m.outputs.map((t) => ({ name: t.name, shape: freeDims(t.shape), dtype: t.dtype }));
    }
  }

  async run(feeds: Record<string, FloatTensor>, outputNames?: string[]): Promise<Record<string, FloatTensor>> {
    if (this.disposed) throw new ModelError(this.source, 'model was already disposed');
    for (const [name, t] of Object.entries(feeds)) checkFeed(this, name, t);
    for (const input of this.inputs) {
      if (!feeds[input.name]) throw new ModelError(this.source, `no feed for input "${input.name}"`);
    }
    for (const name of outputNames ?? []) {
      if (!this.outputs.some((o) => o.name === name)) {
        throw new ModelError(this.source, `has no output named "${name}" (outputs: ${this.outputs.map((o) => o.name).join(', ')})`);
      }
    }
    const wanted = outputNames ?? this.outputs.map((o) => o.name);
    const { tf } = this.rt;
    let results: TfTypes.Tensor[] = [];
    try {
      if (this.model.kind === 'layers') {
        const m = this.model.m;
        // tidy frees the input and every intermediate; only the returned outputs survive it.
        results = tf.tidy(() => {
          const xs = this.inputs.map(({ name }) => tf.tensor(feeds[name].data, feeds[name].dims, 'float32'));
          // One batch: predict() would otherwise split it into chunks of 32 and concatenate.
          const ys = m.predict(xs.length === 1 ? xs[0] : xs, { batchSize: Math.max(1, feeds[this.inputs[0].name].dims[0] ?? 1) });
          const all = Array.isArray(ys) ? ys : [ys];
          // Pooled here, on the backend: only [batch, 4·C] per layer is read back.
          return wanted.map((name) => {
            const y = all[this.outputIndex.get(name)!];
            const pool = this.pools.get(name);
            return pool ? pool2x2(tf, y, pool.channelsFirst) : y;
          });
        });
      } else {
        const m = this.model.m;
        const xs: TfTypes.NamedTensorMap = {};
        for (const input of this.inputs) xs[input.name] = tf.tensor(feeds[input.name].data, feeds[input.name].dims, 'float32');
        try {
          // executeAsync handles control-flow ops too; it disposes its own intermediates.
          const ys = await m.executeAsync(xs, wanted);
          results = Array.isArray(ys) ? ys : [ys];
        } finally {
          tf.dispose(Object.values(xs));
        }
      }
      const out: Record<string, FloatTensor> = {};
      for (let i = 0; i < wanted.length; i++) {
        const t = results[i];
        if (t.dtype !== 'float32') throw new ModelError(this.source, `output "${wanted[i]}" is ${t.dtype}, expected float32`);
        // A copy: some backends hand out their own storage, which dispose() may recycle.
        out[wanted[i]] = { data: new Float32Array((await t.data()) as Float32Array), dims: t.shape.slice() };
      }
      return out;
    } catch (err) {
      if (err instanceof ModelError) throw err;
      throw new ModelError(this.source, `inference failed: ${firstLine(err)}`);
    } finally {
      tf.dispose(results);
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.model.m.dispose();
  }
}

/**
 * Loads a TensorFlow.js model. `path` is the model.json file or the folder holding it. Errors (missing or
 * corrupt files, weights outside the folder, weight sizes that do not match the manifest) are ModelErrors.
 */
export async function loadTfjs(path: string, format: TfjsFormat, options: LoadOptions): Promise<ModelRunner> {
  const file = modelJsonPath(path);
  // Read and validate everything before touching TensorFlow.js, so a broken model never half-loads.
  const modelJson = readModelJson(file, format);
  if (format === 'tfjs-layers') {
    normaliseKerasTopology(modelJson.modelTopology);
    if (sequentialWithoutInputShape(modelJson.modelTopology)) throw new ModelError(file, NO_INPUT_SHAPE);
  }
  const [specs, data] = readWeights(file, modelJson.weightsManifest);
  let rt: TfjsRuntime;
  try {
    rt = await tfjsRuntime(options.provider);
  } catch (err) {
    throw new ModelError(file, `TensorFlow.js could not start: ${firstLine(err)}`);
  }
  if (options.provider === 'cuda' && rt.provider !== 'cuda') {
    throw new ModelError(file, `CUDA was asked for but TensorFlow.js runs on ${rt.label}; install @tensorflow/tfjs-node-gpu or use --provider cpu`);
  }
  const { tf } = rt;
  const handler: TfTypes.io.IOHandler = {
    load: () => tf.io.getModelArtifactsForJSON(modelJson, async () => [specs, data]),
  };
  try {
    if (format === 'tfjs-layers') {
      let m = await tf.loadLayersModel(handler);
      if (!m.inputs?.length) {
        m.dispose();
        throw new ModelError(file, NO_INPUT_SHAPE);
      }
      const loaded = m;
      const layerNamed = (name: string, fix: string) => {
        const layer = loaded.layers.find((l) => l.name === name);
        if (!layer) {
          loaded.dispose();
          throw new ModelError(file, `has no layer named "${name}" (layers: ${loaded.layers.map((l) => l.name).join(', ')}); ${fix}`);
        }
        return layer;
      };
      // Inner layers as extra outputs (the classifier's features): a model over the same layers and weights.
      const extra = (options.outputLayers ?? []).map((name) => layerNamed(name, 'fix features.layer in the pair manifest').output as TfTypes.SymbolicTensor);
      const wish = options.layerPools;
      const poolNames = !wish ? [] : Array.isArray(wish) ? wish : wish.last > 0 ? tfjsConvActivationLayers(loaded).slice(-wish.last) : [];
      const pools = poolNames.map((name): LayerPool & { source: TfTypes.SymbolicTensor } => {
        const layer = layerNamed(name, 'fit the detectors again');
        const shape = layer.outputShape;
        if (!Array.isArray(shape) || shape.length !== 4 || Array.isArray(shape[0])) {
          loaded.dispose();
          throw new ModelError(file, `layer "${name}" gives no image-shaped (rank-4) output for the earlier-layer features; fit the detectors again`);
        }
        const channelsFirst = /first/i.test(String((layer.getConfig() as { dataFormat?: unknown; data_format?: unknown }).dataFormat ?? ''));
        const c = (shape as (number | null)[])[channelsFirst ? 1 : 3];
        return { tensor: name, output: POOL_PREFIX + name, channelsFirst, channels: typeof c === 'number' ? c : null, source: layer.output as TfTypes.SymbolicTensor };
      });
      if (extra.length || pools.length) m = tf.model({ inputs: loaded.inputs, outputs: [...loaded.outputs, ...extra, ...pools.map((p) => p.source)] });
      return new TfjsRunner(file, rt, { kind: 'layers', m }, pools.map(({ source: _, ...p }) => p));
    }
    return new TfjsRunner(file, rt, { kind: 'graph', m: await tf.loadGraphModel(handler) });
  } catch (err) {
    if (err instanceof ModelError) throw err;
    throw new ModelError(file, `not a loadable TensorFlow.js ${format === 'tfjs-layers' ? 'layers' : 'graph'} model: ${firstLine(err)}`);
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 300);
}
