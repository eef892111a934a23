/**
 * Rebuilds train.py's classifier and VAE as TensorFlow.js layers models (NHWC input [batch, 32, 32, 1]),
 * loads the PyTorch weights that train.py exported (`*-weights.json` + `*-weights.bin`), saves them with
 * TensorFlow.js's own serializer, then checks the saved models against the ONNX exports on real images.
 *
 *   npx tsx training/export-tfjs.ts <modelDir>
 *
 * Writes <modelDir>/tfjs/classifier/{model.json,weights.bin} and <modelDir>/tfjs/vae/{model.json,weights.bin}.
 * Exits non-zero when any output differs from ONNX by more than 1e-3.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type * as TfTypes from '@tensorflow/tfjs';
import { idxImages, readIdxFile } from '../src/inference/io/idx';
import { loadOnnx } from '../src/inference/backends/onnx';
import { loadTfjs, tfjsRuntime } from '../src/inference/backends/tfjs';
import type { FloatTensor } from '../src/inference/backends/types';

type Tf = typeof TfTypes;
const SIZE = 32;
const TOLERANCE = 1e-3;
/** train.py's MIN_LOG_SCALE: the discretised-logistic decoder's log-scales are clamped to at least this. */
const MIN_LOG_SCALE = -8;

// ---------------------------------------------------------------------------------------------------------
// PyTorch weights

interface TorchTensor {
  shape: number[];
  data: Float32Array;
}

class TorchWeights {
  private readonly tensors = new Map<string, TorchTensor>();
  private readonly used = new Set<string>();
  readonly sha256: string;

  constructor(readonly prefix: string) {
    const index = JSON.parse(readFileSync(prefix + '.json', 'utf8')) as { name: string; shape: number[]; offset: number }[];
    const bin = readFileSync(prefix + '.bin');
    this.sha256 = createHash('sha256').update(bin).digest('hex');
    for (const { name, shape, offset } of index) {
      const count = shape.reduce((a, b) => a * b, 1);
      if (offset % 4 !== 0 || offset + 4 * count > bin.length) throw new Error(`${prefix}.bin: ${name} [${shape}] at byte ${offset} lies outside the ${bin.length}-byte file`);
      // Copy out of the file buffer: little-endian float32, as train.py writes ("<f4").
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = bin.readFloatLE(offset + 4 * i);
      this.tensors.set(name, { shape, data });
    }
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  get(name: string, rank: number): TorchTensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.prefix}.json has no "${name}" (has: ${[...this.tensors.keys()].join(', ')})`);
    if (t.shape.length !== rank) throw new Error(`${this.prefix}.json: ${name} has shape [${t.shape}], expected rank ${rank}`);
    this.used.add(name);
    return t;
  }

  /** Every exported parameter must have found a layer: a leftover means train.py's architecture changed. */
  assertAllUsed(): void {
    const left = [...this.tensors.keys()].filter((n) => !this.used.has(n));
    if (left.length) throw new Error(`${this.prefix}.json has weights this exporter does not place: ${left.join(', ')} (train.py changed?)`);
  }
}

/** PyTorch conv [out, in, kh, kw] → tfjs [kh, kw, in, out]; linear [out, in] → dense [in, out]. */
function setConv(tf: Tf, layer: TfTypes.layers.Layer, w: TorchWeights, name: string, biasShift = 0): void {
  const k = w.get(`${name}.weight`, 4);
  const b = w.get(`${name}.bias`, 1);
  const kernel = tf.tidy(() => tf.transpose(tf.tensor4d(k.data, k.shape as [number, number, number, number]), [2, 3, 1, 0]));
  setWeights(tf, layer, [kernel, tf.tensor1d(b.data.map((v) => v + biasShift))], name);
}

function setDense(tf: Tf, layer: TfTypes.layers.Layer, w: TorchWeights, name: string): void {
  const k = w.get(`${name}.weight`, 2);
  const b = w.get(`${name}.bias`, 1);
  const kernel = tf.tidy(() => tf.transpose(tf.tensor2d(k.data, k.shape as [number, number])));
  setWeights(tf, layer, [kernel, tf.tensor1d(b.data)], name);
}

function setWeights(tf: Tf, layer: TfTypes.layers.Layer, values: TfTypes.Tensor[], name: string): void {
  const want = layer.getWeights().map((t) => t.shape);
  values.forEach((v, i) => {
    if (want[i].join() !== v.shape.join()) throw new Error(`${name}: PyTorch weight ${i} gives [${v.shape}] after transposing, layer ${layer.name} wants [${want[i]}]`);
  });
  layer.setWeights(values); // copies the values into the layer's variables
  tf.dispose(values);
}

// ---------------------------------------------------------------------------------------------------------
// The architectures of train.py, NHWC

/**
 * PyTorch flattens [C, H, W] (channel-major); TF.js flattens [H, W, C]. Permuting to CHW before the flatten
 * lets the dense weights be used exactly as PyTorch stored them (only transposed).
 */
function flattenChannelMajor(tf: Tf, x: TfTypes.SymbolicTensor, name: string): TfTypes.SymbolicTensor {
  const chw = tf.layers.permute({ dims: [3, 1, 2], name: `${name}_to_chw` }).apply(x) as TfTypes.SymbolicTensor;
  return tf.layers.flatten({ name: `${name}_flatten` }).apply(chw) as TfTypes.SymbolicTensor;
}

function buildClassifier(tf: Tf, w: TorchWeights): TfTypes.LayersModel {
  const classes = w.get('classifier.fc2.bias', 1).shape[0];
  const image = tf.input({ shape: [SIZE, SIZE, 1], name: 'image' });
  // 3×3 with padding 1 is 'same'; max_pool2d(2) is a 2×2 pool with stride 2.
  const conv1 = tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv1' });
  const conv2 = tf.layers.conv2d({ filters: 64, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv2' });
  const fc1 = tf.layers.dense({ units: 128, activation: 'relu', name: 'fc1' });
  const fc2 = tf.layers.dense({ units: classes, name: 'logits' }); // dropout is the identity at inference
  let x = conv1.apply(image) as TfTypes.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 2, strides: 2, name: 'pool1' }).apply(x) as TfTypes.SymbolicTensor;
  x = conv2.apply(x) as TfTypes.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 2, strides: 2, name: 'pool2' }).apply(x) as TfTypes.SymbolicTensor;
  x = flattenChannelMajor(tf, x, 'features');
  const logits = fc2.apply(fc1.apply(x)) as TfTypes.SymbolicTensor;
  const model = tf.model({ inputs: image, outputs: logits, name: 'classifier' });
  setConv(tf, conv1, w, 'classifier.conv1');
  setConv(tf, conv2, w, 'classifier.conv2');
  setDense(tf, fc1, w, 'classifier.fc1');
  setDense(tf, fc2, w, 'classifier.fc2');
  w.assertAllUsed();
  return model;
}

function buildVae(tf: Tf, w: TorchWeights): TfTypes.LayersModel {
  const latent = w.get('encoder.mu.bias', 1).shape[0];
  const image = tf.input({ shape: [SIZE, SIZE, 1], name: 'image' });
  // Conv2d(k=4, s=2, p=1) on an even size pads 1 on each side, exactly what TF's 'same' does there
  // (total padding (out-1)*2 + 4 - in = 2); the mu/logvar comparison with ONNX below checks it numerically.
  const enc = [32, 64, 64].map((filters, i) =>
    tf.layers.conv2d({ filters, kernelSize: 4, strides: 2, padding: 'same', activation: 'relu', name: `encoder_conv${i + 1}` }),
  );
  const muLayer = tf.layers.dense({ units: latent, name: 'mu' });
  const logvarLayer = tf.layers.dense({ units: latent, name: 'logvar' });
  let h = image as TfTypes.SymbolicTensor;
  for (const conv of enc) h = conv.apply(h) as TfTypes.SymbolicTensor;
  h = flattenChannelMajor(tf, h, 'encoder');
  const mu = muLayer.apply(h) as TfTypes.SymbolicTensor;
  const logvar = logvarLayer.apply(h) as TfTypes.SymbolicTensor;

  // Decoder on mu (deterministic, like vae.onnx): view(-1, 64, 4, 4) is CHW, so reshape then permute to HWC.
  const fc = tf.layers.dense({ units: 64 * 4 * 4, activation: 'relu', name: 'decoder_fc' });
  const dec = [
    tf.layers.conv2d({ filters: 64, kernelSize: 3, padding: 'same', activation: 'relu', name: 'decoder_conv1' }),
    tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu', name: 'decoder_conv2' }),
    tf.layers.conv2d({ filters: 1, kernelSize: 3, padding: 'same', name: 'reconstruction_logits' }),
  ];
  let d = fc.apply(mu) as TfTypes.SymbolicTensor;
  d = tf.layers.reshape({ targetShape: [64, 4, 4], name: 'decoder_chw' }).apply(d) as TfTypes.SymbolicTensor;
  d = tf.layers.permute({ dims: [2, 3, 1], name: 'decoder_to_hwc' }).apply(d) as TfTypes.SymbolicTensor;
  let features = d;
  dec.forEach((conv, i) => {
    // F.interpolate(scale_factor=2, mode="nearest") is upSampling2d's default nearest ×2.
    d = tf.layers.upSampling2d({ size: [2, 2], name: `decoder_up${i + 1}` }).apply(d) as TfTypes.SymbolicTensor;
    features = d;
    d = conv.apply(d) as TfTypes.SymbolicTensor;
  });
  // Discretised-logistic decoders have a second head on the same 32×32 features: the log-scale, clamped
  // below as train.py does it, relu(x − min) + min (the conv's bias absorbs the −min).
  const scaleHead = w.has('decoder.scale.weight') ? tf.layers.conv2d({ filters: 1, kernelSize: 3, padding: 'same', activation: 'relu', name: 'decoder_scale' }) : null;
  const outputs = [d];
  if (scaleHead) {
    const clamped = scaleHead.apply(features) as TfTypes.SymbolicTensor;
    outputs.push(tf.layers.rescaling({ scale: 1, offset: MIN_LOG_SCALE, name: 'log_scale' }).apply(clamped) as TfTypes.SymbolicTensor);
  }
  const model = tf.model({ inputs: image, outputs: [...outputs, mu, logvar], name: 'vae' });
  enc.forEach((conv, i) => setConv(tf, conv, w, `encoder.conv${i + 1}`));
  setDense(tf, muLayer, w, 'encoder.mu');
  setDense(tf, logvarLayer, w, 'encoder.logvar');
  setDense(tf, fc, w, 'decoder.fc');
  dec.forEach((conv, i) => setConv(tf, conv, w, `decoder.conv${i + 1}`));
  if (scaleHead) setConv(tf, scaleHead, w, 'decoder.scale', -MIN_LOG_SCALE);
  w.assertAllUsed();
  return model;
}

// ---------------------------------------------------------------------------------------------------------
// Saving

function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path); // readers see the old file or the new one, never half of one
}

async function save(tf: Tf, model: TfTypes.LayersModel, dir: string, source: TorchWeights): Promise<void> {
  mkdirSync(dir, { recursive: true });
  model.setUserDefinedMetadata({ oodLens: { source: `${source.prefix.split(/[\\/]/).pop()}.bin`, sourceSha256: source.sha256 } });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      if (!artifacts.weightSpecs || artifacts.weightData === undefined) throw new Error('TensorFlow.js produced no weights');
      const weights = tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      // weights.bin first, so that a model.json is never newer than the weights it describes.
      writeAtomic(join(dir, 'weights.bin'), new Uint8Array(weights));
      const modelJson = {
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: 'OOD Lens training/export-tfjs.ts (from PyTorch weights)',
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
        userDefinedMetadata: artifacts.userDefinedMetadata,
      };
      writeAtomic(join(dir, 'model.json'), JSON.stringify(modelJson));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.byteLength } };
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------
// Verification against ONNX

/** Deterministic xorshift32 in [0, 1), so every run checks the same inputs. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

/** N images as NCHW [N, 1, 32, 32] in [0, 1]: real test images when the prepared IDX file is there, plus noise. */
function verificationImages(modelDir: string, count: number): { batch: FloatTensor; what: string } {
  const rand = rng(20240611);
  let dataset = 'mnist';
  try {
    dataset = (JSON.parse(readFileSync(join(modelDir, 'training-metrics.json'), 'utf8')) as { dataset?: string }).dataset ?? dataset;
  } catch {
    // No metrics: MNIST digits are as good a check as any.
  }
  const idx = resolve(__dirname, '.cache', `${dataset}-test-images-32.idx`);
  const data = new Float32Array(count * SIZE * SIZE);
  let real = 0;
  if (existsSync(idx)) {
    const images = idxImages(readIdxFile(idx), idx);
    if (images.width >= SIZE && images.height >= SIZE) {
      real = count - 2; // keep two pure-noise inputs: the engine exists to score unfamiliar images
      for (let n = 0; n < real; n++) {
        const img = images.image(Math.floor(rand() * images.count));
        const x0 = Math.floor(rand() * (images.width - SIZE + 1));
        const y0 = Math.floor(rand() * (images.height - SIZE + 1));
        for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) data[n * SIZE * SIZE + y * SIZE + x] = img[(y0 + y) * images.width + x0 + x] / 255;
      }
    }
  }
  for (let i = real * SIZE * SIZE; i < data.length; i++) data[i] = rand();
  return { batch: { data, dims: [count, 1, SIZE, SIZE] }, what: real ? `${real} ${dataset} test images + ${count - real} noise images` : `${count} pseudo-random images` };
}

/** [N, C, H, W] ↔ [N, H, W, C]: the ONNX models are NCHW, the TF.js ones NHWC. */
function nchwToNhwc(t: FloatTensor): FloatTensor {
  const [n, c, h, w] = t.dims;
  const out = new Float32Array(t.data.length);
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) out[(b * h * w + p) * c + ch] = t.data[(b * c + ch) * h * w + p];
  return { data: out, dims: [n, h, w, c] };
}

function nhwcToNchw(t: FloatTensor): FloatTensor {
  const [n, h, w, c] = t.dims;
  const out = new Float32Array(t.data.length);
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) out[(b * c + ch) * h * w + p] = t.data[(b * h * w + p) * c + ch];
  return { data: out, dims: [n, c, h, w] };
}

function maxAbsDiff(a: FloatTensor, b: FloatTensor, what: string): number {
  if (a.dims.join() !== b.dims.join()) throw new Error(`${what}: shapes differ, ONNX [${a.dims}] vs TF.js [${b.dims}]`);
  let max = 0;
  for (let i = 0; i < a.data.length; i++) max = Math.max(max, Math.abs(a.data[i] - b.data[i]));
  return Number.isFinite(max) ? max : Infinity;
}

async function verify(modelDir: string): Promise<boolean> {
  const { batch, what } = verificationImages(modelDir, 10);
  const nhwc = nchwToNhwc(batch);
  console.log(`verifying against ONNX on ${what}`);
  let ok = true;
  const report = (name: string, diff: number) => {
    const pass = diff <= TOLERANCE;
    ok &&= pass;
    console.log(`  ${name.padEnd(34)} max |ONNX − TF.js| = ${diff.toExponential(2)}${pass ? '' : `  > ${TOLERANCE}: FAIL`}`);
  };
  const pairs: [string, string, string[]][] = [
    ['classifier.onnx', 'classifier', ['logits']],
    ['vae.onnx', 'vae', ['reconstruction_logits', 'log_scale', 'mu', 'logvar']],
  ];
  for (const [onnxFile, tfjsName, wanted] of pairs) {
    const onnx = await loadOnnx(join(modelDir, onnxFile), { provider: 'cpu' });
    const tfjs = await loadTfjs(join(modelDir, 'tfjs', tfjsName), 'tfjs-layers', { provider: 'cpu' });
    // log_scale exists only in discretised-logistic VAEs.
    const outputs = wanted.filter((name) => onnx.outputs.some((o) => o.name === name));
    try {
      const a = await onnx.run({ image: batch });
      const b = await tfjs.run({ image: nhwc });
      for (const name of outputs) {
        const fromTf = b[name].dims.length === 4 ? nhwcToNchw(b[name]) : b[name];
        report(`${tfjsName} ${name}`, maxAbsDiff(a[name], fromTf, name));
      }
    } finally {
      await onnx.dispose();
      await tfjs.dispose();
    }
  }
  return ok;
}

async function main(): Promise<number> {
  const modelDir = process.argv[2];
  if (!modelDir || process.argv.length > 3) {
    console.error('usage: npx tsx training/export-tfjs.ts <modelDir>');
    return 2;
  }
  const rt = await tfjsRuntime('cpu');
  const { tf } = rt;
  console.log(`TensorFlow.js ${tf.version.tfjs} on ${rt.label}`);
  const jobs: [string, (tf: Tf, w: TorchWeights) => TfTypes.LayersModel][] = [
    ['classifier', buildClassifier],
    ['vae', buildVae],
  ];
  for (const [name, build] of jobs) {
    const weights = new TorchWeights(join(modelDir, `${name}-weights`));
    const model = build(tf, weights);
    const out = join(modelDir, 'tfjs', name);
    await save(tf, model, out, weights);
    console.log(`${name}: ${model.countParams()} parameters → ${join(out, 'model.json')}`);
    model.dispose();
  }
  return (await verify(modelDir)) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
