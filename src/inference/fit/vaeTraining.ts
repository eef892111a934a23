/**
 * The density model `fit` trains when the user brings none: a small MLP VAE (pixels → 400 → 16-d Gaussian
 * latent → 400 → pixels, Bernoulli likelihood on pixels in [0, 1], the built-in pairs' likelihood), trained
 * with TensorFlow.js on the fit part of the user's images, then written as ONNX graphs (one model, encoder,
 * decoder) so that scoring runs in onnxruntime like any other pair.
 *
 * Why an MLP: TF.js's WebAssembly backend (the one always installed) has no Conv2D gradient; a 784-400-16 MLP
 * trains at a few hundred images/s there and separates MNIST from FashionMNIST as well as the project's
 * convolutional VAE does once S(x) corrects for complexity. tfjs-node (native TensorFlow) is used when installed.
 *
 * Deterministic for a seed: the initial weights, the shuffles and the reparameterisation noise come from
 * mulberry32 streams here (not from TF.js's own generators), and the number of epochs is chosen from the data
 * size, never from a clock (`timeLimitSeconds` can stop it early, and says so in the record).
 */
import { onnx } from 'onnx-proto';
import type * as TfTypes from '@tensorflow/tfjs';
import { tfjsRuntime } from '../backends/tfjs';
import type { ExecutionProviderSetting } from '../backends/types';
import type { VaeTrainingRecord } from '../pair/manifest';
import { mulberry32 } from '../detectors/random';
import { defaultVaeEpochs } from './vaeBudget';

export { defaultVaeEpochs, nominalImagesPerSecond, VAE_MAX_SIDE, vaeImageSize } from './vaeBudget';

export const VAE_HIDDEN = 400;
export const VAE_LATENT = 16;
const BATCH = 128;
const LEARNING_RATE = 1e-3;
export interface VaeWeights {
  pixels: number;
  hidden: number;
  latent: number;
  /** Row-major [in, out] matrices and their biases, as ONNX Gemm takes them (no transpose). */
  encoderHidden: { w: Float32Array; b: Float32Array };
  mu: { w: Float32Array; b: Float32Array };
  logvar: { w: Float32Array; b: Float32Array };
  decoderHidden: { w: Float32Array; b: Float32Array };
  decoderOut: { w: Float32Array; b: Float32Array };
}

export interface VaeTrainingProgress {
  epoch: number;
  epochs: number;
  /** Mean negative ELBO per training image so far in this epoch (nats). */
  loss: number;
  /** Images trained on so far, of `totalImages`. */
  images: number;
  totalImages: number;
  secondsLeft: number;
}

export interface TrainVaeOptions {
  /** `count` images, each `pixels` values in [0, 1], channel-planar (C×H×W), one after the other. */
  data: Float32Array;
  count: number;
  pixels: number;
  seed: number;
  /** Default: defaultVaeEpochs for the training images. */
  epochs?: number;
  /** Stop after the epoch that passes this many seconds (the record says so; the result then depends on speed). */
  timeLimitSeconds?: number;
  /** Share of the images held out of training to measure the held-out ELBO (default 0.1, at least 1 image). */
  heldOutShare?: number;
  provider?: ExecutionProviderSetting;
  signal?: AbortSignal;
  onProgress?: (p: VaeTrainingProgress) => void;
}

export class VaeTrainingCancelled extends Error {
  constructor() {
    super('VAE training was cancelled');
    this.name = 'VaeTrainingCancelled';
  }
}

/** Glorot-uniform initial weights from a seeded stream. */
function glorot(next: () => number, fanIn: number, fanOut: number): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  return Float32Array.from({ length: fanIn * fanOut }, () => (2 * next() - 1) * limit);
}

/** Standard normal numbers from a seeded uniform stream (Box–Muller). */
function normals(next: () => number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(next(), 1e-12);
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

function permutation(n: number, next: () => number): Uint32Array {
  const p = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** Trains the VAE; returns its weights and the training record. Throws VaeTrainingCancelled on abort. */
export async function trainVae(options: TrainVaeOptions): Promise<{ weights: VaeWeights; record: VaeTrainingRecord }> {
  const { data, count, pixels, seed } = options;
  if (data.length !== count * pixels) throw new Error(`VAE training data has ${data.length} values, expected ${count} images × ${pixels} pixels`);
  const heldOut = Math.min(count - 1, Math.max(1, Math.round(count * (options.heldOutShare ?? 0.1))));
  const trainCount = count - heldOut;
  if (trainCount < 10) throw new Error(`only ${count} images to train the VAE on; it needs at least 11`);
  const epochs = options.epochs ?? defaultVaeEpochs(trainCount, pixels);
  const runtime = await tfjsRuntime(options.provider);
  const tf = runtime.tf;
  const H = VAE_HIDDEN;
  const L = VAE_LATENT;
  const init = mulberry32(seed ^ 0x5eed);
  // The decoder's output bias starts at the logit of each pixel's mean: the first epochs learn shapes, not the background.
  const meanPixel = new Float32Array(pixels);
  for (let i = 0; i < trainCount; i++) for (let q = 0; q < pixels; q++) meanPixel[q] += data[i * pixels + q] / trainCount;
  const outBias = Float32Array.from(meanPixel, (m) => {
    const p = Math.min(0.99, Math.max(0.01, m));
    return Math.log(p / (1 - p));
  });
  const v = {
    w1: tf.variable(tf.tensor2d(glorot(init, pixels, H), [pixels, H])),
    b1: tf.variable(tf.zeros([H])),
    wMu: tf.variable(tf.tensor2d(glorot(init, H, L), [H, L])),
    bMu: tf.variable(tf.zeros([L])),
    wLv: tf.variable(tf.tensor2d(glorot(init, H, L), [H, L])),
    bLv: tf.variable(tf.zeros([L])),
    w2: tf.variable(tf.tensor2d(glorot(init, L, H), [L, H])),
    b2: tf.variable(tf.zeros([H])),
    w3: tf.variable(tf.tensor2d(glorot(init, H, pixels), [H, pixels])),
    b3: tf.variable(tf.tensor1d(outBias)),
  };
  const optimizer = tf.train.adam(LEARNING_RATE);
  /** Per-image negative ELBO (nats) of a batch, [b]. */
  const negElbo = (x: TfTypes.Tensor2D, eps: TfTypes.Tensor2D | null): TfTypes.Tensor1D =>
    tf.tidy(() => {
      const h = tf.relu(tf.add(tf.matMul(x, v.w1), v.b1));
      const mu = tf.add(tf.matMul(h, v.wMu), v.bMu);
      const logvar = tf.add(tf.matMul(h, v.wLv), v.bLv);
      const z = eps ? tf.add(mu, tf.mul(tf.exp(tf.mul(logvar, 0.5)), eps)) : mu;
      const logits = tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(z, v.w2), v.b2)), v.w3), v.b3);
      // log Bernoulli(x | σ(l)) = x·l − softplus(l), as scores.ts computes it at scoring time.
      const logLik = tf.sum(tf.sub(tf.mul(x, logits), tf.softplus(logits)), 1);
      const kl = tf.mul(tf.sum(tf.sub(tf.add(tf.add(logvar, 1), tf.neg(tf.square(mu))), tf.exp(logvar)), 1), -0.5);
      return tf.sub(kl, logLik) as TfTypes.Tensor1D;
    });
  const started = performance.now();
  const shuffle = mulberry32(seed ^ 0x5f1e);
  const noise = mulberry32(seed ^ 0x0e75);
  const lossCurve: number[] = [];
  const totalImages = epochs * trainCount;
  let trained = 0;
  let stoppedByTime = false;
  let epochsDone = 0;
  try {
    for (let epoch = 1; epoch <= epochs; epoch++) {
      const order = permutation(trainCount, shuffle);
      let sum = 0;
      let seen = 0;
      for (let start = 0; start < trainCount; start += BATCH) {
        if (options.signal?.aborted) throw new VaeTrainingCancelled();
        const b = Math.min(BATCH, trainCount - start);
        const batch = new Float32Array(b * pixels);
        for (let i = 0; i < b; i++) batch.set(data.subarray(order[start + i] * pixels, (order[start + i] + 1) * pixels), i * pixels);
        const x = tf.tensor2d(batch, [b, pixels]);
        const eps = tf.tensor2d(normals(noise, b * L), [b, L]);
        const loss = optimizer.minimize(() => tf.mean(negElbo(x, eps)) as TfTypes.Scalar, true)!;
        const value = (await loss.data())[0];
        tf.dispose([x, eps, loss]);
        if (!Number.isFinite(value)) throw new Error(`VAE training diverged (loss ${value} in epoch ${epoch}); nothing was written`);
        sum += value * b;
        seen += b;
        trained += b;
        const elapsed = (performance.now() - started) / 1000;
        options.onProgress?.({ epoch, epochs, loss: sum / seen, images: trained, totalImages, secondsLeft: (elapsed / trained) * (totalImages - trained) });
        // Let a cancel (Ctrl-C, the Cancel button) and progress messages through between batches.
        await new Promise<void>((r) => setImmediate(r));
      }
      lossCurve.push(sum / seen);
      epochsDone = epoch;
      if (options.timeLimitSeconds !== undefined && (performance.now() - started) / 1000 > options.timeLimitSeconds && epoch < epochs) {
        stoppedByTime = true;
        break;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    // Held-out ELBO at z = μ, as the single-model ONNX graph scores it.
    let heldOutSum = 0;
    for (let start = trainCount; start < count; start += 512) {
      const b = Math.min(512, count - start);
      const x = tf.tensor2d(data.subarray(start * pixels, (start + b) * pixels), [b, pixels]);
      const e = negElbo(x, null);
      for (const value of (await e.data()) as Float32Array) heldOutSum += value;
      tf.dispose([x, e]);
    }
    const heldOutElbo = -heldOutSum / heldOut;
    const read = async (t: TfTypes.Tensor) => Float32Array.from(await t.data());
    const weights: VaeWeights = {
      pixels,
      hidden: H,
      latent: L,
      encoderHidden: { w: await read(v.w1), b: await read(v.b1) },
      mu: { w: await read(v.wMu), b: await read(v.bMu) },
      logvar: { w: await read(v.wLv), b: await read(v.bLv) },
      decoderHidden: { w: await read(v.w2), b: await read(v.b2) },
      decoderOut: { w: await read(v.w3), b: await read(v.b3) },
    };
    const record: VaeTrainingRecord = {
      engine: runtime.label,
      architecture: `MLP ${pixels}-${H}-${L} (ReLU), Bernoulli likelihood, Adam lr ${LEARNING_RATE}, batch ${BATCH}`,
      seed,
      epochs: epochsDone,
      ...(stoppedByTime ? { plannedEpochs: epochs, stoppedBy: `time limit ${options.timeLimitSeconds} s` } : {}),
      trainImages: trainCount,
      heldOutImages: heldOut,
      lossCurve: lossCurve.map((l) => Number(l.toFixed(3))),
      heldOutElbo: Number(heldOutElbo.toFixed(3)),
      heldOutBitsPerDim: Number((-heldOutElbo / (pixels * Math.LN2)).toFixed(5)),
      seconds: Number(seconds.toFixed(1)),
      imagesPerSecond: Math.round(trained / Math.max(seconds, 1e-3)),
    };
    return { weights, record };
  } finally {
    optimizer.dispose();
    tf.dispose(Object.values(v));
  }
}

// ---------------------------------------------------------------------------------------------------------
// ONNX graphs (onnx-proto): the trained weights as initializers of Gemm layers

const FLOAT = onnx.TensorProto.DataType.FLOAT;

function initializer(name: string, dims: number[], values: Float32Array): onnx.TensorProto {
  const copy = Float32Array.from(values); // its own buffer: rawData takes the bytes as they are
  return onnx.TensorProto.create({ name, dims, dataType: FLOAT, rawData: new Uint8Array(copy.buffer) });
}

function valueInfo(name: string, dims: (number | string)[]): onnx.ValueInfoProto {
  return onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } } });
}

const node = (opType: string, input: string[], output: string[], attribute: onnx.IAttributeProto[] = []) => onnx.NodeProto.create({ opType, input, output, name: output[0], attribute });
const intAttr = (name: string, i: number) => onnx.AttributeProto.create({ name, i, type: onnx.AttributeProto.AttributeType.INT });

function encoderPart(w: VaeWeights): { nodes: onnx.NodeProto[]; inits: onnx.TensorProto[] } {
  return {
    nodes: [
      node('Flatten', ['image'], ['flat'], [intAttr('axis', 1)]),
      node('Gemm', ['flat', 'enc_w', 'enc_b'], ['enc_pre']),
      node('Relu', ['enc_pre'], ['enc_h']),
      node('Gemm', ['enc_h', 'mu_w', 'mu_b'], ['mu']),
      node('Gemm', ['enc_h', 'logvar_w', 'logvar_b'], ['logvar']),
    ],
    inits: [
      initializer('enc_w', [w.pixels, w.hidden], w.encoderHidden.w),
      initializer('enc_b', [w.hidden], w.encoderHidden.b),
      initializer('mu_w', [w.hidden, w.latent], w.mu.w),
      initializer('mu_b', [w.latent], w.mu.b),
      initializer('logvar_w', [w.hidden, w.latent], w.logvar.w),
      initializer('logvar_b', [w.latent], w.logvar.b),
    ],
  };
}

function decoderPart(w: VaeWeights, z: string, shape: [number, number, number]): { nodes: onnx.NodeProto[]; inits: onnx.TensorProto[] } {
  return {
    nodes: [
      node('Gemm', [z, 'dec_w', 'dec_b'], ['dec_pre']),
      node('Relu', ['dec_pre'], ['dec_h']),
      node('Gemm', ['dec_h', 'out_w', 'out_b'], ['out_flat']),
      node('Reshape', ['out_flat', 'out_shape'], ['reconstruction_logits']),
    ],
    inits: [
      initializer('dec_w', [w.latent, w.hidden], w.decoderHidden.w),
      initializer('dec_b', [w.hidden], w.decoderHidden.b),
      initializer('out_w', [w.hidden, w.pixels], w.decoderOut.w),
      initializer('out_b', [w.pixels], w.decoderOut.b),
      onnx.TensorProto.create({ name: 'out_shape', dims: [4], dataType: onnx.TensorProto.DataType.INT64, int64Data: [-1, ...shape] }),
    ],
  };
}

function modelBytes(name: string, graph: onnx.IGraphProto): Uint8Array {
  const model = onnx.ModelProto.create({ irVersion: 7, opsetImport: [{ domain: '', version: 13 }], producerName: 'ood-lens fit', graph: onnx.GraphProto.create({ name, ...graph }) });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * The trained VAE as three ONNX models, NCHW images in [0, 1] (`image` [N, C, H, W]):
 *  - vae: image → reconstruction_logits [N, C, H, W] (decoded at z = μ), mu, logvar;
 *  - encoder: image → mu, logvar [N, 16];  decoder: z [N, 16] → reconstruction_logits (for K-sample bounds).
 */
export function vaeOnnxModels(w: VaeWeights, image: { channels: number; height: number; width: number }): { vae: Uint8Array; encoder: Uint8Array; decoder: Uint8Array } {
  const shape: [number, number, number] = [image.channels, image.height, image.width];
  if (shape[0] * shape[1] * shape[2] !== w.pixels) throw new Error(`VAE of ${w.pixels} pixels cannot take ${shape.join('×')} images`);
  const enc = encoderPart(w);
  const input = valueInfo('image', ['batch', ...shape]);
  const latentOut = (n: string) => valueInfo(n, ['batch', w.latent]);
  const recon = valueInfo('reconstruction_logits', ['batch', ...shape]);
  const full = decoderPart(w, 'mu', shape);
  const dec = decoderPart(w, 'z', shape);
  return {
    vae: modelBytes('vae', { node: [...enc.nodes, ...full.nodes], initializer: [...enc.inits, ...full.inits], input: [input], output: [recon, latentOut('mu'), latentOut('logvar')] }),
    encoder: modelBytes('vae_encoder', { node: enc.nodes, initializer: enc.inits, input: [input], output: [latentOut('mu'), latentOut('logvar')] }),
    decoder: modelBytes('vae_decoder', { node: dec.nodes, initializer: dec.inits, input: [latentOut('z')], output: [recon] }),
  };
}

/** The TF.js forward pass at z = μ (reconstruction logits, mu, logvar): the reference the ONNX graphs are tested against. */
export async function vaeForwardTfjs(w: VaeWeights, data: Float32Array, count: number): Promise<{ logits: Float32Array; mu: Float32Array; logvar: Float32Array }> {
  const { tf } = await tfjsRuntime('cpu');
  const t = (values: Float32Array, dims: number[]) => tf.tensor(values, dims);
  const out = tf.tidy(() => {
    const x = tf.tensor2d(data, [count, w.pixels]);
    const h = tf.relu(tf.add(tf.matMul(x, t(w.encoderHidden.w, [w.pixels, w.hidden])), t(w.encoderHidden.b, [w.hidden])));
    const mu = tf.add(tf.matMul(h, t(w.mu.w, [w.hidden, w.latent])), t(w.mu.b, [w.latent]));
    const logvar = tf.add(tf.matMul(h, t(w.logvar.w, [w.hidden, w.latent])), t(w.logvar.b, [w.latent]));
    const d = tf.relu(tf.add(tf.matMul(mu, t(w.decoderHidden.w, [w.latent, w.hidden])), t(w.decoderHidden.b, [w.hidden])));
    const logits = tf.add(tf.matMul(d, t(w.decoderOut.w, [w.hidden, w.pixels])), t(w.decoderOut.b, [w.pixels]));
    return [logits, mu, logvar];
  });
  const [logits, mu, logvar] = await Promise.all(out.map(async (x) => Float32Array.from(await x.data())));
  tf.dispose(out);
  return { logits, mu, logvar };
}
