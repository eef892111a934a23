/** A loaded pair: manifest, runtimes for its models, and its calibration. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Calibration, readCalibration } from './calibration';
import { type Layout, loadPairManifest, type ModelFormat, type PairManifest, resolveIn, type ResolvedPair } from './manifest';
import { type LoadOptions, ModelError, type ModelRunner } from './backends/types';
import { type FeatureFit, readFeatureFit } from './features/featureFit';

/** The default MNIST pair shipped in models/mnist (found relative to the bundle or the sources). */
export function builtInPairDir(name = 'mnist'): string {
  const candidates = [join(__dirname, '..', 'models', name), join(__dirname, '..', '..', 'models', name)];
  return candidates.find((c) => existsSync(join(c, 'ood-pair.json'))) ?? candidates[0];
}

export async function loadModel(path: string, format: ModelFormat, options: LoadOptions, bytes?: Uint8Array): Promise<ModelRunner> {
  if (format === 'onnx') {
    const { loadOnnx } = await import('./backends/onnx');
    return loadOnnx(path, options, bytes);
  }
  const { loadTfjs } = await import('./backends/tfjs');
  return loadTfjs(path, format, options);
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
  /** Tensor names after defaults are filled in from the models. */
  names: {
    classifierInput: string;
    classifierOutput: string;
    vaeInput?: string;
    encoderInput?: string;
    decoderInput?: string;
    /** The classifier output holding the penultimate features (when the pair uses or fits them). */
    features?: string;
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
 * the input of its last Gemm/MatMul, exposed by editing the graph in memory.
 */
async function loadClassifierWithFeatures(path: string, m: PairManifest, options: LoadOptions): Promise<{ runner: ModelRunner; features: string }> {
  const named = m.features?.output ?? m.features?.layer;
  if (named || m.classifier.format !== 'onnx') {
    if (!named) throw new ModelError(path, 'the feature detectors need the classifier\'s features: name the layer that produces them (features.layer) for a TensorFlow.js model');
    const runner = await loadModel(path, m.classifier.format, options);
    if (!runner.outputs.some((o) => o.name === named)) {
      await runner.dispose();
      throw new ModelError(path, `has no output named "${named}" for the features (outputs: ${runner.outputs.map((o) => o.name).join(', ')}); fix features.${m.features?.output ? 'output' : 'layer'} in the pair manifest`);
    }
    return { runner, features: named };
  }
  const { readFileSync } = await import('node:fs');
  const { exposePenultimate } = await import('./features/onnxGraph');
  const exposed = exposePenultimate(readFileSync(path), path);
  return { runner: await loadModel(path, 'onnx', options, exposed.bytes), features: exposed.name };
}

function firstName(runner: ModelRunner, kind: 'inputs' | 'outputs', given?: string): string {
  if (given) {
    if (!runner[kind].some((t) => t.name === given)) {
      throw new ModelError(runner.source, `has no ${kind === 'inputs' ? 'input' : 'output'} named "${given}" (has: ${runner[kind].map((t) => t.name).join(', ')})`);
    }
    return given;
  }
  if (runner[kind].length === 0) throw new ModelError(runner.source, `has no ${kind}`);
  return runner[kind][0].name;
}

function requireOutputs(runner: ModelRunner, names: string[]): void {
  const missing = names.filter((n) => !runner.outputs.some((o) => o.name === n));
  if (missing.length) {
    throw new ModelError(runner.source, `has no output named ${missing.map((m) => `"${m}"`).join(', ')} (has: ${runner.outputs.map((o) => o.name).join(', ')}); fix the pair manifest's output names`);
  }
}

export async function loadPair(location: string, options: LoadOptions, calibrationOverride?: Calibration, extras: PairLoadExtras = {}): Promise<LoadedPair> {
  const resolved = loadPairManifest(location);
  const m: PairManifest = resolved.manifest;
  const opened: ModelRunner[] = [];
  const open = async (p: string, format: ModelFormat) => {
    const runner = await loadModel(resolveIn(resolved, p), format, options);
    opened.push(runner);
    return runner;
  };
  try {
    const wantFeatures = extras.features || !!m.features;
    let classifier: ModelRunner;
    let featureName: string | undefined;
    if (wantFeatures) {
      const loaded = await loadClassifierWithFeatures(resolveIn(resolved, m.classifier.path), m, options);
      opened.push(loaded.runner);
      classifier = loaded.runner;
      featureName = loaded.features;
    } else {
      classifier = await open(m.classifier.path, m.classifier.format);
    }
    const names: LoadedPair['names'] = {
      classifierInput: firstName(classifier, 'inputs', m.classifier.input),
      // The first output is the logits unless named: an exposed feature output is appended after it.
      classifierOutput: firstName(classifier, 'outputs', m.classifier.output),
      features: featureName,
    };
    const pair: LoadedPair = {
      ...resolved,
      classifier,
      classifierLayout: m.classifier.layout ?? m.input.layout,
      vaeLayout: m.vae.layout ?? m.input.layout,
      names,
      loadOptions: options,
    };
    if (m.features?.fit) {
      const fitPath = resolveIn(resolved, m.features.fit);
      pair.featureFit = readFeatureFit(fitPath);
      if (featureName && pair.featureFit.tensor !== featureName) {
        throw new ModelError(fitPath, `was fitted on the classifier tensor "${pair.featureFit.tensor}", but the features now come from "${featureName}"; fit the detectors again`);
      }
    }
    if (m.vae.path && m.vae.format && m.vae.outputs) {
      pair.vae = await open(m.vae.path, m.vae.format);
      names.vaeInput = firstName(pair.vae, 'inputs', m.vae.input);
      requireOutputs(pair.vae, [m.vae.outputs.reconstruction, m.vae.outputs.mu, m.vae.outputs.logvar, ...(m.vae.outputs.logScale ? [m.vae.outputs.logScale] : [])]);
    }
    if (m.vae.encoder && m.vae.decoder) {
      pair.encoder = await open(m.vae.encoder.path, m.vae.encoder.format);
      pair.decoder = await open(m.vae.decoder.path, m.vae.decoder.format);
      names.encoderInput = firstName(pair.encoder, 'inputs', m.vae.encoder.input);
      names.decoderInput = firstName(pair.decoder, 'inputs', m.vae.decoder.input);
      requireOutputs(pair.encoder, [m.vae.encoder.outputs.mu, m.vae.encoder.outputs.logvar]);
      requireOutputs(pair.decoder, [m.vae.decoder.output, ...(m.vae.decoder.logScaleOutput ? [m.vae.decoder.logScaleOutput] : [])]);
    }
    if (calibrationOverride) pair.calibration = calibrationOverride;
    else if (m.calibration) pair.calibration = readCalibration(resolveIn(resolved, m.calibration));
    return pair;
  } catch (err) {
    await Promise.allSettled(opened.map((r) => r.dispose()));
    throw err;
  }
}

export async function disposePair(pair: LoadedPair): Promise<void> {
  await Promise.allSettled([pair.classifier, pair.vae, pair.encoder, pair.decoder].filter((r): r is ModelRunner => !!r).map((r) => r.dispose()));
}
