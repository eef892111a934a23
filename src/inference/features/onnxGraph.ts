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

/**
 * Adds the input of the model's last Gemm/MatMul to its outputs (unchanged when it already is one).
 * Throws with the reason when the graph has no such layer or the bytes are no ONNX model.
 */
export function exposePenultimate(bytes: Uint8Array, source: string): ExposedFeatures {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new ModelError(source, `not a loadable ONNX model: ${(err as Error).message}`);
  }
  const name = lastLinearLayerInput(model);
  if (!name) {
    throw new ModelError(source, 'has no Gemm or MatMul layer whose input could serve as features; name the feature tensor in the manifest (features.output)');
  }
  const graph = model.graph!;
  graph.output ??= [];
  if (graph.output.some((o) => o.name === name)) return { bytes, name };
  if ((graph.input ?? []).some((i) => i.name === name)) throw new ModelError(source, `the last linear layer reads the model input "${name}" directly; there are no learned features to use`);
  graph.output.push(onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } }));
  return { bytes: onnx.ModelProto.encode(model).finish(), name };
}

/**
 * The KNN search as an ONNX model: `queries` [B, D] (L2-normalised) × the stored features [N, D], transposed
 * by Gemm (transB) → cosine similarities [B, N] → TopK(k, largest) → `similarities` [B, k], descending. The
 * stored features are an initializer, so onnxruntime keeps them in its own memory and runs the whole search in
 * one call per batch on its threads. They stay in the bank's row order: transposing 2.56 M values here first (a
 * MatMul needs [D, N]) cost 70–140 ms of every cold start.
 */
export function knnSearchModel(bank: Float32Array, dims: number, count: number, k: number): Uint8Array {
  const T = onnx.TensorProto;
  const bankTensor = T.create({ name: 'bank', dims: [count, dims], dataType: T.DataType.FLOAT, rawData: new Uint8Array(bank.buffer, bank.byteOffset, bank.byteLength) });
  const kTensor = T.create({ name: 'k', dims: [1], dataType: T.DataType.INT64, int64Data: [k] });
  const graph = onnx.GraphProto.create({
    name: 'knn',
    initializer: [bankTensor, kTensor],
    input: [onnx.ValueInfoProto.create({ name: 'queries', type: { tensorType: { elemType: T.DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: dims }] } } } })],
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
