/**
 * ONNX graph edits done in memory at load time (onnx-proto decodes and encodes the ModelProto):
 *  - exposing a classifier's penultimate activations as an extra output, when the model has no output
 *    named for its features: the input of its last Gemm/MatMul, i.e. what the final linear layer reads;
 *  - building the KNN search graph (Gemm against the stored features + TopK) that onnxruntime runs.
 */
import { onnx } from 'onnx-proto';
import { ModelError } from '../backends/types';

/** The tensor the model's last Gemm or MatMul reads (its first input), or null when it has neither. */
export function lastLinearLayerInput(model: onnx.IModelProto): string | null {
  const nodes = model.graph?.node ?? [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if ((node.opType === 'Gemm' || node.opType === 'MatMul') && node.input?.length) return node.input[0];
  }
  return null;
}

export interface ExposedFeatures {
  /** The edited model, with `name` among its outputs. */
  bytes: Uint8Array;
  /** The tensor now exposed as an output. */
  name: string;
}

/** The model in `bytes`, decoded; a ModelError naming `source` when they are no ONNX model. */
export function decodeOnnxModel(bytes: Uint8Array, source: string): onnx.ModelProto {
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new ModelError(source, `not a loadable ONNX model: ${(err as Error).message}`);
  }
}

/** A decoded (and maybe edited) model as bytes for onnxruntime. */
export function encodeOnnxModel(model: onnx.ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** How long a decoded model's graph lists were before edits (`withGraphAdditions`). */
export interface GraphCounts {
  node: number;
  initializer: number;
  output: number;
}

export function graphCounts(model: onnx.IModelProto): GraphCounts {
  const g = model.graph ?? {};
  return { node: g.node?.length ?? 0, initializer: g.initializer?.length ?? 0, output: g.output?.length ?? 0 };
}

/**
 * The model's bytes as onnxruntime should read them after edits that only added graph nodes, initializers and
 * outputs (`exposePenultimateIn`, `exposeLayerPoolsIn`): the original bytes, then a second `graph` field holding
 * just the additions. A protobuf parser merges a repeated embedded message into the first, appending to its
 * repeated fields (onnxruntime's does), so it reads the edited graph, in the same order, without the whole
 * model being encoded again (~45 ms of each scoring shard's start for a 6 MB MobileNet). For onnxruntime only:
 * protobufjs's decoder keeps the last `graph` instead of merging (`encodeOnnxModel` writes one for it).
 */
export function withGraphAdditions(bytes: Uint8Array, model: onnx.IModelProto, before: GraphCounts): Uint8Array {
  const g = model.graph ?? {};
  const graph = onnx.GraphProto.create({ node: (g.node ?? []).slice(before.node), initializer: (g.initializer ?? []).slice(before.initializer), output: (g.output ?? []).slice(before.output) });
  const tail = onnx.ModelProto.encode(onnx.ModelProto.create({ graph })).finish();
  // Written after the model in the same memory when it was read with room for it (readBoundedSync spareBytes):
  // a fresh copy of a 6 MB model cost ~15 ms of page faults in a scoring shard's start.
  const inPlace = bytes.buffer.byteLength - bytes.byteOffset - bytes.length >= tail.length;
  const out = inPlace ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length + tail.length) : new Uint8Array(bytes.length + tail.length);
  if (!inPlace) out.set(bytes);
  out.set(tail, bytes.length);
  return out;
}

/**
 * Adds the input of the model's last Gemm/MatMul to its outputs (unchanged when it already is one).
 * Throws with the reason when the graph has no such layer or the bytes are no ONNX model.
 */
export function exposePenultimate(bytes: Uint8Array, source: string): ExposedFeatures {
  const model = decodeOnnxModel(bytes, source);
  const { name, changed } = exposePenultimateIn(model, source);
  return { bytes: changed ? encodeOnnxModel(model) : bytes, name };
}

/**
 * `exposePenultimate` on a decoded model, edited in place: the loader decodes a classifier once for this and
 * `exposeLayerPoolsIn` and encodes it once (each decode and encode of a 6 MB MobileNet took 10–40 ms of every
 * scoring shard's start).
 */
export function exposePenultimateIn(model: onnx.ModelProto, source: string): { name: string; changed: boolean } {
  const name = lastLinearLayerInput(model);
  if (!name) {
    throw new ModelError(source, 'has no Gemm or MatMul layer whose input could serve as features; name the feature tensor in the manifest (features.output)');
  }
  const graph = model.graph!;
  graph.output ??= [];
  if (graph.output.some((o) => o.name === name)) return { name, changed: false };
  if ((graph.input ?? []).some((i) => i.name === name)) throw new ModelError(source, `the last linear layer reads the model input "${name}" directly; there are no learned features to use`);
  graph.output.push(onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } }));
  return { name, changed: true };
}

/**
 * The KNN search as an ONNX model: `queries` [B, D] (L2-normalised) × the stored features `bank` [N, D],
 * transposed by Gemm (transB) → cosine similarities [B, N] → TopK(k, largest) → `similarities` [B, k],
 * descending: the whole search in one call per batch. The stored features are an input fed on every run from
 * the caller's array (onnxruntime reads it in place), not an initializer: as an initializer onnxruntime held
 * its own copy plus Gemm's prepacked one, ~20 MB a session for the built-in pair's 20,000×128 against its
 * 10 MB, in every scoring shard; measured the same results and no slower per batch. They stay in the bank's
 * row order: transposing 2.56 M values here first (a MatMul needs [D, N]) cost 70–140 ms of every cold start.
 */
export function knnSearchModel(dims: number, count: number, k: number): Uint8Array {
  const T = onnx.TensorProto;
  const kTensor = T.create({ name: 'k', dims: [1], dataType: T.DataType.INT64, int64Data: [k] });
  const graph = onnx.GraphProto.create({
    name: 'knn',
    initializer: [kTensor],
    input: [
      onnx.ValueInfoProto.create({ name: 'queries', type: { tensorType: { elemType: T.DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: dims }] } } } }),
      onnx.ValueInfoProto.create({ name: 'bank', type: { tensorType: { elemType: T.DataType.FLOAT, shape: { dim: [{ dimValue: count }, { dimValue: dims }] } } } }),
    ],
    output: [onnx.ValueInfoProto.create({ name: 'similarities', type: { tensorType: { elemType: T.DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: k }] } } } })],
    node: [
      onnx.NodeProto.create({ opType: 'Gemm', input: ['queries', 'bank'], output: ['cosine'], attribute: [onnx.AttributeProto.create({ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 })] }),
      onnx.NodeProto.create({
        opType: 'TopK',
        input: ['cosine', 'k'],
        output: ['similarities', 'neighbours'],
        attribute: [
          onnx.AttributeProto.create({ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: -1 }),
          onnx.AttributeProto.create({ name: 'largest', type: onnx.AttributeProto.AttributeType.INT, i: 1 }),
          onnx.AttributeProto.create({ name: 'sorted', type: onnx.AttributeProto.AttributeType.INT, i: 1 }),
        ],
      }),
    ],
  });
  const model = onnx.ModelProto.create({ irVersion: 7, opsetImport: [{ domain: '', version: 13 }], producerName: 'ood-lens', graph });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * The Mahalanobis detector's whitening z = W f for a batch of feature rows as one Gemm (transB: W is stored
 * row-major, dims × dims): the D² multiply-adds per image that dominate its cost run in onnxruntime's BLAS.
 */
export function whiteningModel(whitening: Float32Array, dims: number): Uint8Array {
  const T = onnx.TensorProto;
  const w = T.create({ name: 'whitening', dims: [dims, dims], dataType: T.DataType.FLOAT, rawData: new Uint8Array(whitening.buffer, whitening.byteOffset, whitening.byteLength) });
  const rows = (name: string) => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: T.DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: dims }] } } } });
  const graph = onnx.GraphProto.create({
    name: 'mahalanobis-whitening',
    initializer: [w],
    input: [rows('features')],
    output: [rows('whitened')],
    node: [onnx.NodeProto.create({ opType: 'Gemm', input: ['features', 'whitening'], output: ['whitened'], attribute: [onnx.AttributeProto.create({ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 })] })],
  });
  const model = onnx.ModelProto.create({ irVersion: 7, opsetImport: [{ domain: '', version: 13 }], producerName: 'ood-lens', graph });
  return onnx.ModelProto.encode(model).finish();
}

/** At most this many earlier layers are exposed: the last ones before the head (a MobileNet has dozens). */
export const MAX_EXPOSED_LAYERS = 4;
const ACTIVATIONS = new Set(['Relu', 'Clip', 'HardSwish', 'LeakyRelu', 'Elu', 'Selu', 'PRelu', 'Mish', 'Gelu']);
/** Ops between a Conv and its activation in a conv block (batch norm, a residual sum, a bias add). */
const CONV_BLOCK_OPS = new Set(['Conv', 'BatchNormalization', 'Add', 'InstanceNormalization']);

/**
 * The post-activation outputs of the model's conv blocks, in graph order: a ReLU-like node (Relu, Clip = ReLU6,
 * HardSwish, …) or a sigmoid-gated product x·σ(x) / x·hardσ(x) (SiLU, MobileNetV3's h-swish) whose input comes
 * from a Conv, its batch norm or a residual Add. Activations after a Gemm/MatMul (the head) are not conv blocks.
 */
export function convActivationOutputs(model: onnx.IModelProto): string[] {
  const nodes = model.graph?.node ?? [];
  const producer = new Map<string, onnx.INodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) producer.set(o, n);
  const fromConvBlock = (tensor: string | undefined | null): boolean => {
    // Up through batch norm / Add chains to a Conv (a few steps; an Add is a conv block when either side is).
    const seen = new Set<string>();
    const stack = tensor ? [tensor] : [];
    while (stack.length) {
      const t = stack.pop()!;
      if (seen.has(t) || seen.size > 16) continue;
      seen.add(t);
      const p = producer.get(t);
      if (!p || !CONV_BLOCK_OPS.has(p.opType ?? '')) continue;
      // A squeeze-and-excitation branch's Conv reads a global average (1×1): channel weights, not a conv block.
      if (p.opType === 'Conv') return !['GlobalAveragePool', 'ReduceMean'].includes(producer.get(p.input?.[0] ?? '')?.opType ?? '');
      stack.push(...(p.opType === 'Add' ? p.input ?? [] : (p.input ?? []).slice(0, 1)));
    }
    return false;
  };
  const consumers = new Map<string, onnx.INodeProto[]>();
  for (const n of nodes) for (const i of n.input ?? []) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  /** Clip(x + 3) gating a Mul with x: the h-swish x·relu6(x + 3)/6 as exporters write it (the Mul is the activation). */
  const clipGates = (clip: onnx.INodeProto, x?: string): boolean => {
    const add = producer.get(clip.input?.[0] ?? '');
    if (clip.opType !== 'Clip' || add?.opType !== 'Add') return false;
    const xs = (add.input ?? []).filter((i) => x === undefined || i === x);
    return (consumers.get(clip.output?.[0] ?? '') ?? []).some((m) => m.opType === 'Mul' && (m.input ?? []).some((i) => xs.includes(i)));
  };
  const out: string[] = [];
  for (const n of nodes) {
    const input = n.input?.[0];
    const output = n.output?.[0];
    if (!input || !output) continue;
    if (ACTIVATIONS.has(n.opType ?? '') && !clipGates(n) && fromConvBlock(input)) out.push(output);
    else if (n.opType === 'Mul' && n.input?.length === 2) {
      // x · σ(x): one side is a Sigmoid/HardSigmoid (or a Clip(x + 3)) of the other, which comes from a conv block.
      const [a, b] = n.input;
      const gate = (g: string, x: string) => {
        const p = producer.get(g);
        return (['Sigmoid', 'HardSigmoid'].includes(p?.opType ?? '') && p?.input?.[0] === x) || (!!p && clipGates(p, x));
      };
      const x = gate(b, a) ? a : gate(a, b) ? b : null;
      if (x && fromConvBlock(x)) out.push(output);
    }
  }
  return out;
}

/** The layers fit exposes: the last MAX_EXPOSED_LAYERS conv-block activations of the model (none when it has none). */
export function lastConvActivations(model: onnx.IModelProto): string[] {
  return convActivationOutputs(model).slice(-MAX_EXPOSED_LAYERS);
}

export interface ExposedLayers {
  bytes: Uint8Array;
  /** Per exposed layer: the activation tensor read and the model output now holding its 2×2-pooled values. */
  layers: { tensor: string; output: string }[];
  /**
   * Opset below 11: the graph cannot slice by a run-time shape, so `bytes` exposes the activations themselves
   * (outputs named as the tensors) and JsPooledLayersRunner (layerPooling.ts) pools them into `layers[].output`.
   */
  poolInJs?: true;
}

/**
 * Adds, for each named activation tensor (NCHW, as ONNX Conv outputs are), a 2×2 average pooling done in the
 * graph as four quadrant means — Shape → Slice by half the height and width → ReduceMean over H, W → Concat —
 * so it works for any spatial size and batch size without shape inference, and only [batch, 4·C] values per
 * layer leave onnxruntime. The output is quadrant-major: [top-left C, top-right C, bottom-left C, bottom-right C].
 */
export function exposeLayerPools(bytes: Uint8Array, source: string, tensors: string[]): ExposedLayers {
  const model = decodeOnnxModel(bytes, source);
  const exposed = exposeLayerPoolsIn(model, source, tensors);
  return { bytes: encodeOnnxModel(model), ...exposed };
}

/** `exposeLayerPools` on a decoded model, edited in place (see `exposePenultimateIn`). */
export function exposeLayerPoolsIn(model: onnx.ModelProto, source: string, tensors: string[]): Omit<ExposedLayers, 'bytes'> {
  const graph = model.graph!;
  const known = new Set((graph.node ?? []).flatMap((n) => n.output ?? []));
  const missing = tensors.filter((t) => !known.has(t));
  if (missing.length) throw new ModelError(source, `has no tensor named ${missing.map((t) => `"${t}"`).join(', ')} for the earlier-layer features; fit the detectors again`);
  const opset = (model.opsetImport ?? []).find((o) => !o.domain)?.version;
  const version = typeof opset === 'number' ? opset : Number(opset ?? 13);
  const T = onnx.TensorProto;
  if (version < 11) {
    graph.output ??= [];
    for (const tensor of tensors) if (!graph.output.some((o) => o.name === tensor)) graph.output.push(onnx.ValueInfoProto.create({ name: tensor, type: { tensorType: { elemType: T.DataType.FLOAT } } }));
    return { layers: tensors.map((tensor) => ({ tensor, output: `ood_lens_pool/${tensor}` })), poolInJs: true };
  }
  const A = onnx.AttributeProto;
  const ints = (name: string, values: number[]) => T.create({ name, dims: [values.length], dataType: T.DataType.INT64, int64Data: values });
  const prefix = 'ood_lens_pool';
  const big = 2 ** 31 - 1;
  graph.output ??= [];
  graph.initializer ??= [];
  graph.initializer.push(ints(`${prefix}_hw_start`, [2]), ints(`${prefix}_hw_end`, [4]), ints(`${prefix}_two`, [2]), ints(`${prefix}_axes`, [2, 3]));
  // Per quadrant (row, col ∈ {0, 1}): start = half·[row, col]; end = half·[1 − row, 1 − col] + big·[row, col].
  const quadrants = [0, 1].flatMap((row) => [0, 1].map((col) => ({ row, col, q: `${prefix}_q${row}${col}` })));
  for (const { row, col, q } of quadrants) graph.initializer.push(ints(`${q}_at`, [row, col]), ints(`${q}_before`, [1 - row, 1 - col]), ints(`${q}_rest`, [row * big, col * big]));
  const node = (opType: string, input: string[], output: string[], attribute: onnx.IAttributeProto[] = []) => graph.node!.push(onnx.NodeProto.create({ opType, input, output, attribute }));
  const reduceMean = (input: string, output: string) =>
    // ReduceMean takes its axes as an input from opset 18 on, as an attribute before.
    version >= 18
      ? node('ReduceMean', [input, `${prefix}_axes`], [output], [A.create({ name: 'keepdims', type: A.AttributeType.INT, i: 0 })])
      : node('ReduceMean', [input], [output], [A.create({ name: 'axes', type: A.AttributeType.INTS, ints: [2, 3] }), A.create({ name: 'keepdims', type: A.AttributeType.INT, i: 0 })]);
  const layers: ExposedLayers['layers'] = [];
  tensors.forEach((tensor, i) => {
    const p = `${prefix}${i}`;
    node('Shape', [tensor], [`${p}_shape`]);
    node('Slice', [`${p}_shape`, `${prefix}_hw_start`, `${prefix}_hw_end`], [`${p}_hw`]);
    node('Div', [`${p}_hw`, `${prefix}_two`], [`${p}_half`]);
    // An odd side's middle row (or column) goes to the second half.
    const means = quadrants.map(({ q }) => {
      const l = `${p}_${q.slice(prefix.length + 1)}`;
      node('Mul', [`${p}_half`, `${q}_at`], [`${l}_start`]);
      node('Mul', [`${p}_half`, `${q}_before`], [`${l}_until`]);
      node('Add', [`${l}_until`, `${q}_rest`], [`${l}_end`]);
      node('Slice', [tensor, `${l}_start`, `${l}_end`, `${prefix}_axes`], [l]);
      reduceMean(l, `${l}_mean`);
      return `${l}_mean`;
    });
    const output = `${p}_pooled`;
    node('Concat', means, [output], [A.create({ name: 'axis', type: A.AttributeType.INT, i: 1 })]);
    graph.output!.push(onnx.ValueInfoProto.create({ name: output, type: { tensorType: { elemType: T.DataType.FLOAT } } }));
    layers.push({ tensor, output });
  });
  return { layers };
}
