/**
 * A loaded pair: manifest, runtimes for its models, and its calibration. Loading checks the whole pair
 * against what the model files declare, and runs each model once on probe images, before any image is
 * scored: shapes, label count, logits vs probabilities, output names. Every failure names the manifest
 * field and the fix (PairCheckError).
 */
import { BoundedReadError, LIMITS, readBoundedSync } from '../io/boundedRead';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Calibration, readCalibration } from './calibration';
import { type ImageGeometry, type InputSpec, type Layout, loadPairManifest, type ModelFormat, modelScaling, oversizeInput, type PairManifest, type ResolvedScaling, resolveIn, type ResolvedPair, type SharedInputSpec } from './manifest';
import { type FloatTensor, type LoadOptions, ModelError, type ModelRunner, type TensorInfo } from '../backends/types';
import { declaredStaticBatch, StaticBatchRunner, withAnyBatch } from '../backends/staticBatch';
import { withConstants } from '../backends/constantInputs';
import { type ModelImage, tensorDims, toTensorData } from '../image/preprocess';
import { type FeatureFit, readFeatureFit } from '../features/featureFit';

/** The default MNIST pair shipped in models/mnist (found relative to the bundle or the sources). */
export function builtInPairDir(name = 'mnist'): string {
  // dist/<bundle>.js → ../models; src/inference/pair/pair.ts → ../../../models
  const candidates = [join(__dirname, '..', 'models', name), join(__dirname, '..', '..', '..', 'models', name)];
  return candidates.find((c) => existsSync(join(c, 'ood-pair.json'))) ?? candidates[0];
}

export async function loadModel(path: string, format: ModelFormat, options: LoadOptions, bytes?: Uint8Array): Promise<ModelRunner> {
  let runner: ModelRunner;
  if (format === 'onnx') {
    const { loadOnnx } = await import('../backends/onnx');
    runner = await loadOnnx(path, options, bytes);
  } else {
    const { loadTfjs } = await import('../backends/tfjs');
    runner = await loadTfjs(path, format, options);
  }
  try {
    return withConstants(runner, options.constants);
  } catch (err) {
    await runner.dispose();
    throw err;
  }
}

/** A pair that does not fit its model files: `field` is the manifest field to change, the message says how. */
export class PairCheckError extends Error {
  constructor(readonly manifestPath: string, readonly field: string, readonly problem: string) {
    super(`${manifestPath}: ${field}: ${problem}`);
    this.name = 'PairCheckError';
  }
}

export interface LoadedPair extends ResolvedPair {
  classifier: ModelRunner;
  /** Single-file VAE (image → reconstruction, mu, logvar), when the manifest has vae.path. */
  vae?: ModelRunner;
  encoder?: ModelRunner;
  decoder?: ModelRunner;
  calibration?: Calibration;
  classifierLayout: Layout;
  vaeLayout: Layout;
  /** How each model's tensor is made from the 8-bit image (own fields, else the shared input's). */
  scaling: { classifier: ResolvedScaling; vae: ResolvedScaling };
  /**
   * Each model's input, resolved: size, channels and padding (own fields, else the shared input's, else what
   * the model file declares), the shared decoding options, and its scaling. `vae` is absent without a VAE.
   */
  inputs: { classifier: InputSpec; vae?: InputSpec };
  /** Fixed batch sizes the model files declare (their runners split any batch into these). */
  staticBatch: { classifier?: number; vae?: number; encoder?: number; decoder?: number };
  /** Tensor names after defaults are filled in from the models. */
  names: {
    classifierInput: string;
    classifierOutput: string;
    vaeInput?: string;
    encoderInput?: string;
    decoderInput?: string;
    /** The classifier output holding the penultimate features (when the pair uses or fits them). */
    features?: string;
    /** The classifier outputs holding earlier layers' pooled activations (the `layers` test), in order. */
    layerOutputs?: string[];
    /** The activation tensor each of those is pooled from. */
    layerTensors?: string[];
  };
  /** The fitted feature detectors (manifest `features.fit`). */
  featureFit?: FeatureFit;
  /** How the models were loaded (the KNN search loads its own onnxruntime session the same way). */
  loadOptions: LoadOptions;
}

export interface PairLoadExtras {
  /** Expose the classifier's features even when the manifest does not ask for them (to fit detectors). */
  features?: boolean;
}

/**
 * Loads the classifier with its penultimate features among its outputs: the named output, or (ONNX, no name)
 * the input of its last Gemm/MatMul, exposed by editing the graph in memory. ONNX and TF.js layers models: `layers`
 * also exposes earlier conv blocks' activations pooled to 2×2 — the fitted ones (tensor or layer names), or when
 * fitting (`'choose'`) the last MAX_EXPOSED_LAYERS conv-block activations of the model.
 */
async function loadClassifierWithFeatures(path: string, m: PairManifest, options: LoadOptions, layers?: string[] | 'choose'): Promise<{ runner: ModelRunner; features: string; layers?: { tensor: string; output: string }[] }> {
  const named = m.features?.output ?? m.features?.layer;
  if (m.classifier.format !== 'onnx') {
    if (!named) throw new ModelError(path, 'the feature detectors need the classifier\'s features: name the layer that produces them (features.layer) for a TensorFlow.js model');
    const layersModel = m.classifier.format === 'tfjs-layers';
    const layer = layersModel && m.features?.layer;
    // Layers models: the earlier conv blocks too, pooled to 2×2 by the TF.js backend (graph models: none).
    const layerPools = layersModel && layers ? { layerPools: layers === 'choose' ? { last: (await import('../features/onnxGraph')).MAX_EXPOSED_LAYERS } : layers } : {};
    const runner = await loadModel(path, m.classifier.format, { ...options, ...(layer ? { outputLayers: [layer] } : {}), ...layerPools });
    if (!runner.outputs.some((o) => o.name === named)) {
      await runner.dispose();
      throw new ModelError(path, `has no output named "${named}" for the features (outputs: ${runner.outputs.map((o) => o.name).join(', ')}); fix features.${m.features?.output ? 'output' : 'layer'} in the pair manifest`);
    }
    return { runner, features: named, layers: runner.layerPools };
  }
  const { decodeOnnxModel, exposePenultimateIn, exposeLayerPoolsIn, graphCounts, lastConvActivations, withGraphAdditions } = await import('../features/onnxGraph');
  let bytes: Uint8Array;
  try {
    // Room after the model for the graph additions below (64 KB: a few KB for the penultimate layer and four pooled layers).
    bytes = readBoundedSync(path, { maxBytes: LIMITS.modelBytes, what: 'model file', spareBytes: 64 * 1024 });
  } catch (err) {
    throw new ModelError(path, err instanceof BoundedReadError ? err.reason : (err as Error).message);
  }
  // Decoded once for every edit below; the edits only add to the graph, and onnxruntime gets the additions
  // appended to the model's own bytes (onnxGraph.ts withGraphAdditions).
  const model = !named || layers ? decodeOnnxModel(bytes, path) : undefined;
  const before = model ? graphCounts(model) : undefined;
  let edited = false;
  let features: string;
  if (named) features = named;
  else {
    const exposed = exposePenultimateIn(model!, path);
    features = exposed.name;
    edited = exposed.changed;
  }
  let exposedLayers: { tensor: string; output: string }[] | undefined;
  let poolInJs = false;
  if (layers) {
    const tensors = layers === 'choose' ? lastConvActivations(model!) : layers;
    if (tensors.length) {
      const exposed = exposeLayerPoolsIn(model!, path, tensors);
      exposedLayers = exposed.layers;
      poolInJs = !!exposed.poolInJs;
      edited = true;
    }
  }
  if (edited) bytes = withGraphAdditions(bytes, model!, before!);
  let runner = await loadModel(path, 'onnx', options, bytes);
  // An old opset's graph gives the activations whole: they are pooled as they come back.
  if (poolInJs && exposedLayers) runner = new (await import('../features/layerPooling')).JsPooledLayersRunner(runner, exposedLayers);
  if (named && !runner.outputs.some((o) => o.name === named)) {
    await runner.dispose();
    throw new ModelError(path, `has no output named "${named}" for the features (outputs: ${runner.outputs.map((o) => o.name).join(', ')}); fix features.output in the pair manifest`);
  }
  return { runner, features, layers: exposedLayers };
}

const list = (infos: TensorInfo[]) => infos.map((t) => `"${t.name}"${t.shape ? ` ${fmtShape(t.shape)}` : ''}`).join(', ');
export const fmtShape = (s: (number | null)[]) => `[${s.map((d) => (d === null ? '?' : d)).join(', ')}]`;

export interface LoadPairOptions extends LoadOptions {
  /** `calibrate` and `fit` create the calibration file the manifest names. */
  calibrationMayBeMissing?: boolean;
}

export async function loadPair(location: string, options: LoadPairOptions, calibrationOverride?: Calibration, extras: PairLoadExtras = {}): Promise<LoadedPair> {
  const resolved = loadPairManifest(location, { calibrationMayBeMissing: options.calibrationMayBeMissing || calibrationOverride !== undefined });
  const m: PairManifest = resolved.manifest;
  options = { ...options, lowMemory: !!options.lowMemory };
  const fail = (field: string, problem: string): never => {
    throw new PairCheckError(resolved.manifestPath, field, problem);
  };
  const opened: ModelRunner[] = [];
  const staticBatch: LoadedPair['staticBatch'] = {};
  const open = async (p: string, format: ModelFormat, key: keyof LoadedPair['staticBatch'], constants?: Record<string, number>) => {
    const raw = await loadModel(resolveIn(resolved, p), format, { ...options, constants });
    opened.push(raw);
    staticBatch[key] = declaredStaticBatch(raw);
    return withAnyBatch(raw);
  };
  /** The one tensor of `kind` the field names, or the only one; several and none named is refused. */
  const pick = (runner: ModelRunner, kind: 'inputs' | 'outputs', field: string, given: string | undefined, prefer?: (t: TensorInfo) => boolean, skip: string[] = []): string => {
    // `skip`: outputs the pair exposes itself (the classifier's features), never a candidate by default.
    const infos = runner[kind].filter((t) => given !== undefined || !skip.includes(t.name));
    const what = kind === 'inputs' ? 'input' : 'output';
    const duplicates = infos.map((t) => t.name).filter((n, i, all) => all.indexOf(n) !== i);
    if (given) {
      if (duplicates.includes(given)) fail(field, `"${given}" names ${infos.filter((t) => t.name === given).length} ${what}s of ${runner.source}; it is ambiguous (${what}s: ${list(infos)})`);
      if (!infos.some((t) => t.name === given)) fail(field, `${runner.source} has no ${what} named "${given}"; it has ${list(infos) || 'none'}`);
      return given;
    }
    if (infos.length === 0) fail(field, `${runner.source} declares no ${what}s`);
    if (infos.length === 1) return infos[0].name;
    const preferred = prefer ? infos.filter(prefer) : [];
    if (preferred.length === 1) return preferred[0].name;
    return fail(field, `${runner.source} has ${infos.length} ${what}s (${list(infos)}); name the one to use in ${field}`);
  };
  const requireOutputs = (runner: ModelRunner, fields: Record<string, string | undefined>) => {
    for (const [field, name] of Object.entries(fields)) if (name !== undefined) pick(runner, 'outputs', field, name);
  };
  try {
    const scaling = { classifier: modelScaling(m.input, m.classifier), vae: modelScaling(m.input, m.vae) };
    const wantFeatures = extras.features || !!m.features;
    let classifier: ModelRunner;
    let featureName: string | undefined;
    let layerOutputs: { tensor: string; output: string }[] | undefined;
    // The fitted detectors first: the earlier layers they were fitted on are exposed in the classifier's graph.
    const featureFit = m.features?.fit ? readFeatureFit(resolveIn(resolved, m.features.fit)) : undefined;
    const fittedLayers = featureFit?.layers?.map((l) => l.tensor);
    if (wantFeatures) {
      const layerWish = extras.features && !fittedLayers ? 'choose' : fittedLayers;
      const loaded = await loadClassifierWithFeatures(resolveIn(resolved, m.classifier.path), m, { ...options, constants: m.classifier.constants }, layerWish);
      opened.push(loaded.runner);
      staticBatch.classifier = declaredStaticBatch(loaded.runner);
      classifier = withAnyBatch(loaded.runner);
      featureName = loaded.features;
      layerOutputs = loaded.layers;
      if (fittedLayers && loaded.layers?.length !== fittedLayers.length) throw new ModelError(loaded.runner.source, `the earlier-layer detector was fitted on ${fittedLayers.length} layers, but ${loaded.layers?.length ?? 0} could be exposed; fit the detectors again`);
    } else {
      classifier = await open(m.classifier.path, m.classifier.format, 'classifier', m.classifier.constants);
    }
    const labels = m.classifier.labels.length;
    const names: LoadedPair['names'] = {
      classifierInput: pick(classifier, 'inputs', 'classifier.input', m.classifier.input),
      // Among several outputs, the one shaped [batch, labels] is unambiguous (an exposed feature output never counts).
      classifierOutput: pick(classifier, 'outputs', 'classifier.output', m.classifier.output, (t) => !!t.shape && t.shape.length === 2 && t.shape[1] === labels, [...(featureName ? [featureName] : []), ...(layerOutputs ?? []).map((l) => l.output)]),
      features: featureName,
      ...(layerOutputs?.length ? { layerOutputs: layerOutputs.map((l) => l.output), layerTensors: layerOutputs.map((l) => l.tensor) } : {}),
    };
    const classifierInput = resolveModelInput(m.input, m.classifier, classifier, names.classifierInput, scaling.classifier, 'classifier', 'classifier', fail);
    const pair: LoadedPair = {
      ...resolved,
      classifier,
      classifierLayout: scaling.classifier.layout,
      vaeLayout: scaling.vae.layout,
      scaling,
      inputs: { classifier: classifierInput },
      staticBatch,
      names,
      loadOptions: options,
    };
    if (m.features?.fit && featureFit) {
      const fitPath = resolveIn(resolved, m.features.fit);
      pair.featureFit = featureFit;
      if (featureName && pair.featureFit.tensor !== featureName) {
        throw new ModelError(fitPath, `was fitted on the classifier tensor "${pair.featureFit.tensor}", but the features now come from "${featureName}"; fit the detectors again`);
      }
    }
    const v = m.vae;
    if (v?.path && v.format && v.outputs) {
      pair.vae = await open(v.path, v.format, 'vae');
      names.vaeInput = pick(pair.vae, 'inputs', 'vae.input', v.input);
      requireOutputs(pair.vae, { 'vae.outputs.reconstruction': v.outputs.reconstruction, 'vae.outputs.mu': v.outputs.mu, 'vae.outputs.logvar': v.outputs.logvar, 'vae.outputs.logScale': v.outputs.logScale });
      pair.inputs.vae = resolveModelInput(m.input, v, pair.vae, names.vaeInput, scaling.vae, 'vae', 'vae', fail);
    }
    // The split VAE is run only for posterior samples (vae.samples) or when there is no single-file VAE
    // (BatchScorer.runVae): beside a single-file VAE scored at the posterior mean its two models would be loaded
    // for nothing. fit writes all three; for its 64×64 RGB VAE that is 40 MB of weights in every scoring shard.
    if (v?.encoder && v.decoder && (!pair.vae || (v.samples ?? 0) > 0)) {
      pair.encoder = await open(v.encoder.path, v.encoder.format, 'encoder');
      pair.decoder = await open(v.decoder.path, v.decoder.format, 'decoder');
      names.encoderInput = pick(pair.encoder, 'inputs', 'vae.encoder.input', v.encoder.input);
      names.decoderInput = pick(pair.decoder, 'inputs', 'vae.decoder.input', v.decoder.input);
      requireOutputs(pair.encoder, { 'vae.encoder.outputs.mu': v.encoder.outputs.mu, 'vae.encoder.outputs.logvar': v.encoder.outputs.logvar });
      requireOutputs(pair.decoder, { 'vae.decoder.output': v.decoder.output, 'vae.decoder.logScaleOutput': v.decoder.logScaleOutput });
      const encoderInput = resolveModelInput(m.input, v, pair.encoder, names.encoderInput, scaling.vae, 'vae', 'vae.encoder', fail);
      const single = pair.inputs.vae;
      if (single && (single.width !== encoderInput.width || single.height !== encoderInput.height || single.channels !== encoderInput.channels)) {
        fail('vae.encoder', `${pair.encoder.source} takes ${describeSize(encoderInput)} images but the single-file VAE ${pair.vae!.source} takes ${describeSize(single)}; both must be the same VAE`);
      }
      pair.inputs.vae = encoderInput;
    }
    await probePair(pair, fail);
    if (calibrationOverride) pair.calibration = calibrationOverride;
    else if (m.calibration && existsSync(resolveIn(resolved, m.calibration))) pair.calibration = readCalibration(resolveIn(resolved, m.calibration));
    return pair;
  } catch (err) {
    await Promise.allSettled(opened.map((r) => r.dispose()));
    throw err;
  }
}

export const describeSize = (s: Pick<InputSpec, 'width' | 'height' | 'channels'>) => `${s.width}×${s.height}×${s.channels}`;

/**
 * One model's input, resolved from the manifest and the model file: each of size and channels is the model's
 * own field (`classifier.width`), else the shared `input.width`, else what the model declares; a stated value
 * that contradicts the declared shape is refused naming the field and the fix, as is a layout that does not
 * fit it. Padding and mean/std are then checked against the resolved size and channels.
 */
function resolveModelInput(shared: SharedInputSpec, own: ImageGeometry, runner: ModelRunner, name: string, scaling: ResolvedScaling, model: 'classifier' | 'vae', role: string, fail: (field: string, problem: string) => never): InputSpec {
  const layout = scaling.layout;
  const declaredInputs = runner instanceof StaticBatchRunner ? runner.declaredInputs : runner.inputs;
  const shape = declaredInputs.find((t) => t.name === name)?.shape ?? null;
  const declared = `${runner.source} declares input "${name}" as ${shape ? fmtShape(shape) : '(no shape)'}`;
  const layoutField = model === 'classifier' ? 'classifier.layout' : 'vae.layout';
  const dtype = declaredInputs.find((t) => t.name === name)?.dtype;
  // A uint8 input is fed the 8-bit pixels themselves: any other scaling would be rounded into nonsense.
  if (dtype === 'uint8' && (scaling.range[0] !== 0 || scaling.range[1] !== 255 || scaling.mean || scaling.std)) {
    fail(`${model}.range`, `${declared} of type uint8: it takes the 8-bit pixels, so its range must be [0, 255] with no mean or std; set ${model}.range to [0, 255] and remove ${model}.mean / ${model}.std`);
  }
  if (shared.enlargeWith === 'onnxruntime' && ((shared.resizeKernel ?? 'lanczos3') !== 'linear' || (shared.resize ?? 'fill') !== 'fill')) {
    fail('input.enlargeWith', `"onnxruntime" enlarges bilinearly and stretches to the exact size, so it needs input.resizeKernel "linear" and input.resize "fill" (they are ${shared.resizeKernel ?? 'lanczos3 (the default)'} and ${shared.resize ?? 'fill'}); set them, or set input.enlargeWith to "libvips"`);
  }
  if (layout === 'flat') return flatModelInput(shared, own, shape, declared, scaling, model, fail);
  if (shape && shape.length === 2) fail(layoutField, `${declared}, a flat vector per image; set ${layoutField} to "flat" and give ${model}.width, ${model}.height and ${model}.channels (or input.*): the image size it was trained on`);
  if (shape && shape.length !== 4) fail(`${role}.input`, `${declared}; OOD Lens feeds images as 4-d tensors ([batch, channels, height, width] or [batch, height, width, channels]) or flat vectors ([batch, channels·height·width], layout "flat")`);
  const asLayout = (l: Layout) => (!shape ? { ch: null, h: null, w: null } : l === 'NCHW' ? { ch: shape[1], h: shape[2], w: shape[3] } : { ch: shape[3], h: shape[1], w: shape[2] });
  // What the manifest states for this model, and in which field.
  const stated = {
    width: own.width ?? shared.width,
    height: own.height ?? shared.height,
    channels: own.channels ?? shared.channels,
  };
  const fieldOf = (key: 'width' | 'height' | 'channels') => (own[key] !== undefined ? `${model}.${key}` : `input.${key}`);
  const fits = (l: Layout) => {
    const d = asLayout(l);
    const ok = (got: number | null, want: number | undefined) => got === null || want === undefined || got === want;
    return ok(d.ch, stated.channels) && ok(d.h, stated.height) && ok(d.w, stated.width) && (d.ch === null || d.ch === 1 || d.ch === 3);
  };
  const other: Layout = layout === 'NCHW' ? 'NHWC' : 'NCHW';
  if (shape && !fits(layout) && fits(other)) fail(layoutField, `${declared}, which is ${other}, but the manifest feeds it ${layout}; set ${layoutField} to "${other}"`);
  const d = asLayout(layout);
  if (d.ch !== null && d.ch !== 1 && d.ch !== 3) fail(layoutField, `${declared}: ${d.ch} channels in ${layout}; OOD Lens feeds 1 (grey) or 3 (RGB) channels — check ${layoutField}`);
  if (d.ch !== null && stated.channels !== undefined && d.ch !== stated.channels) {
    const f = fieldOf('channels');
    const fix = f === 'input.channels' ? `set input.channels to ${d.ch}${model === 'vae' ? `, or vae.channels to ${d.ch} to give the VAE its own` : ''}` : `set ${f} to ${d.ch}, or remove it (it is read from the model)`;
    fail(f, `${declared} (${d.ch} channel${d.ch === 1 ? '' : 's'} in ${layout}) but ${f} is ${stated.channels}; ${fix}`);
  }
  const wrongW = d.w !== null && stated.width !== undefined && d.w !== stated.width;
  const wrongH = d.h !== null && stated.height !== undefined && d.h !== stated.height;
  if (wrongW || wrongH) {
    const sizeOwn = own.width !== undefined || own.height !== undefined;
    const f = sizeOwn ? `${model}.width/${model}.height` : 'input.width/input.height';
    const target = `${d.w ?? stated.width}`;
    const targetH = `${d.h ?? stated.height}`;
    const fix = sizeOwn
      ? `set ${model}.width to ${target} and ${model}.height to ${targetH}, or remove them (the size is read from the model)`
      : `set input.width to ${target} and input.height to ${targetH}${model === 'vae' ? `, or vae.width/vae.height to give the VAE its own size` : ''}`;
    fail(f, `${declared} (${d.w ?? '?'}×${d.h ?? '?'} in ${layout}) but the manifest's ${sizeOwn ? model : 'input'} is ${stated.width ?? '?'}×${stated.height ?? '?'}; ${fix}`);
  }
  const width = stated.width ?? d.w;
  const height = stated.height ?? d.h;
  const channels = stated.channels ?? d.ch;
  if (width === null || height === null || channels === null) {
    const free = [width === null && 'width', height === null && 'height', channels === null && 'channels'].filter(Boolean).join(', ');
    fail(`${model}.${width === null ? 'width' : height === null ? 'height' : 'channels'}`, `${declared}, which leaves its ${free} free; give ${model}.width, ${model}.height and ${model}.channels (or input.*): the size it was trained on`);
  }
  const tooLarge = oversizeInput(width!, height!);
  if (tooLarge) fail(`${model}.width/${model}.height`, `${declared}: ${tooLarge}`);
  const padding = own.padding ?? shared.padding ?? 0;
  if (padding && 2 * padding >= Math.min(width!, height!)) fail(own.padding !== undefined ? `${model}.padding` : 'input.padding', `${padding} on each side leaves no room for the image in the ${model}'s ${width}×${height}; set ${model}.padding`);
  for (const key of ['mean', 'std'] as const) {
    const values = scaling[key];
    if (values && values.length !== channels) fail(`${model}.${key}`, `has ${values.length} value(s) but the ${model} takes ${channels} channel(s) (${declared}); give one value per channel`);
  }
  const { width: _w, height: _h, channels: _c, padding: _p, ...decoding } = shared;
  return { ...decoding, ...scaling, width: width!, height: height!, channels: channels as 1 | 3, padding };
}

/**
 * A model that takes flat vectors ([batch, channels·height·width], layout "flat"): the image size cannot be read
 * from the shape, so width and height must be stated; channels are stated or follow from the vector length.
 */
function flatModelInput(shared: SharedInputSpec, own: ImageGeometry, shape: (number | null)[] | null, declared: string, scaling: ResolvedScaling, model: 'classifier' | 'vae', fail: (field: string, problem: string) => never): InputSpec {
  const layoutField = model === 'classifier' ? 'classifier.layout' : 'vae.layout';
  if (shape && shape.length !== 2) fail(layoutField, `${declared}, not a flat vector per image ([batch, values]); set ${layoutField} to "NCHW" or "NHWC"`);
  const width = own.width ?? shared.width;
  const height = own.height ?? shared.height;
  if (width === undefined || height === undefined) fail(`${model}.width`, `${declared} as flat vectors (layout "flat"): give ${model}.width and ${model}.height (or input.*), the image size it was trained on`);
  const length = shape?.[1] ?? null;
  const channels = own.channels ?? shared.channels ?? (length !== null ? length / (width! * height!) : undefined);
  if (channels !== 1 && channels !== 3) fail(`${model}.channels`, `${declared}: ${length ?? '?'} values per image are not ${width}×${height} grey (${width! * height!}) or RGB (${3 * width! * height!}); check ${model}.width / ${model}.height`);
  if (length !== null && length !== width! * height! * channels!) fail(`${model}.width`, `${declared}: ${length} values per image, but ${width}×${height}×${channels} is ${width! * height! * channels!}; give the size it was trained on`);
  const padding = own.padding ?? shared.padding ?? 0;
  for (const key of ['mean', 'std'] as const) {
    const values = scaling[key];
    if (values && values.length !== channels) fail(`${model}.${key}`, `has ${values.length} value(s) but the ${model} takes ${channels} channel(s) (${declared}); give one value per channel`);
  }
  const { width: _w, height: _h, channels: _c, padding: _p, ...decoding } = shared;
  return { ...decoding, ...scaling, width: width!, height: height!, channels: channels as 1 | 3, padding };
}

/** Two fixed images (mid grey, and a seeded noise pattern) at the pair's input size. */
export function probeImages(spec: InputSpec): ModelImage[] {
  const size = spec.width * spec.height * spec.channels;
  let seed = 12345;
  // A loop, not Uint8Array.from with a callback: 15–19 ms of every scoring shard's start for 224×224 RGB.
  const noise = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    noise[i] = seed >>> 24;
  }
  return [new Uint8Array(size).fill(128), noise].map((pixels) => ({ width: spec.width, height: spec.height, channels: spec.channels, pixels }));
}

export function probeTensor(images: ModelImage[], spec: InputSpec, scaling: ResolvedScaling): FloatTensor {
  const { width, height, channels } = spec;
  const size = width * height * channels;
  const data = new Float32Array(images.length * size);
  images.forEach((img, i) => toTensorData(img, { ...spec, ...scaling }, scaling.layout, data, i * size));
  return { data, dims: tensorDims(scaling.layout, images.length, channels, height, width) };
}

/** Per-row facts about a classifier output, used to tell logits from probabilities. */
export function describeRows(out: FloatTensor, rows: number): { perRow: number; min: number; max: number; sums: number[]; looksLikeProbabilities: boolean; finite: boolean } {
  const perRow = out.data.length / rows;
  let min = Infinity;
  let max = -Infinity;
  let finite = true;
  const sums: number[] = [];
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let k = 0; k < perRow; k++) {
      const v = out.data[r * perRow + k];
      if (!Number.isFinite(v)) finite = false;
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
    }
    sums.push(sum);
  }
  const looksLikeProbabilities = finite && min >= -1e-5 && max <= 1 + 1e-5 && sums.every((s) => Math.abs(s - 1) < 1e-3);
  return { perRow, min, max, sums, looksLikeProbabilities, finite };
}

const round = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3));

/**
 * Runs every model of the pair once on the probe images: what only running shows (output sizes, label
 * count, logits vs probabilities, reconstruction size, latent sizes) is checked here, not per image.
 */
async function probePair(pair: LoadedPair, fail: (field: string, problem: string) => never): Promise<void> {
  const m = pair.manifest;
  const images = probeImages(pair.inputs.classifier);
  const n = images.length;
  const run = async (runner: ModelRunner, field: string, feeds: Record<string, FloatTensor>, outputs: string[]) => {
    try {
      return await runner.run(feeds, outputs);
    } catch (err) {
      const message = err instanceof ModelError ? err.message : `${runner.source}: ${(err as Error).message}`;
      const model = field === 'classifier' ? 'classifier' : 'vae';
      const spec = model === 'classifier' ? pair.inputs.classifier : pair.inputs.vae!;
      return fail(field, `the model failed on a probe image of ${describeSize(spec)} (${message}); check ${model}.width, ${model}.height, ${model}.channels (or input.*) and ${model}.layout`);
    }
  };
  const c = m.classifier;
  const out = (await run(pair.classifier, 'classifier', { [pair.names.classifierInput]: probeTensor(images, pair.inputs.classifier, pair.scaling.classifier) }, [pair.names.classifierOutput]))[pair.names.classifierOutput];
  const rows = describeRows(out, n);
  if (!Number.isInteger(rows.perRow) || rows.perRow < 2) fail('classifier.output', `"${pair.names.classifierOutput}" gives ${out.data.length} values for ${n} images; it needs one score per class per image`);
  if (rows.perRow !== c.labels.length) fail('classifier.labels', `lists ${c.labels.length} labels but "${pair.names.classifierOutput}" of ${pair.classifier.source} gives ${rows.perRow} values per image; list ${rows.perRow} labels, in output order`);
  if (!rows.finite) fail('classifier', `${pair.classifier.source} gives non-finite outputs on a probe image; the model or its input scaling (classifier.range/mean/std) is broken`);
  // A classifier whose answer for an image depends on the rest of its batch (BatchNorm or Dropout left in
  // training mode) would give one image two verdicts: each probe image alone must give what it gave in the pair.
  // A pair written with `fit --force` over fit's own batch probe is loaded as forced (info, score and the panel warn).
  const forcedOverBatch = m.fit?.check?.forced !== undefined && m.fit.check.batchProbe.independent === false;
  for (let i = 0; i < (forcedOverBatch ? 0 : n); i++) {
    const alone = (await run(pair.classifier, 'classifier', { [pair.names.classifierInput]: probeTensor([images[i]], pair.inputs.classifier, pair.scaling.classifier) }, [pair.names.classifierOutput]))[pair.names.classifierOutput].data;
    let scale = 1e-6;
    let diff = 0;
    for (let k = 0; k < rows.perRow; k++) {
      scale = Math.max(scale, Math.abs(out.data[i * rows.perRow + k]));
      diff = Math.max(diff, Math.abs(alone[k] - out.data[i * rows.perRow + k]));
    }
    if (diff / scale > 1e-3) {
      fail('classifier', `${pair.classifier.source} answers a probe image differently alone than inside a batch of ${n} (outputs differ by up to ${(100 * diff / scale).toFixed(1)}% of their scale): its output depends on the other images in the batch, so one image could get two verdicts. A BatchNorm or Dropout layer left in training mode is the usual cause: export the model in inference mode (PyTorch: model.eval() before torch.onnx.export)`);
    }
  }
  if (c.outputKind === 'probabilities' && !rows.looksLikeProbabilities) {
    fail('classifier.outputKind', `is "probabilities" but "${pair.names.classifierOutput}" does not hold probabilities (on probe images its values run from ${round(rows.min)} to ${round(rows.max)} and rows sum to ${rows.sums.map(round).join(', ')}); set "logits"`);
  }
  if (c.outputKind === 'logits' && rows.looksLikeProbabilities) {
    fail('classifier.outputKind', `is "logits" but "${pair.names.classifierOutput}" already holds probabilities (on probe images every row is in [0, 1] and sums to 1); set "probabilities"`);
  }
  const v = m.vae;
  if (!v) return;
  // The VAE's probe images at its own size and channels.
  const vaeInput = pair.inputs.vae!;
  const feed = probeTensor(probeImages(vaeInput), vaeInput, pair.scaling.vae);
  const pixels = feed.data.length / n;
  const perImage = (t: FloatTensor) => t.data.length / n;
  let latent: number | undefined;
  if (pair.vae && v.outputs) {
    const names = v.outputs;
    const o = await run(pair.vae, 'vae', { [pair.names.vaeInput!]: feed }, [names.reconstruction, names.mu, names.logvar, ...(names.logScale ? [names.logScale] : [])]);
    if (perImage(o[names.reconstruction]) !== pixels) fail('vae.outputs.reconstruction', `"${names.reconstruction}" of ${pair.vae.source} gives ${perImage(o[names.reconstruction])} values per image but the input has ${pixels}; name the reconstruction output`);
    if (names.logScale && perImage(o[names.logScale]) !== pixels) fail('vae.outputs.logScale', `"${names.logScale}" gives ${perImage(o[names.logScale])} values per image but the input has ${pixels}`);
    if (perImage(o[names.mu]) !== perImage(o[names.logvar])) fail('vae.outputs', `"${names.mu}" (mu) gives ${perImage(o[names.mu])} values per image and "${names.logvar}" (logvar) ${perImage(o[names.logvar])}; they must be the posterior mean and log-variance of the same latent`);
    latent = perImage(o[names.mu]);
    checkReconstructionKind(o[names.reconstruction], 'vae.reconstructionKind', v.reconstructionKind, fail);
  }
  if (pair.encoder && pair.decoder && v.encoder && v.decoder) {
    const e = await run(pair.encoder, 'vae.encoder', { [pair.names.encoderInput!]: feed }, [v.encoder.outputs.mu, v.encoder.outputs.logvar]);
    const mu = e[v.encoder.outputs.mu];
    if (perImage(mu) !== perImage(e[v.encoder.outputs.logvar])) fail('vae.encoder.outputs', `"${v.encoder.outputs.mu}" (mu) gives ${perImage(mu)} values per image and "${v.encoder.outputs.logvar}" (logvar) ${perImage(e[v.encoder.outputs.logvar])}; they must be the posterior mean and log-variance of the same latent`);
    if (latent !== undefined && latent !== perImage(mu)) fail('vae.encoder', `the encoder's latent has ${perImage(mu)} values but the single-file VAE's has ${latent}; both must be the same VAE`);
    const d = await run(pair.decoder, 'vae.decoder', { [pair.names.decoderInput!]: { data: mu.data, dims: [n, perImage(mu)] } }, [v.decoder.output, ...(v.decoder.logScaleOutput ? [v.decoder.logScaleOutput] : [])]);
    if (perImage(d[v.decoder.output]) !== pixels) fail('vae.decoder.output', `"${v.decoder.output}" of ${pair.decoder.source} gives ${perImage(d[v.decoder.output])} values per image but the input has ${pixels}`);
    if (v.decoder.logScaleOutput && perImage(d[v.decoder.logScaleOutput]) !== pixels) fail('vae.decoder.logScaleOutput', `"${v.decoder.logScaleOutput}" gives ${perImage(d[v.decoder.logScaleOutput])} values per image but the input has ${pixels}`);
    checkReconstructionKind(d[v.decoder.output], 'vae.reconstructionKind', v.reconstructionKind, fail);
  }
}

function checkReconstructionKind(recon: FloatTensor, field: string, kind: 'logits' | 'probabilities' | 'mean', fail: (field: string, problem: string) => never): void {
  let min = Infinity;
  let max = -Infinity;
  for (const x of recon.data) {
    if (!Number.isFinite(x)) fail(field.replace('reconstructionKind', 'outputs'), 'the reconstruction has non-finite values on a probe image; the model or its input scaling (vae.range/mean/std) is broken');
    min = Math.min(min, x);
    max = Math.max(max, x);
  }
  if (kind === 'probabilities' && (min < -1e-5 || max > 1 + 1e-5)) fail(field, `is "probabilities" but the reconstruction runs from ${round(min)} to ${round(max)} on probe images; set "logits" (or "mean" for a gaussian decoder)`);
}

export async function disposePair(pair: LoadedPair): Promise<void> {
  await Promise.allSettled([pair.classifier, pair.vae, pair.encoder, pair.decoder].filter((r): r is ModelRunner => !!r).map((r) => r.dispose()));
}

/** What a runner reports about itself, without its session. */
type RunnerSummary = Pick<ModelRunner, 'source' | 'backend' | 'provider' | 'inputs' | 'outputs' | 'layerPools'>;

/**
 * A loaded pair as plain, structured-cloneable data: everything but the model sessions (each runner's
 * summary instead) and the fitted features' data (their names and sizes only). A scoring shard sends it so
 * that the thread that started the shards needs no models of its own while they score (describedPair).
 */
export interface PairDescription extends Omit<LoadedPair, 'classifier' | 'vae' | 'encoder' | 'decoder' | 'featureFit'> {
  runners: { classifier: RunnerSummary; vae?: RunnerSummary; encoder?: RunnerSummary; decoder?: RunnerSummary };
  featureFit?: Pick<FeatureFit, 'tensor' | 'dims' | 'count' | 'source' | 'mahalanobisLabels'>;
}

export function describePair(pair: LoadedPair): PairDescription {
  const { classifier, vae, encoder, decoder, featureFit, ...rest } = pair;
  const summary = (r: ModelRunner): RunnerSummary => ({ source: r.source, backend: r.backend, provider: r.provider, inputs: r.inputs, outputs: r.outputs, ...(r.layerPools ? { layerPools: r.layerPools } : {}) });
  return {
    ...rest,
    runners: { classifier: summary(classifier), ...(vae ? { vae: summary(vae) } : {}), ...(encoder ? { encoder: summary(encoder) } : {}), ...(decoder ? { decoder: summary(decoder) } : {}) },
    ...(featureFit ? { featureFit: { tensor: featureFit.tensor, dims: featureFit.dims, count: featureFit.count, source: featureFit.source, ...(featureFit.mahalanobisLabels ? { mahalanobisLabels: featureFit.mahalanobisLabels } : {}) } } : {}),
  };
}

/**
 * A pair from its description, with runners that hold no session: running one throws. For an engine whose
 * models are released (they are loaded again, whole, before anything is scored on its thread).
 */
export function describedPair(d: PairDescription): LoadedPair {
  const { runners, featureFit, ...rest } = d;
  const unloaded = (s: RunnerSummary): ModelRunner => ({
    ...s,
    run: () => Promise.reject(new ModelError(s.source, 'its model is not loaded on this thread (an internal error: it is loaded before anything is scored here)')),
    dispose: () => Promise.resolve(),
  });
  return {
    ...rest,
    classifier: unloaded(runners.classifier),
    ...(runners.vae ? { vae: unloaded(runners.vae) } : {}),
    ...(runners.encoder ? { encoder: unloaded(runners.encoder) } : {}),
    ...(runners.decoder ? { decoder: unloaded(runners.decoder) } : {}),
    ...(featureFit ? { featureFit } : {}),
  };
}
