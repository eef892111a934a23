/** A loaded pair: manifest, runtimes for its models, and its calibration. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Calibration, readCalibration } from './calibration';
import { type Layout, loadPairManifest, type ModelFormat, type PairManifest, resolveIn, type ResolvedPair } from './manifest';
import { type LoadOptions, ModelError, type ModelRunner } from './backends/types';

/** The default MNIST pair shipped in models/mnist (found relative to the bundle or the sources). */
export function builtInPairDir(name = 'mnist'): string {
  const candidates = [join(__dirname, '..', 'models', name), join(__dirname, '..', '..', 'models', name)];
  return candidates.find((c) => existsSync(join(c, 'ood-pair.json'))) ?? candidates[0];
}

export async function loadModel(path: string, format: ModelFormat, options: LoadOptions): Promise<ModelRunner> {
  if (format === 'onnx') {
    const { loadOnnx } = await import('./backends/onnx');
    return loadOnnx(path, options);
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
  };
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

export async function loadPair(location: string, options: LoadOptions, calibrationOverride?: Calibration): Promise<LoadedPair> {
  const resolved = loadPairManifest(location);
  const m: PairManifest = resolved.manifest;
  const opened: ModelRunner[] = [];
  const open = async (p: string, format: ModelFormat) => {
    const runner = await loadModel(resolveIn(resolved, p), format, options);
    opened.push(runner);
    return runner;
  };
  try {
    const classifier = await open(m.classifier.path, m.classifier.format);
    const names: LoadedPair['names'] = {
      classifierInput: firstName(classifier, 'inputs', m.classifier.input),
      classifierOutput: firstName(classifier, 'outputs', m.classifier.output),
    };
    const pair: LoadedPair = {
      ...resolved,
      classifier,
      classifierLayout: m.classifier.layout ?? m.input.layout,
      vaeLayout: m.vae.layout ?? m.input.layout,
      names,
    };
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
