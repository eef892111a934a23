/**
 * From model outputs to scores: runs the pair's models on a batch of prepared images and turns their outputs
 * into per-image scores, p-values and verdicts. Knows nothing of files, threads or batching order — the
 * scheduler (batchScheduler.ts) decides what runs when and where, and hands batches of images here.
 */
import { decideTests } from '../pair/calibration';
import { type Compressor, complexityBits, complexityCorrectedScore } from '../detectors/complexity';
import type { FloatTensor } from '../backends/types';
import { errorResult, type ImageResult, type StageTimings } from '../engineTypes';
import { type InputSpec, isUnitScaling } from '../pair/manifest';
import type { LoadedPair } from '../pair/pair';
import { type ModelImage, tensorDims, tensorScaling, toTensorData } from '../image/preprocess';
import { pairImageSpecs } from '../image/fastpath';
import { enlargeIntoTensor } from '../image/onnxResize';
import type { ModelBatch, OodDetector } from '../detectors/oodDetectors';
import * as S from '../detectors/scores';
import type { AlphaShares, TestName, VerdictRule } from '../../shared/rules';
import { mulberry32 } from '../detectors/random';

/**
 * Scores calibrated one way cannot be compared with scores computed another (another compressor, another
 * ELBO estimate): refuse the mix with a message that says how to fix it.
 */
export function checkCalibrationMatches(pair: LoadedPair, compressor: Compressor): void {
  const cal = pair.calibration;
  const samples = pair.manifest.vae?.samples ?? 0;
  // A sampled ELBO sits below the posterior-mean one: compared with the other's calibration, false alarms
  // drift (measured 1.4% instead of 0.88% at α = 0.01 with K = 16 on the MNIST pair).
  if (cal?.vaeSamples !== undefined && cal.vaeSamples !== samples) {
    const what = (k: number) => (k ? `${k} posterior samples` : 'the posterior mean');
    throw new Error(`${pair.manifestPath}: the calibration's ELBOs were computed at ${what(cal.vaeSamples)}, but the manifest's vae.samples asks for ${what(samples)}; run \`ood-lens calibrate\` again`);
  }
  if (!cal?.scores.complexity?.length) return;
  const calibrated = cal.compressor ?? 'png';
  if (calibrated !== compressor) {
    throw new Error(`${pair.manifestPath}: the calibration's complexity scores were computed with ${calibrated}, but the manifest's complexity.compressor is ${compressor}; run \`ood-lens calibrate\` again`);
  }
}

/** Feed buffers kept for reuse: a shard has two batches in flight. */
const FEED_BUFFERS_KEPT = 2;

/** Small deterministic PRNG (mulberry32) + Box–Muller: the same posterior samples for every run. */
function gaussianStream(seed: number): () => number {
  const uniform = mulberry32(seed);
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const u = Math.max(uniform(), 1e-12);
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

interface ModelOutputs {
  classifierOut: Record<string, FloatTensor>;
  /** null for a classifier-only pair. */
  vaeOut: Awaited<ReturnType<BatchScorer['runVae']>> | null;
  bits: number[] | null;
}

export interface BatchScorerOptions {
  alpha: number;
  rule: VerdictRule;
  /** Compute L(x) and S(x) (one compression per image). */
  complexity: boolean;
  compressor: Compressor;
  /** The detectors to score with (oodDetectors.ts, `pairDetectors`). */
  detectors: OodDetector[];
  /** The pair's own shares of α (rule `pair`). */
  pairShares?: AlphaShares;
  /** Awaited before the models run: loads them again where the engine released them (OodEngine, releaseModelsWhileSharded). */
  beforeModels?: () => Promise<void>;
}

/** Runs the models on batches of prepared images and scores them; adds the time of each stage to `timings`. */
export class BatchScorer {
  /** The input spec maps pixels to [0, 1] unnormalised: the VAE's feed is then the likelihood's target. */
  private readonly unitInput: boolean;
  /** Classifier feed buffers whose runs have returned (`takeFeedBuffer`). */
  private readonly feedBuffers: Float32Array[] = [];

  constructor(readonly pair: LoadedPair, private readonly options: BatchScorerOptions, private readonly timings: StageTimings) {
    this.unitInput = isUnitScaling(pair.scaling.vae);
  }

  /** Scores prepared images, turning failures into error records; results in input order. */
  async scorePrepared(paths: string[], prepared: (ModelImage | Error)[], withDetails: boolean): Promise<ImageResult[]> {
    return (await this.inferPrepared(paths, prepared, withDetails))();
  }

  /**
   * Runs the models on the prepared images now and returns the rest of the work (scores, verdicts, error
   * records for failures, in input order) as a function, so that a pipeline can run it while the next
   * batch is being prepared.
   */
  async inferPrepared(paths: string[], prepared: (ModelImage | Error)[], withDetails: boolean): Promise<() => Promise<ImageResult[]>> {
    const ok: ModelImage[] = [];
    const okPaths: string[] = [];
    prepared.forEach((img, i) => {
      if (!(img instanceof Error)) {
        ok.push(img);
        okPaths.push(paths[i]);
      }
    });
    const merge = (scored: ImageResult[]) => {
      let k = 0;
      return prepared.map((img, i) => (img instanceof Error ? errorResult(paths[i], img.message) : scored[k++]));
    };
    if (!ok.length) return async () => merge([]);
    let outputs: ModelOutputs;
    try {
      outputs = await this.runModels(ok);
    } catch (err) {
      return async () => merge(okPaths.map((p) => errorResult(p, (err as Error).message)));
    }
    return async () => {
      const start = performance.now();
      try {
        return merge(await this.finishBatch(ok, okPaths, withDetails, outputs));
      } catch (err) {
        return merge(okPaths.map((p) => errorResult(p, (err as Error).message)));
      } finally {
        this.timings.scoring += performance.now() - start;
      }
    };
  }

  /**
   * One model's batch tensor from its 8-bit images, with that model's size, channels and scaling (`spec`, a
   * resolved pair input; `unit`: pixels in [0, 1], the likelihood's target). An image of another size is
   * refused, never read as if it had this one.
   */
  private batchTensor(images: ModelImage[], spec: InputSpec, unit = false, data?: Float32Array): FloatTensor {
    const { width, height, channels, layout } = spec;
    const size = width * height * channels;
    const feed = data ?? new Float32Array(images.length * size);
    const tensorSpec = unit ? { ...spec, range: [0, 1] as [number, number], mean: undefined, std: undefined } : spec;
    let scaling: ReturnType<typeof tensorScaling> | undefined;
    images.forEach((img, i) => {
      if (img.width !== width || img.height !== height || img.channels !== channels) {
        throw new Error(`an image prepared as ${img.width}×${img.height}×${img.channels} cannot feed a model that takes ${width}×${height}×${channels}`);
      }
      // Enlarged here, with onnxruntime's arithmetic, straight into its slot of the feed (the channel-planar layouts only).
      if (img.enlargeFrom && layout !== 'NHWC') {
        scaling ??= tensorScaling(tensorSpec, channels);
        enlargeIntoTensor(img.enlargeFrom, width, height, scaling, feed.subarray(i * size, (i + 1) * size));
      } else toTensorData(img, tensorSpec, layout, feed, i * size);
    });
    const dims = tensorDims(layout, images.length, channels, height, width);
    return { data: feed, dims };
  }

  /**
   * Whether the classifier's images are read by its feed alone — no VAE reads them (there is none, or it takes its
   * own image) and no L(x) is computed on them — so that they may be enlarged in the feed itself (PrepareOptions).
   */
  get classifierImagesFeedOnlyTheClassifier(): boolean {
    const vaeTakesItsOwnImage = pairImageSpecs(this.pair.inputs).vae !== undefined;
    return vaeTakesItsOwnImage || (!this.pair.inputs.vae && !this.options.complexity);
  }

  /**
   * A buffer for a classifier feed of `n` images, taken from those the last runs gave back (a 16-image 224×224
   * RGB feed is 9.6 MB: a fresh one each batch cost its zeroing and the collector's work), or a new one. Each
   * batch in flight holds its own, so two batches prepared at once never share one.
   */
  private takeFeedBuffer(n: number): Float32Array {
    const { width, height, channels } = this.pair.inputs.classifier;
    const length = n * width * height * channels;
    const k = this.feedBuffers.findIndex((b) => b.length === length);
    return k >= 0 ? this.feedBuffers.splice(k, 1)[0] : new Float32Array(length);
  }

  /** Gives a feed's buffer back once its run has returned, unless an output shares its memory. */
  private giveFeedBuffer(data: Float32Array, outputs: Record<string, FloatTensor>): void {
    if (Object.values(outputs).some((o) => o.data.buffer === data.buffer)) return;
    if (this.feedBuffers.length < FEED_BUFFERS_KEPT) this.feedBuffers.push(data);
  }

  /** Runs the models on one batch and scores it (model errors throw). */
  async scoreBatch(images: ModelImage[], paths: string[], withDetails: boolean): Promise<ImageResult[]> {
    const outputs = await this.runModels(images);
    const scoringStart = performance.now();
    try {
      return await this.finishBatch(images, paths, withDetails, outputs);
    } finally {
      this.timings.scoring += performance.now() - scoringStart;
    }
  }

  /**
   * The classifier alone on one batch: its penultimate features (the pair must expose them) and predictions.
   */
  async features(images: ModelImage[]): Promise<{ features: Float32Array; dims: number; predictions: Int32Array; layers: Float32Array[] }> {
    const p = this.pair;
    if (!p.names.features) throw new Error(`${p.manifestPath}: the classifier's features are not exposed (load the engine with features: true)`);
    await this.options.beforeModels?.();
    const n = images.length;
    const start = performance.now();
    const layerOutputs = p.names.layerOutputs ?? [];
    const feed = this.batchTensor(images, p.inputs.classifier, false, this.takeFeedBuffer(images.length));
    const out = await p.classifier.run({ [p.names.classifierInput]: feed }, [p.names.classifierOutput, p.names.features, ...layerOutputs]);
    this.giveFeedBuffer(feed.data, out);
    this.timings.classifier += performance.now() - start;
    const logits = out[p.names.classifierOutput].data;
    const classes = logits.length / n;
    if (classes !== p.manifest.classifier.labels.length) throw new Error(`${p.classifier.source}: classifier output has ${classes} values per image but the manifest lists ${p.manifest.classifier.labels.length} labels`);
    const features = out[p.names.features].data;
    const dims = features.length / n;
    if (!Number.isInteger(dims) || dims < 1) throw new Error(`${p.classifier.source}: the features output "${p.names.features}" has ${features.length} values for ${n} images`);
    const predictions = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c;
      predictions[i] = best;
    }
    return { features, dims, predictions, layers: layerOutputs.map((name) => out[name].data) };
  }

  /** Both models on one batch, and the complexity of images that do not carry it yet. */
  private async runModels(images: ModelImage[]): Promise<ModelOutputs> {
    await this.options.beforeModels?.();
    const p = this.pair;
    const n = images.length;
    const sc = p.scaling;
    // Without a VAE the classifier's feed is not read after its run: its buffer serves the next batch.
    const classifierFeed = this.batchTensor(images, p.inputs.classifier, false, p.inputs.vae ? undefined : this.takeFeedBuffer(n));
    // The VAE sees its own image when its size or channels differ (prepared beside the classifier's).
    const vaeImages = images.map((img) => img.forVae ?? img);
    const ownImages = images.some((img) => img.forVae);
    const vaeSpec = p.inputs.vae;
    const sameFeed = !ownImages && JSON.stringify(sc.vae) === JSON.stringify(sc.classifier);
    const vaeFeed = !vaeSpec ? null : sameFeed ? classifierFeed : this.batchTensor(vaeImages, vaeSpec);
    // The likelihood's target is the input in [0, 1]: the VAE's own feed when the input spec maps to it.
    const target = !vaeSpec ? null : this.unitInput ? vaeFeed! : this.batchTensor(vaeImages, vaeSpec, true);
    const t = this.timings;
    const timed = async <T>(stage: keyof StageTimings, work: () => Promise<T>): Promise<T> => {
      const start = performance.now();
      try {
        return await work();
      } finally {
        t[stage] += performance.now() - start;
      }
    };
    // One after the other: onnxruntime-node runs each on this thread with its own intra-op threads.
    const wanted = [p.names.classifierOutput, ...(p.names.features ? [p.names.features] : []), ...(p.names.layerOutputs ?? [])];
    const classifierOut = await timed('classifier', () => p.classifier.run({ [p.names.classifierInput]: classifierFeed }, wanted));
    if (!vaeSpec) this.giveFeedBuffer(classifierFeed.data, classifierOut);
    const vaeOut = vaeFeed && target ? await timed('vae', () => this.runVae(vaeFeed, target, n)) : null;
    const start = performance.now();
    // L(x) of the image the VAE sees: S(x) sets it against the VAE's −log p(x).
    const bits = this.options.complexity ? vaeImages.map((img) => img.complexityBits ?? complexityBits(img, this.options.compressor)) : null;
    t.complexity += performance.now() - start;
    return { classifierOut, vaeOut, bits };
  }

  /**
   * The model outputs as the detectors see them (ModelBatch), every detector's OOD score for each image, and
   * the verdict over the rule's detectors.
   */
  private async finishBatch(images: ModelImage[], paths: string[], withDetails: boolean, { classifierOut, vaeOut, bits }: ModelOutputs): Promise<ImageResult[]> {
    const p = this.pair;
    const m = p.manifest;
    const n = images.length;
    const logits = classifierOut[p.names.classifierOutput];
    const classes = logits.data.length / n;
    if (!Number.isInteger(classes) || classes !== m.classifier.labels.length) {
      throw new Error(`${p.classifier.source}: classifier output has ${classes} values per image but the manifest lists ${m.classifier.labels.length} labels`);
    }
    const vaeSpec = p.inputs.vae;
    const dims = vaeSpec ? vaeSpec.width * vaeSpec.height * vaeSpec.channels : 0;
    // A classifier-only pair has no VAE scores: ELBO, its parts and S(x) stay null.
    const vaeScores = vaeOut?.perImage() ?? null;
    const cs = images.map((_, i) => S.classifierScores(logits.data.subarray(i * classes, (i + 1) * classes), m.classifier.outputKind));
    const cScores = images.map((_, i) => (bits && vaeScores && Number.isFinite(vaeScores[i].elbo) ? complexityCorrectedScore(vaeScores[i].elbo, bits[i]) : null));
    const features = p.names.features ? classifierOut[p.names.features] : undefined;
    const featureDims = features ? features.data.length / n : 0;
    if (features && !Number.isInteger(featureDims)) throw new Error(`${p.classifier.source}: the features output "${p.names.features}" has ${features.data.length} values for ${n} images`);
    const batch: ModelBatch = {
      n,
      msp: Float64Array.from(cs, (c) => c.msp),
      energy: Float64Array.from(cs, (c) => c.energy ?? NaN),
      predictions: Int32Array.from(cs, (c) => c.prediction),
      elbo: vaeScores ? Float64Array.from(vaeScores, (v) => v.elbo) : null,
      complexity: bits && vaeScores ? Float64Array.from(cScores, (c) => c ?? NaN) : null,
      features: features?.data ?? null,
      featureDims,
      layerFeatures: p.names.layerOutputs?.length ? p.names.layerOutputs.map((name) => classifierOut[name].data) : null,
    };
    const detectorScores = new Map<TestName, Float64Array>();
    for (const d of this.options.detectors) detectorScores.set(d.test, await d.score(batch));
    const scoreOf = (test: TestName, i: number) => {
      const v = detectorScores.get(test)?.[i];
      return v === undefined || Number.isNaN(v) ? null : v;
    };
    return images.map((img, i) => {
      const v = vaeScores?.[i] ?? null;
      if (v && !Number.isFinite(v.elbo)) return errorResult(paths[i], `the VAE produced a non-finite ELBO (${v.elbo}); the model output is invalid`);
      if (v && v.logPxBound !== null && !Number.isFinite(v.logPxBound)) return errorResult(paths[i], `the VAE produced a non-finite log p(x) bound (${v.logPxBound}); the model output is invalid`);
      const problem = this.nonFiniteOutput(logits.data, classes, features?.data, featureDims, i, cs[i]) ?? this.nonFiniteLayer(batch.layerFeatures, n, i);
      if (problem) return errorResult(paths[i], problem);
      const c = cs[i];
      const cBits = bits && v ? bits[i] : null;
      const oodScores: Partial<Record<TestName, number | null>> = {};
      for (const test of detectorScores.keys()) oodScores[test] = scoreOf(test, i);
      const verdict = decideTests(p.calibration, oodScores, this.options.alpha, this.options.rule, this.options.pairShares);
      const result: ImageResult = {
        path: paths[i],
        prediction: c.prediction,
        label: m.classifier.labels[c.prediction] ?? String(c.prediction),
        msp: c.msp,
        entropy: c.entropy,
        energy: c.energy,
        elbo: v?.elbo ?? null,
        reconstructionLogLik: v?.logLik ?? null,
        kl: v?.kl ?? null,
        elboBitsPerDim: v ? S.bitsPerDim(v.elbo, dims) : null,
        logPxBound: v?.logPxBound ?? null,
        complexityBits: cBits,
        complexityScore: cScores[i],
        pValue: verdict.pValue,
        pValues: verdict.pValues,
        firedBy: verdict.firedBy,
        verdict: verdict.verdict,
        error: null,
      };
      if (detectorScores.has('knn')) result.knnDistance = scoreOf('knn', i);
      if (detectorScores.has('mahalanobis')) result.mahalanobis = scoreOf('mahalanobis', i);
      if (detectorScores.has('layers')) result.layerDistance = scoreOf('layers', i);
      if (verdict.fisherScore !== undefined) result.fisherScore = verdict.fisherScore;
      if (withDetails) {
        const { forVae, ...modelInput } = img;
        result.details = { modelInput, ...(forVae ? { vaeInput: forVae } : {}), reconstruction: vaeOut?.reconstruction(i, forVae ?? img) ?? null, probabilities: Array.from(c.probabilities) };
      }
      return result;
    });
  }

  /**
   * Why image i's classifier outputs cannot be scored: a NaN or ±Infinity logit (or feature) would otherwise
   * become prediction 0 with a NaN MSP that every test passes — a silent "in-distribution".
   */
  private nonFiniteOutput(logits: Float32Array, classes: number, features: Float32Array | undefined, featureDims: number, i: number, c: S.ClassifierScores): string | null {
    const labels = this.pair.manifest.classifier.labels;
    for (let k = 0; k < classes; k++) {
      const x = logits[i * classes + k];
      if (!Number.isFinite(x)) return `the classifier produced a non-finite output (${x} for class ${labels[k] ?? k}); the model output is invalid`;
    }
    if (features) {
      for (let k = 0; k < featureDims; k++) {
        const x = features[i * featureDims + k];
        if (!Number.isFinite(x)) return `the classifier's features output "${this.pair.names.features}" has a non-finite value (${x}); the model output is invalid`;
      }
    }
    const derived = ([['MSP', c.msp], ['entropy', c.entropy], ['energy', c.energy ?? 0]] as const).find(([, x]) => !Number.isFinite(x));
    if (derived) return `the classifier's output gives a non-finite ${derived[0]} (${derived[1]}); the model output is invalid (are outputKind and the model's outputs the same kind?)`;
    return null;
  }

  /**
   * Why image i's earlier-layer values cannot be scored: a NaN or ±Infinity there would make the `layers` test's
   * score empty, a test that can never fire for the image (a silent "in-distribution").
   */
  private nonFiniteLayer(layers: Float32Array[] | null | undefined, n: number, i: number): string | null {
    for (let k = 0; k < (layers?.length ?? 0); k++) {
      const data = layers![k];
      const dims = data.length / n;
      for (let j = i * dims; j < (i + 1) * dims; j++) {
        if (!Number.isFinite(data[j])) return `the earlier-layer test ("layers") cannot score this image: the classifier's layer "${this.pair.names.layerTensors?.[k] ?? k}" has a non-finite value (${data[j]}); the model output is invalid`;
      }
    }
    return null;
  }

  /** Log-likelihood of x (one image, `dims` values) under the decoder output (and log-scales) at `offset`. */
  private logLik(x: Float32Array, out: Float32Array, offset: number, dims: number, logScale: Float32Array | null): number {
    const v = this.pair.manifest.vae!;
    const kind = v.reconstructionKind;
    switch (v.likelihood.type) {
      case 'discretized-logistic':
        return S.discretizedLogisticLogLik(x, out, kind === 'logits', logScale, v.likelihood.scale ?? 1, offset, dims, v.likelihood.levels ?? 256);
      case 'bernoulli':
        return kind === 'logits' ? S.bernoulliLogLikFromLogits(x, out, offset, dims) : S.bernoulliLogLikFromProbs(x, out, offset, dims);
      case 'continuous-bernoulli': {
        const probs = kind === 'logits' ? Float32Array.from(out.subarray(offset, offset + dims), S.sigmoid) : out.subarray(offset, offset + dims);
        return S.continuousBernoulliLogLik(x, probs, 0, dims);
      }
      case 'gaussian':
        return S.gaussianLogLik(x, out, v.likelihood.sigma!, offset, dims);
    }
  }

  private toDisplay(out: Float32Array, offset: number, dims: number, image: ModelImage): Uint8Array {
    // Decoder mean as an 8-bit image in H×W×C order (the VAE output follows the VAE's layout).
    const kind = this.pair.manifest.vae!.reconstructionKind;
    const { width, height, channels } = image;
    const plane = width * height;
    const pixels = new Uint8Array(plane * channels);
    for (let c = 0; c < channels; c++) {
      for (let q = 0; q < plane; q++) {
        const src = offset + (this.pair.vaeLayout === 'NHWC' ? q * channels + c : c * plane + q);
        const mean = kind === 'logits' ? S.sigmoid(out[src]) : out[src];
        pixels[q * channels + c] = Math.round(255 * Math.min(1, Math.max(0, mean)));
      }
    }
    return pixels;
  }

  private async runVae(feed: FloatTensor, target: FloatTensor, n: number) {
    const p = this.pair;
    const v = p.manifest.vae!;
    const dims = target.data.length / n;
    const samples = v.samples ?? 0;
    if (p.vae && samples === 0) {
      const names = v.outputs!;
      const out = await p.vae.run({ [p.names.vaeInput!]: feed }, [names.reconstruction, names.mu, names.logvar, ...(names.logScale ? [names.logScale] : [])]);
      const recon = out[names.reconstruction];
      const mu = out[names.mu];
      const logvar = out[names.logvar];
      const logScale = names.logScale ? out[names.logScale].data : null;
      if (recon.data.length !== target.data.length) {
        throw new Error(`${p.vae.source}: reconstruction has ${recon.data.length / n} values per image, the input has ${dims}`);
      }
      if (logScale && logScale.length !== target.data.length) {
        throw new Error(`${p.vae.source}: ${names.logScale} has ${logScale.length / n} values per image, the input has ${dims}`);
      }
      const latent = mu.data.length / n;
      // Computed when the results are built, so that a pipeline can start the next batch first.
      const perImage = () =>
        Array.from({ length: n }, (_, i) => {
          const logLik = this.logLik(target.data.subarray(i * dims, (i + 1) * dims), recon.data, i * dims, dims, logScale);
          const kl = S.gaussianKl(mu.data, logvar.data, i * latent, latent);
          return { logLik, kl, elbo: logLik - kl, logPxBound: null as number | null };
        });
      return { perImage, reconstruction: (i: number, img: ModelImage) => this.toDisplay(recon.data, i * dims, dims, img) };
    }
    return this.runSampledVae(feed, target, n, Math.max(1, samples));
  }

  /**
   * Split VAE with K posterior samples z_k = μ + σ·ε_k (fixed seed): ELBO = mean_k log p(x|z_k) − KL, and the
   * importance-weighted bound log p(x) ≥ logsumexp_k[log p(x|z_k) + log p(z_k) − log q(z_k|x)] − log K.
   */
  private async runSampledVae(feed: FloatTensor, target: FloatTensor, n: number, k: number) {
    const p = this.pair;
    const v = p.manifest.vae!;
    const enc = v.encoder!;
    const dec = v.decoder!;
    const dims = target.data.length / n;
    const eOut = await p.encoder!.run({ [p.names.encoderInput!]: feed }, [enc.outputs.mu, enc.outputs.logvar]);
    const mu = eOut[enc.outputs.mu].data;
    const logvar = eOut[enc.outputs.logvar].data;
    const latent = mu.length / n;
    const z = new Float32Array(n * k * latent);
    const logPzMinusLogQ = new Float64Array(n * k);
    for (let i = 0; i < n; i++) {
      const noise = gaussianStream(v.seed ?? 0);
      for (let s = 0; s < k; s++) {
        let acc = 0;
        for (let j = 0; j < latent; j++) {
          const eps = noise();
          const sd = Math.exp(0.5 * logvar[i * latent + j]);
          const zj = mu[i * latent + j] + sd * eps;
          z[(i * k + s) * latent + j] = zj;
          // log N(z; 0, 1) − log N(z; μ, σ²): the 0.5·log 2π terms cancel.
          acc += -0.5 * zj * zj + 0.5 * eps * eps + 0.5 * logvar[i * latent + j];
        }
        logPzMinusLogQ[i * k + s] = acc;
      }
    }
    const dOut = await p.decoder!.run({ [p.names.decoderInput!]: { data: z, dims: [n * k, latent] } }, [dec.output, ...(dec.logScaleOutput ? [dec.logScaleOutput] : [])]);
    const recon = dOut[dec.output].data;
    const logScale = dec.logScaleOutput ? dOut[dec.logScaleOutput].data : null;
    if (recon.length !== n * k * dims) throw new Error(`${p.decoder!.source}: decoder output has ${recon.length / (n * k)} values per sample, the input has ${dims}`);
    if (logScale && logScale.length !== n * k * dims) throw new Error(`${p.decoder!.source}: ${dec.logScaleOutput} has ${logScale.length / (n * k)} values per sample, the input has ${dims}`);
    const perImage = () => Array.from({ length: n }, (_, i) => {
      const x = target.data.subarray(i * dims, (i + 1) * dims);
      const lls: number[] = [];
      const weights: number[] = [];
      for (let s = 0; s < k; s++) {
        const ll = this.logLik(x, recon, (i * k + s) * dims, dims, logScale);
        lls.push(ll);
        weights.push(ll + logPzMinusLogQ[i * k + s]);
      }
      const logLik = lls.reduce((a, b) => a + b, 0) / k;
      const kl = S.gaussianKl(mu, logvar, i * latent, latent);
      return { logLik, kl, elbo: logLik - kl, logPxBound: S.logSumExp(weights) - Math.log(k) };
    });
    return {
      perImage,
      reconstruction: (i: number, img: ModelImage) => {
        // Average decoder mean over the samples, for display.
        const mean = new Float32Array(dims);
        for (let s = 0; s < k; s++) {
          const disp = this.toDisplay(recon, (i * k + s) * dims, dims, img);
          for (let q = 0; q < dims; q++) mean[q] += disp[q] / k;
        }
        return Uint8Array.from(mean, (x) => Math.round(x));
      },
    };
  }
}
