/**
 * `fit`: a pair from a user's own classifier (and optionally a VAE) and a set of in-distribution images.
 * Reads what the model files declare (size, channels, layout, tensor names, static batch), probes the
 * models for what they output (logits or probabilities, class count, reconstruction kind), splits the
 * images into fit / calibration / check parts (seeded, recorded in the pair), scores them, calibrates every
 * detector on the calibration part, measures false alarms on the check part, and writes the pair folder.
 * Used by `ood-lens fit` and VS Code's Create Pair flow (progress callbacks, AbortSignal); no vscode here.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { type Calibration, type CalibrationScores, decideTests } from '../pair/calibration';
import { fisherCalibration, fisherScoreOf, withFisher } from './fisherTest';
import { writeFileAtomic } from '../io/atomicFile';
import { OodEngine, type ImageResult, type ScoreInput } from '../engine';
import { expandInputs } from '../io/files';
import { idxImages, looksLikeIdx, readIdxFile } from '../io/idx';
import { type DetectorSpec, type InputSpec, type Layout, type ModelFormat, oversizeInput, type PairManifest, pairShares, type ResizeKernel, type TestChoiceRecord, type VaeSpec, parsePairManifest } from '../pair/manifest';
import { resultOodScore } from '../detectors/oodDetectors';
import type { AlphaShares, TestName } from '../../shared/rules';
import { rejectionCheck } from '../pair/calibrationCheck';
import { fitFeatureDetectors, saveFeatureFit } from './fitFeatures';
import { exposePenultimate } from '../features/onnxGraph';
import { describeRows, loadModel, probeImages, probeTensor } from '../pair/pair';
import type { ExecutionProviderSetting, FloatTensor, ModelRunner, TensorInfo } from '../backends/types';
import { withAnyBatch } from '../backends/staticBatch';
import { tfjsLastDenseInput, tfjsLayerNames } from '../backends/tfjs';
import { mulberry32 } from '../detectors/random';
import { untilAborted } from './abortable';
import { imageSizeOf, readChecked, toModelImage, toUnitPlanar } from '../image/preprocess';
import { edgeColour } from '../image/padding';
import { chooseTests, makeProbes, PROBE_KINDS, type ProbeKind, type ProbeSource, testChoiceLines } from './testChoice';
import { type BenignKind, BENIGN_KINDS, makeBenignProbes, weighBenignShifts } from './benignProbes';
import { defaultVaeEpochs, nominalImagesPerSecond, trainVae, VaeTrainingCancelled, vaeImageSize, vaeOnnxModels, VAE_MAX_SIDE } from './vaeTraining';
import { checkClassifierFeed, CHECK_IMAGES, expand, type FeedCheckEvidence, paddingFlag, paddingThatFits } from './feedCheck';
import { outFolderProblem, removeStaleStaging, STAGING_PREFIX } from './outFolder';

const CANCELLED = 'fit was cancelled; nothing was written';
/** Synthetic probes of each kind made to choose the tests (fit/testChoice.ts). */
const PROBES_PER_KIND = 100;
/** Benign-shift probes of each kind (fit/benignProbes.ts): more than the far-OOD ones, since a rate near 1% is measured. */
const BENIGN_PROBES_PER_KIND = 200;

export class FitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FitError';
  }
}

export interface Scaling {
  range?: [number, number];
  mean?: number[];
  std?: number[];
}

/** The resize kernel of a new fit: bilinear, as torchvision's Resize (pairs without one in the manifest keep lanczos3). */
export const DEFAULT_FIT_RESIZE_KERNEL: ResizeKernel = 'linear';

export interface FitOptions {
  /** Classifier model: an .onnx file, a TF.js model.json or its folder. */
  classifier: string;
  /** Single-model VAE (image → reconstruction, mu, logvar). */
  vae?: string;
  /** Split VAE: encoder (image → mu, logvar) and decoder (z → reconstruction). */
  encoder?: string;
  decoder?: string;
  /**
   * Without a VAE of the user's, fit trains one on the fit part (default true; `--no-vae`: false, a
   * classifier-only pair). See fit/vaeTraining.ts.
   */
  trainVae?: boolean;
  /** Epochs of the trained VAE (default: from the data size, about 5 minutes at the WebAssembly backend's speed). */
  vaeEpochs?: number;
  /** Stop training the VAE after the epoch that passes this many seconds (then the VAE depends on the machine's speed). */
  vaeTimeLimit?: number;
  /**
   * Choose the tests and their shares of α on synthetic probes made from the fit images (default true;
   * fit/testChoice.ts). False: the planned shares (defaultDetectors).
   */
  chooseTests?: boolean;
  /** In-distribution images: folders, IDX files or dataset manifests (.csv, .tsv, .jsonl, .txt). */
  data: string[];
  /**
   * Reads a dataset manifest (.csv, .tsv, .jsonl, .txt) into image paths and labels. The parser lives with the
   * extension's manifest features (src/providers/datasetManifest.ts, no vscode); callers pass it in
   * (`datasetManifestReader` in src/cli/fit.ts) so that the engine does not import that layer.
   */
  readManifest?: ManifestReader;
  /** The pair folder to write. */
  out: string;
  /** The classifier's input scaling: pixels map onto range (default [0, 1]), then mean/std (default none). */
  scaling?: Scaling;
  /** The VAE's input scaling (default: range [0, 1], no mean/std — the likelihood's own pixel scale). */
  vaeScaling?: Scaling;
  /** Class names in output order (default "0"…"N−1"). */
  labels?: string[];
  name?: string;
  /** Tensor names, where the model has several and cannot be read unambiguously. */
  classifierOutput?: string;
  outputKind?: 'logits' | 'probabilities';
  vaeOutputs?: { reconstruction: string; mu: string; logvar: string };
  likelihood?: VaeSpec['likelihood'];
  reconstructionKind?: VaeSpec['reconstructionKind'];
  /**
   * TF.js classifiers: the layer whose output is the penultimate features (ONNX classifiers: the input of the
   * last Gemm/MatMul, found in the graph). Without features, no KNN/Mahalanobis detectors are fitted.
   */
  featuresLayer?: string;
  /** Models that leave them free: the layout and the size of the input (`flat`: [N, H·W·C] vectors, size needed). */
  layout?: Layout;
  /** The classifier's inputs besides the image, fed this number on every run (`--const NAME=VALUE`). */
  constants?: Record<string, number>;
  size?: { width: number; height: number };
  /**
   * The kernel images are resized to the classifier's size with (default `linear`: bilinear, what torchvision's
   * Resize and PIL use, so a model trained with them sees the images it was trained on; also far cheaper than
   * lanczos3 when upscaling to 224×224). Recorded in the manifest: the pair's calibration was made with it.
   */
  resizeKernel?: ResizeKernel;
  /**
   * What enlarges images smaller than the classifier's input (default: onnxruntime with the linear kernel —
   * torchvision's half-pixel bilinear, and ~2.5× cheaper than libvips for 64×64 → 224×224 —, libvips with any
   * other). Recorded in the manifest (`input.enlargeWith`) beside the kernel.
   */
  enlargeWith?: 'libvips' | 'onnxruntime';
  /**
   * A border of background pixels on each side of the classifier's input (`--padding`): images are resized to
   * the input size less 2·padding and padded, as the model was trained (28×28 digits in a 32×32 field).
   * Recorded as input.padding; the VAE fit trains is trained on the same padded images scoring feeds it.
   */
  padding?: number;
  /** Seed of the shuffle that splits the data (default 0). */
  seed?: number;
  /** Use at most this many images (the first in listing order). */
  limit?: number;
  /** Share of the images held out to measure false alarms (default 0.1, at most 2,000 images). */
  checkShare?: number;
  alpha?: number;
  provider?: ExecutionProviderSetting;
  batchSize?: number;
  /** Replace a pair that `ood-lens fit` wrote in `out` (files it did not write are never touched). */
  force?: boolean;
  /**
   * Write the pair even though the feeding check refused it (`--force "reason"`): the reason and the check's
   * findings are stored in the pair, and `info`, `score` and the Inspect panel warn about it.
   */
  forceReason?: string;
  signal?: AbortSignal;
  /** What fit read and decided, one line each, as it goes. */
  onDecision?: (line: string) => void;
  onProgress?: (progress: FitProgress) => void;
  /** Notices from the engine (fallbacks). */
  onNotice?: (message: string) => void;
}

export interface FitProgress {
  phase: 'reading models' | 'listing images' | 'checking the classifier' | 'training VAE' | 'fitting detectors' | 'scoring' | 'choosing tests' | 'writing';
  done: number;
  total: number;
  /** training VAE: the epoch, the mean loss (negative ELBO, nats per image) so far in it, and the time left. */
  vae?: { epoch: number; epochs: number; loss: number; secondsLeft: number };
}

export interface FitResult {
  manifestPath: string;
  manifest: PairManifest;
  decisions: string[];
  parts: { fit: number; calibration: number; check: number };
  /** Images that could not be scored (listed with their reason in `failures`, first 20). */
  failed: number;
  failures: { path: string; error: string }[];
  alpha: number;
  /** Share of the check part flagged out-of-distribution at alpha. */
  heldOutFalseAlarmRate: number;
  /** Classifier accuracy on the check part, when the data has labels (IDX labels beside the images, manifest labels). */
  heldOutAccuracy: number | null;
  /** The feeding check run before anything was written (also in the manifest as `fit.check`). */
  feedCheck: FeedCheckEvidence;
  /** Check images flagged out-of-distribution at alpha. */
  checkOod: number;
  /** Each detector's scores on the calibration and check parts (for histograms), with its direction. */
  heldOutScores: HeldOutScores[];
  seconds: number;
}

export interface HeldOutScores {
  /** The test (elbo, complexity, confidence = MSP, energy, knn, mahalanobis). */
  detector: TestName;
  direction: 'low-is-ood' | 'high-is-ood';
  calibration: number[];
  check: number[];
}

/** Model format from the path: .onnx, or a TF.js model.json (or its folder) whose "format" says which. */
export function modelFormatOf(path: string): ModelFormat {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new FitError(`${abs}: model file not found`);
  if (extname(abs).toLowerCase() === '.onnx') return 'onnx';
  const json = statSync(abs).isDirectory() ? join(abs, 'model.json') : abs;
  if (extname(json).toLowerCase() !== '.json') throw new FitError(`${abs}: not a model OOD Lens reads (an .onnx file, or a TensorFlow.js model.json or its folder)`);
  let format: unknown;
  try {
    format = JSON.parse(readFileSync(json, 'utf8')).format;
  } catch (err) {
    throw new FitError(`${json}: cannot read the TensorFlow.js model.json (${(err as Error).message})`);
  }
  if (format === 'graph-model') return 'tfjs-graph';
  // Keras-converted layers models often carry no "format"; their topology says what they are.
  return 'tfjs-layers';
}

interface ImageInputFacts {
  name: string;
  layout: Layout;
  width: number;
  height: number;
  channels: 1 | 3;
  staticBatch?: number;
  shape: (number | null)[];
  /** The input's element type: float32, or uint8 (fed the 8-bit pixels). */
  dtype: string;
}

const fmt = (s: (number | null)[] | null) => (s ? `[${s.map((d) => d ?? '?').join(', ')}]` : '[unknown]');

/** Reads the image input of a model: name, layout, size, channels, static batch. Refuses what it cannot tell. */
export function readImageInput(runner: ModelRunner, role: string, hints: { layout?: Layout; size?: { width: number; height: number } } = {}): ImageInputFacts {
  if (runner.inputs.length !== 1) {
    const others = runner.inputs.slice(1).map((t) => `--const ${t.name}=VALUE`).join(' ');
    throw new FitError(`${runner.source}: the ${role} has ${runner.inputs.length} inputs (${runner.inputs.map((t) => `"${t.name}" ${fmt(t.shape)}${t.dtype && t.dtype !== 'float32' ? ` ${t.dtype}` : ''}`).join(', ')}); OOD Lens feeds one image tensor: fix the others to a constant with --const NAME=VALUE (e.g. ${others || `--const ${runner.inputs[0]?.name}=VALUE`})`);
  }
  const t = runner.inputs[0];
  const shape = t.shape;
  const dtype = t.dtype && t.dtype !== 'float' ? t.dtype : 'float32';
  if (hints.layout === 'flat' || (shape && shape.length === 2)) {
    if (!shape || shape.length !== 2) throw new FitError(`--layout flat: the ${role}'s input "${t.name}" is ${fmt(shape)}, not a flat vector per image ([batch, values]); pass --layout NCHW or --layout NHWC, or leave --layout out`);
    if (hints.layout !== 'flat' || !hints.size) throw new FitError(`${runner.source}: the ${role}'s input "${t.name}" ${fmt(shape)} takes flat vectors; pass --layout flat --size WIDTHxHEIGHT (the image size it was trained on, e.g. --size 28x28 for 784 values)`);
    const { width, height } = hints.size;
    const channels = shape[1] === null ? 1 : shape[1] / (width * height);
    if (channels !== 1 && channels !== 3) throw new FitError(`--size ${width}x${height}: the ${role}'s input "${t.name}" ${fmt(shape)} has ${shape[1]} values per image, which is not ${width}×${height} grey (${width * height}) or RGB (${3 * width * height})`);
    return { name: t.name, layout: 'flat', width, height, channels, staticBatch: shape[0] ?? undefined, shape, dtype };
  }
  if (!shape || shape.length !== 4) throw new FitError(`${runner.source}: the ${role}'s input "${t.name}" is ${fmt(shape)}; OOD Lens feeds 4-d image tensors ([batch, channels, height, width] or [batch, height, width, channels]) or flat vectors ([batch, values], --layout flat --size WxH)`);
  const [b, d1, d2, d3] = shape;
  const isC = (d: number | null) => d === 1 || d === 3;
  let layout: Layout | undefined = hints.layout;
  if (!layout) {
    const nchw = isC(d1) && !isC(d3);
    const nhwc = isC(d3) && !isC(d1);
    if (nchw !== nhwc) layout = nchw ? 'NCHW' : 'NHWC';
    else throw new FitError(`${runner.source}: cannot tell the layout of the ${role}'s input "${t.name}" ${fmt(shape)}; pass --layout NCHW or --layout NHWC`);
  }
  const [c, h, w] = layout === 'NCHW' ? [d1, d2, d3] : [d3, d1, d2];
  if (!isC(c)) throw new FitError(`${runner.source}: the ${role}'s input "${t.name}" ${fmt(shape)} has ${c ?? 'a free number of'} channels in ${layout}; OOD Lens feeds 1 (grey) or 3 (RGB)`);
  const width = w ?? hints.size?.width;
  const height = h ?? hints.size?.height;
  if (!width || !height) throw new FitError(`${runner.source}: the ${role}'s input "${t.name}" ${fmt(shape)} leaves its size free; pass --size WIDTHxHEIGHT`);
  const tooLarge = oversizeInput(width, height);
  if (tooLarge) throw new FitError(`${runner.source}: the ${role}'s input "${t.name}" ${fmt(shape)}: ${tooLarge}${w && h ? '' : ' (--size)'}`);
  return { name: t.name, layout, width, height, channels: c as 1 | 3, staticBatch: b ?? undefined, shape, dtype };
}

const perImage = (t: FloatTensor, n: number) => t.data.length / n;
const LOGVAR_NAME = /log.?var|log.?sigma|logsigma|log_?std|logvar/i;

/** mu and logvar among two latent outputs, by name: exactly one must look like a log-variance. */
function muAndLogvar(candidates: TensorInfo[], source: string, flag: string): { mu: string; logvar: string } {
  const logvars = candidates.filter((t) => LOGVAR_NAME.test(t.name));
  if (candidates.length !== 2 || logvars.length !== 1) {
    throw new FitError(`${source}: cannot tell the posterior mean from the log-variance among the outputs ${candidates.map((t) => `"${t.name}"`).join(', ')}; name them with ${flag}`);
  }
  return { mu: candidates.find((t) => t !== logvars[0])!.name, logvar: logvars[0].name };
}

function reconstructionKindOf(recon: FloatTensor): 'logits' | 'probabilities' {
  let min = Infinity;
  let max = -Infinity;
  for (const x of recon.data) {
    min = Math.min(min, x);
    max = Math.max(max, x);
  }
  return min >= 0 && max <= 1 ? 'probabilities' : 'logits';
}

/** Deterministic shuffle (mulberry32 + Fisher–Yates) of 0..n−1. */
export function seededPermutation(n: number, seed: number): Uint32Array {
  const next = mulberry32(seed);
  const p = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** How many images go to each part. The fit part exists only when a detector learns from data. */
export function splitSizes(n: number, options: { needsFitPart: boolean; checkShare?: number }): { fit: number; calibration: number; check: number } {
  const check = Math.min(2000, Math.round(n * (options.checkShare ?? 0.1)));
  const rest = n - check;
  const fit = options.needsFitPart ? Math.floor(rest / 2) : 0;
  return { fit, calibration: rest - fit, check };
}

// ---------------------------------------------------------------------------------------------------------
// Detectors: which ones a fitted pair gets, with their shares of α (the verdict runs over this list, rule
// `pair`). KNN carries half of α where the classifier's features can be read (AUROC 0.994 alone against
// FashionMNIST on the built-in classifier, issue 14); Mahalanobis is fitted, calibrated and reported with
// share 0. With a VAE, ELBO and S share 0.4 and MSP keeps 0.1 (the built-in pairs' split).

export function defaultDetectors(options: { vae: boolean; features: boolean; logits: boolean }): DetectorSpec[] {
  const list: DetectorSpec[] = [];
  if (options.vae) list.push({ test: 'elbo', share: options.features ? 0.2 : 0.45 }, { test: 'complexity', share: options.features ? 0.2 : 0.45 }, { test: 'confidence', share: 0.1 });
  else if (options.features) list.push({ test: 'confidence', share: options.logits ? 0.25 : 0.5 }, ...(options.logits ? [{ test: 'energy' as const, share: 0.25 }] : []));
  else list.push({ test: 'confidence', share: options.logits ? 0.5 : 1 }, ...(options.logits ? [{ test: 'energy' as const, share: 0.5 }] : []));
  if (options.features) list.push({ test: 'knn', share: 0.5, k: 1 }, { test: 'mahalanobis', share: 0 });
  return list;
}

/** Why the classifier's features cannot be read (no KNN/Mahalanobis), or null when they can. */
function featuresProblem(path: string, format: ModelFormat, layer: string | undefined): string | null {
  if (format !== 'onnx') {
    if (!layer) return format === 'tfjs-layers' ? 'the TensorFlow.js classifier has no Dense layer whose input could serve as features; name the layer whose output is the penultimate features with --features LAYER' : 'a TensorFlow.js graph model needs --features LAYER (the layer whose output is the penultimate features)';
    // A layer the user named that is not there is a mistake to fix, not a pair without feature detectors.
    const layers = format === 'tfjs-layers' ? tfjsLayerNames(path) : [];
    if (!layers.includes(layer)) throw new FitError(`--features: ${path} has no layer named "${layer}"; ${layers.length ? `its layers: ${layers.join(', ')}` : 'only TensorFlow.js layers models have named layers'}`);
    return null;
  }
  try {
    exposePenultimate(readFileSync(path), path);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** The images' edge colour at their own size (image/padding.ts), from those that can be read; white when none can. */
async function imagesEdgeColour(inputs: ScoreInput[], channels: 1 | 3): Promise<string> {
  const images = [];
  for (const input of inputs) {
    try {
      const size = await imageSizeOf(input);
      images.push(await toModelImage(input.source ?? (await readChecked(input.path, 256 * 1024 * 1024)), { ...size, channels, layout: 'NCHW' }));
    } catch {
      // An unreadable image tells nothing about the edges; the others do.
    }
  }
  return images.length ? edgeColour(images) : '#ffffff';
}

/** Every detector's held-out scores, stored as each detector calibrates them. */
function calibrationOf(results: ImageResult[], engine: OodEngine, source: string): Calibration {
  const withVae = !!engine.pair.manifest.vae;
  const scores: CalibrationScores = { elbo: withVae ? results.map((r) => r.elbo!) : [], msp: results.map((r) => r.msp!) };
  for (const d of engine.detectors) {
    if (d.test === 'elbo' || d.test === 'confidence') continue;
    const values = results.map((r) => resultOodScore(d.test, r));
    if (values.some((v) => v === null)) continue;
    const { key, values: stored } = d.calibrate(values as number[]);
    (scores as unknown as Record<string, number[]>)[key] = stored;
  }
  return { version: 1, pair: engine.info.name, source, count: results.length, createdAt: new Date().toISOString(), compressor: engine.compressor, vaeSamples: engine.pair.manifest.vae?.samples ?? 0, scores };
}

// ---------------------------------------------------------------------------------------------------------
// Data

export type ManifestReader = (path: string, format: 'csv' | 'tsv' | 'jsonl' | 'txt', signal?: AbortSignal) => Promise<{ path: string; label: string | null }[]>;

interface DataItem {
  input: ScoreInput;
  /** Class label as written (IDX label digit, manifest label), when the data has one. */
  label: string | null;
}

/** IDX labels beside an IDX image file (`x-images-idx3-ubyte[.gz]` → `x-labels-idx1-ubyte[.gz]`). */
export function idxLabelsBeside(imagesPath: string): Uint8Array | null {
  const base = basename(imagesPath);
  if (!/images-idx3-ubyte/.test(base)) return null;
  for (const name of [base.replace('images-idx3-ubyte', 'labels-idx1-ubyte'), base.replace('images-idx3-ubyte', 'labels-idx1-ubyte').replace(/\.gz$/, ''), base.replace('images-idx3-ubyte', 'labels-idx1-ubyte') + '.gz']) {
    const candidate = join(dirname(imagesPath), name);
    if (existsSync(candidate)) {
      try {
        return readIdxFile(candidate).data;
      } catch {
        return null;
      }
    }
  }
  return null;
}

const MANIFEST_EXTENSIONS: Record<string, 'csv' | 'tsv' | 'jsonl' | 'txt'> = { '.csv': 'csv', '.tsv': 'tsv', '.jsonl': 'jsonl', '.ndjson': 'jsonl', '.txt': 'txt' };

/** Every image of the data arguments, in listing order, with labels where the data carries them. */
export async function listData(args: string[], signal?: AbortSignal, readManifest?: ManifestReader): Promise<DataItem[]> {
  const items: DataItem[] = [];
  for (const arg of args) {
    const path = resolve(arg);
    if (!existsSync(path)) throw new FitError(`--data ${arg}: no such file or folder`);
    const format = MANIFEST_EXTENSIONS[extname(path).toLowerCase()];
    if (statSync(path).isFile() && format) {
      if (!readManifest) throw new FitError(`--data ${arg}: dataset manifests are not readable here; give a folder or an IDX file`);
      for (const row of await readManifest(path, format, signal)) items.push({ input: { path: row.path }, label: row.label });
      continue;
    }
    const labels = statSync(path).isFile() && looksLikeIdx(path) ? idxLabelsBeside(path) : null;
    if (statSync(path).isFile() && looksLikeIdx(path)) {
      let images;
      try {
        images = idxImages(readIdxFile(path), path);
      } catch (err) {
        throw new FitError(`--data ${arg}: ${(err as Error).message}`);
      }
      for (let i = 0; i < images.count; i++) {
        items.push({ input: { path: `${path}#${i}`, source: { width: images.width, height: images.height, channels: 1, data: images.image(i) } }, label: labels && labels.length === images.count ? String(labels[i]) : null });
      }
      continue;
    }
    for await (const input of expandInputs([path], { recursive: true, signal })) items.push({ input, label: null });
  }
  return items;
}

// ---------------------------------------------------------------------------------------------------------
// Model files into the pair folder

/** Copies a model into `dir` as `name` (a TF.js model: its folder with model.json and weight files). */
function copyModel(source: string, format: ModelFormat, dir: string, name: string): string {
  const abs = resolve(source);
  if (format === 'onnx') {
    const target = `${name}.onnx`;
    copyFileSync(abs, join(dir, target));
    return target;
  }
  const json = statSync(abs).isDirectory() ? join(abs, 'model.json') : abs;
  const modelDir = join(dir, name);
  mkdirSync(modelDir, { recursive: true });
  const model = JSON.parse(readFileSync(json, 'utf8')) as { weightsManifest?: { paths?: string[] }[] };
  copyFileSync(json, join(modelDir, 'model.json'));
  for (const group of model.weightsManifest ?? []) {
    for (const p of group.paths ?? []) {
      const from = resolve(dirname(json), decodeURIComponent(p));
      const rel = relative(dirname(json), from);
      // The TF.js loader refuses weights outside the model's folder too; refuse them here with the file named.
      if (rel.startsWith('..') || isAbsolute(rel)) throw new FitError(`${json}: weights path "${p}" points outside the model folder`);
      mkdirSync(dirname(join(modelDir, rel)), { recursive: true });
      copyFileSync(from, join(modelDir, rel));
    }
  }
  return `${name}/model.json`;
}

// ---------------------------------------------------------------------------------------------------------

export async function fitPair(options: FitOptions): Promise<FitResult> {
  const started = performance.now();
  const decisions: string[] = [];
  const decide_ = (line: string) => {
    decisions.push(line);
    options.onDecision?.(line);
  };
  const progress = (phase: FitProgress['phase'], done: number, total: number) => options.onProgress?.({ phase, done, total });
  const checkAbort = () => {
    if (options.signal?.aborted) throw new FitError(CANCELLED);
  };
  const alpha = options.alpha ?? 0.01;
  const out = resolve(options.out);
  // What fit may touch in `out` is settled before anything is read: only files it wrote itself (below, with the models' names).
  if (existsSync(join(out, 'ood-pair.json')) && !options.force) throw new FitError(`${out} already holds a pair (ood-pair.json); choose another --out folder or pass --force to replace it`);
  if ((options.encoder === undefined) !== (options.decoder === undefined)) throw new FitError(`a split VAE needs both --encoder and --decoder (got only ${options.encoder ? '--encoder' : '--decoder'})`);
  if (options.vae && options.encoder) throw new FitError('give either --vae (one model) or --encoder and --decoder, not both');
  const scaling: Required<Pick<Scaling, 'range'>> & Scaling = { range: options.scaling?.range ?? [0, 1], mean: options.scaling?.mean, std: options.scaling?.std };
  const vaeScaling: Required<Pick<Scaling, 'range'>> & Scaling = { range: options.vaeScaling?.range ?? [0, 1], mean: options.vaeScaling?.mean, std: options.vaeScaling?.std };

  // 1. What the model files declare, and what they output on probe images.
  progress('reading models', 0, 1);
  const loadOptions = { provider: options.provider ?? 'auto', threads: 1 } as const;
  const classifierFormat = modelFormatOf(options.classifier);
  const opened: ModelRunner[] = [];
  const constants = options.constants && Object.keys(options.constants).length ? options.constants : undefined;
  const open = async (path: string, format: ModelFormat, withConstants = false) => {
    checkAbort();
    // A cancel while a model loads answers at once; the model, once loaded, is released.
    const loading = loadModel(resolve(path), format, withConstants ? { ...loadOptions, constants } : loadOptions).catch((err: Error) => {
      throw withConstants && constants ? new FitError(`--const: ${err.message}`) : err;
    });
    const r = await untilAborted(loading, options.signal, () => new FitError(CANCELLED), (late) => void late.dispose().catch(() => undefined));
    opened.push(r);
    return r;
  };
  const manifest: PairManifest = { $schema: 'https://ood-lens.dev/schemas/ood-pair.schema.json', name: options.name ?? basename(out), input: { width: 0, height: 0, channels: 1, layout: 'NCHW' }, classifier: { path: '', format: classifierFormat, outputKind: 'logits', labels: [] } };
  delete manifest.$schema; // VS Code finds the schema by file name (contributes.jsonValidation)
  let featureTrouble: string | null = 'not read';
  /** What the feeding check needs to know about the classifier (filled in as the model is read). */
  const classifierFeed = { inputName: '', outputName: '', outputKind: 'logits' as 'logits' | 'probabilities', classes: 0, layouts: [] as Layout[], otherOutputs: [] as { name: string; perImage: number }[], fixedFeed: false };
  let plannedDetectors: DetectorSpec[] = [];
  /** The VAE fit trains (the user gave none): its image, set once the classifier is read. */
  let vaeToTrain: InputSpec | undefined;
  const sources: { role: string; path: string; format: ModelFormat; name: string }[] = [{ role: 'classifier', path: options.classifier, format: classifierFormat, name: 'classifier' }];
  try {
    const classifier = await open(options.classifier, classifierFormat, true);
    const input = readImageInput(classifier, 'classifier', { layout: options.layout, size: options.size });
    if (constants) decide_(`classifier inputs fixed to a constant: ${Object.entries(constants).map(([k, v]) => `"${k}" = ${v}`).join(', ')}`);
    if (input.dtype === 'uint8') {
      // Fed the 8-bit pixels themselves: nothing else can be fed to it without rounding it into nonsense.
      const given = options.scaling ?? {};
      if ((given.range && (given.range[0] !== 0 || given.range[1] !== 255)) || given.mean || given.std) {
        throw new FitError(`${given.range && (given.range[0] !== 0 || given.range[1] !== 255) ? '--range' : given.mean ? '--mean' : '--std'}: the classifier's input "${input.name}" is uint8 and takes the 8-bit pixels 0..255 as they are; leave out --range, --mean and --std`);
      }
      scaling.range = [0, 255];
      classifierFeed.fixedFeed = true;
      decide_(`classifier input "${input.name}" is uint8: fed the 8-bit pixels 0..255`);
    } else if (!/^float(32)?$/.test(input.dtype)) {
      throw new FitError(`${classifier.source}: the classifier's input "${input.name}" is ${input.dtype}; OOD Lens feeds float32 images, or the 8-bit pixels to a uint8 input`);
    }
    // `--mean 0.5` on an RGB model means 0.5 for every channel.
    scaling.mean = expand(scaling.mean, input.channels);
    scaling.std = expand(scaling.std, input.channels);
    perChannel(scaling, input.channels, '', 'classifier');
    // The other layout is tried by the feeding check when the shape allows it with the same image.
    const sameImage = (l: Layout) => {
      try {
        const f = readImageInput(classifier, 'classifier', { layout: l, size: options.size });
        return f.width === input.width && f.height === input.height && f.channels === input.channels;
      } catch {
        return false;
      }
    };
    classifierFeed.layouts = input.layout === 'flat' ? ['flat'] : [input.layout, ...(['NCHW', 'NHWC'] as Layout[]).filter((l) => l !== input.layout && sameImage(l))];
    classifierFeed.inputName = input.name;
    // The shared input is the classifier's; a VAE of another size or channel count gets its own (below).
    // The resize kernel is written out even at its default: a manifest without one means lanczos3 (pairs made
    // before fit chose bilinear), and the calibration below is made with the kernel recorded here.
    const resizeKernel = options.resizeKernel ?? DEFAULT_FIT_RESIZE_KERNEL;
    if (options.enlargeWith === 'onnxruntime' && resizeKernel !== 'linear') throw new FitError(`enlarging with onnxruntime is bilinear: it needs the linear resize kernel, not ${resizeKernel} (leave out --resize-kernel, or enlarge with libvips)`);
    const enlargeWith = options.enlargeWith ?? (resizeKernel === 'linear' ? 'onnxruntime' : 'libvips');
    const padding = options.padding ?? 0;
    if (padding && 2 * padding >= Math.min(input.width, input.height)) throw new FitError(`--padding: ${padding} pixels on each side leave no room for the image in the classifier's ${input.width}×${input.height} input; give less than ${Math.ceil(Math.min(input.width, input.height) / 2)}`);
    const classifierInput: InputSpec = { width: input.width, height: input.height, channels: input.channels, layout: input.layout, resizeKernel, ...(enlargeWith === 'onnxruntime' ? { enlargeWith } : {}), ...(padding ? { padding } : {}) };
    manifest.input = { ...classifierInput };
    decide_(`classifier: ${classifier.source} (${classifierFormat}) takes "${input.name}" ${fmt(input.shape)}: ${input.width}×${input.height}, ${input.channels === 1 ? 'grey' : 'RGB'}, ${input.layout}${input.staticBatch ? `, static batch ${input.staticBatch} (run in chunks of ${input.staticBatch})` : ', any batch'}`);
    decide_(`images are resized to ${padding ? `${input.width - 2 * padding}×${input.height - 2 * padding} and padded by ${padding} pixels on each side to ` : ''}${input.width}×${input.height} with the ${resizeKernel} kernel${options.resizeKernel ? '' : ` (the default, bilinear as torchvision's Resize; --resize-kernel picks another)`}${padding ? ' (--padding)' : ''}${enlargeWith === 'onnxruntime' ? '; smaller images are enlarged by onnxruntime (half-pixel bilinear, as torchvision), larger ones shrunk by libvips' : ''}`);
    const probe = probeImages(classifierInput);
    const classifierScaling = { layout: input.layout, ...scaling };
    const classOut = await withAnyBatch(classifier).run({ [input.name]: probeTensor(probe, classifierInput, classifierScaling) });
    const outputs = classifier.outputs;
    let outputName = options.classifierOutput;
    if (!outputName) {
      const candidates = outputs.filter((t) => perImage(classOut[t.name], probe.length) >= 2);
      if (outputs.length === 1) outputName = outputs[0].name;
      else if (options.labels && candidates.filter((t) => perImage(classOut[t.name], probe.length) === options.labels!.length).length === 1) outputName = candidates.find((t) => perImage(classOut[t.name], probe.length) === options.labels!.length)!.name;
      else throw new FitError(`${classifier.source}: the classifier has ${outputs.length} outputs (${outputs.map((t) => `"${t.name}" ${fmt(t.shape)}`).join(', ')}); name the class scores with --output NAME`);
    }
    if (!classOut[outputName]) throw new FitError(`${classifier.source}: no output named "${outputName}" (outputs: ${outputs.map((t) => t.name).join(', ')})`);
    const rows = describeRows(classOut[outputName], probe.length);
    const classes = rows.perRow;
    if (!Number.isInteger(classes) || classes < 2) throw new FitError(`${classifier.source}: output "${outputName}" gives ${classes} values per image; it needs one score per class`);
    const labels = options.labels ?? Array.from({ length: classes }, (_, i) => String(i));
    if (labels.length !== classes) throw new FitError(`--labels: ${labels.length} labels given but "${outputName}" gives ${classes} values per image; give ${classes} labels, in output order`);
    const outputKind = options.outputKind ?? (rows.looksLikeProbabilities ? 'probabilities' : 'logits');
    classifierFeed.outputName = outputName;
    classifierFeed.outputKind = outputKind;
    classifierFeed.classes = classes;
    classifierFeed.otherOutputs = outputs.filter((t) => t.name !== outputName && classOut[t.name]).map((t) => ({ name: t.name, perImage: perImage(classOut[t.name], probe.length) }));
    decide_(`classifier output "${outputName}": ${classes} classes (labels ${labels.length > 12 ? `${labels.slice(0, 10).join(', ')}, …` : labels.join(', ')}${options.labels ? '' : ', the class indices'}), ${outputKind}${options.outputKind ? '' : rows.looksLikeProbabilities ? ' (every row in [0, 1] and summing to 1 on probe images)' : ' (not probabilities on probe images: softmax is applied)'}`);
    decide_(`classifier input scaling: pixels 0..255 → [${scaling.range.join(', ')}]${scaling.mean ? `, then (x − ${fmtList(scaling.mean)})` : ''}${scaling.std ? ` / ${fmtList(scaling.std)}` : ''}`);
    manifest.classifier = { path: '', format: classifierFormat, input: input.name, output: outputName, layout: input.layout, range: scaling.range, ...(scaling.mean ? { mean: scaling.mean } : {}), ...(scaling.std ? { std: scaling.std } : {}), outputKind, labels, ...(constants ? { constants } : {}) };

    // The VAE: output roles from shapes and names, reconstruction kind from a probe run.
    if (options.vae || options.encoder) {
      const likelihood = options.likelihood ?? { type: 'bernoulli' as const };
      let vae: VaeSpec;
      let vaeInput: InputSpec;
      let pixels = 0;
      /** The VAE's image: its own size and channels when they differ from the classifier's (each image is decoded once, resized for each). */
      const ownImage = (facts: ImageInputFacts, source: string): InputSpec => {
        const spec: InputSpec = { width: facts.width, height: facts.height, channels: facts.channels, layout: facts.layout };
        pixels = spec.width * spec.height * spec.channels;
        if (spec.width !== input.width || spec.height !== input.height || spec.channels !== input.channels) {
          decide_(`VAE image: ${source} takes ${describeImage(spec)}, the classifier ${describeImage(classifierInput)}: each image is decoded once and resized for each model (vae.width, vae.height, vae.channels)`);
        }
        return spec;
      };
      const vaeGeometry = (spec: InputSpec) => (spec.width !== input.width || spec.height !== input.height || spec.channels !== input.channels ? { width: spec.width, height: spec.height, channels: spec.channels } : {});
      let vaeLayout: Layout;
      if (options.vae) {
        const format = modelFormatOf(options.vae);
        sources.push({ role: 'vae', path: options.vae, format, name: 'vae' });
        const runner = await open(options.vae, format);
        const vin = readImageInput(runner, 'VAE', { layout: options.layout, size: options.size });
        vaeInput = ownImage(vin, runner.source);
        vaeLayout = vin.layout;
        const vaeProbe = probeImages(vaeInput);
        const o = await withAnyBatch(runner).run({ [vin.name]: probeTensor(vaeProbe, vaeInput, { layout: vin.layout, ...vaeScaling }) });
        let roles = options.vaeOutputs;
        if (!roles) {
          const recon = runner.outputs.filter((t) => perImage(o[t.name], probe.length) === pixels);
          if (recon.length !== 1 || runner.outputs.length !== 3) throw new FitError(`${runner.source}: cannot tell the VAE's outputs apart (${runner.outputs.map((t) => `"${t.name}" ${fmt(t.shape)}`).join(', ')}); it needs one reconstruction with ${pixels} values per image, a mean and a log-variance; name them with --vae-outputs RECONSTRUCTION,MU,LOGVAR`);
          roles = { reconstruction: recon[0].name, ...muAndLogvar(runner.outputs.filter((t) => t !== recon[0]), runner.source, '--vae-outputs RECONSTRUCTION,MU,LOGVAR') };
        }
        const kind = options.reconstructionKind ?? (likelihood.type === 'gaussian' ? 'mean' : reconstructionKindOf(o[roles.reconstruction]));
        vae = { path: '', format, input: vin.name, layout: vin.layout, ...vaeGeometry(vaeInput), outputs: roles, reconstructionKind: kind, likelihood };
        decide_(`VAE: ${runner.source} (${format}) takes "${vin.name}" ${fmt(vin.shape)} ${vin.layout}; outputs reconstruction "${roles.reconstruction}" (${kind}), mu "${roles.mu}", logvar "${roles.logvar}"`);
      } else {
        const eFormat = modelFormatOf(options.encoder!);
        const dFormat = modelFormatOf(options.decoder!);
        sources.push({ role: 'encoder', path: options.encoder!, format: eFormat, name: 'vae-encoder' }, { role: 'decoder', path: options.decoder!, format: dFormat, name: 'vae-decoder' });
        const encoder = await open(options.encoder!, eFormat);
        const decoder = await open(options.decoder!, dFormat);
        const ein = readImageInput(encoder, 'encoder', { layout: options.layout, size: options.size });
        vaeInput = ownImage(ein, encoder.source);
        vaeLayout = ein.layout;
        const roles = options.vaeOutputs ? { mu: options.vaeOutputs.mu, logvar: options.vaeOutputs.logvar } : muAndLogvar(encoder.outputs, encoder.source, '--vae-outputs RECONSTRUCTION,MU,LOGVAR');
        const e = await withAnyBatch(encoder).run({ [ein.name]: probeTensor(probeImages(vaeInput), vaeInput, { layout: ein.layout, ...vaeScaling }) });
        if (decoder.inputs.length !== 1) throw new FitError(`${decoder.source}: the decoder has ${decoder.inputs.length} inputs; it needs one (the latent z)`);
        const latent = perImage(e[roles.mu], probe.length);
        const d = await withAnyBatch(decoder).run({ [decoder.inputs[0].name]: { data: e[roles.mu].data, dims: [probe.length, latent] } });
        const recon = options.vaeOutputs?.reconstruction ?? (decoder.outputs.length === 1 ? decoder.outputs[0].name : decoder.outputs.find((t) => perImage(d[t.name], probe.length) === pixels)?.name);
        if (!recon || !d[recon]) throw new FitError(`${decoder.source}: cannot tell which output is the reconstruction (${decoder.outputs.map((t) => `"${t.name}"`).join(', ')}); name it with --vae-outputs RECONSTRUCTION,MU,LOGVAR`);
        if (perImage(d[recon], probe.length) !== pixels) throw new FitError(`${decoder.source}: the reconstruction "${recon}" has ${perImage(d[recon], probe.length)} values per image but the input has ${pixels}`);
        const kind = options.reconstructionKind ?? (likelihood.type === 'gaussian' ? 'mean' : reconstructionKindOf(d[recon]));
        vae = {
          reconstructionKind: kind,
          likelihood,
          layout: ein.layout,
          ...vaeGeometry(vaeInput),
          encoder: { path: '', format: eFormat, input: ein.name, outputs: roles },
          decoder: { path: '', format: dFormat, input: decoder.inputs[0].name, output: recon },
        };
        decide_(`VAE: encoder ${encoder.source} takes "${ein.name}" ${fmt(ein.shape)} ${ein.layout} → mu "${roles.mu}", logvar "${roles.logvar}" (${latent}-d); decoder ${decoder.source} "${decoder.inputs[0].name}" → reconstruction "${recon}" (${kind})`);
      }
      vaeScaling.mean = expand(vaeScaling.mean, vaeInput.channels);
      vaeScaling.std = expand(vaeScaling.std, vaeInput.channels);
      perChannel(vaeScaling, vaeInput.channels, 'vae-', 'VAE');
      Object.assign(vae, { range: vaeScaling.range, ...(vaeScaling.mean ? { mean: vaeScaling.mean } : {}), ...(vaeScaling.std ? { std: vaeScaling.std } : {}) });
      vae.layout = vaeLayout;
      manifest.vae = vae;
      decide_(`VAE input scaling: pixels 0..255 → [${vaeScaling.range.join(', ')}]${vaeScaling.mean ? `, then (x − ${fmtList(vaeScaling.mean)})` : ''}${vaeScaling.std ? ` / ${fmtList(vaeScaling.std)}` : ''}; ${likelihood.type} likelihood${likelihood.type === 'gaussian' ? ` (σ = ${likelihood.sigma})` : ''} on pixels in [0, 1]`);
    } else if (options.trainVae !== false) {
      const size = vaeImageSize(input.width, input.height);
      // The VAE sees what the classifier sees: the same padding, scaled with the image when the VAE is smaller.
      const vaePadding = padding && Math.round((padding * size.width) / input.width);
      vaeToTrain = { width: size.width, height: size.height, channels: input.channels, layout: 'NCHW', range: [0, 1], padding: vaePadding };
      decide_(`VAE: none given, so fit trains one on the fit part (--no-vae: a classifier-only pair): an MLP on ${describeImage(vaeToTrain)} images (the classifier's ${input.width}×${input.height} ${size.width === input.width && size.height === input.height ? 'as it is' : `scaled to at most ${VAE_MAX_SIDE} px on the long side`}), Bernoulli likelihood on pixels in [0, 1]`);
    } else {
      decide_('no VAE: a classifier-only pair (--no-vae)');
    }
    // A TF.js layers model without --features: the input of its last Dense layer, as ONNX models use the input of their last Gemm.
    const featuresLayer = options.featuresLayer ?? (classifierFormat === 'tfjs-layers' ? tfjsLastDenseInput(resolve(options.classifier)) ?? undefined : undefined);
    featureTrouble = featuresProblem(resolve(options.classifier), classifierFormat, featuresLayer);
    if (featureTrouble === null && featuresLayer) manifest.features = { layer: featuresLayer };
    plannedDetectors = defaultDetectors({ vae: !!manifest.vae || !!vaeToTrain, features: featureTrouble === null, logits: manifest.classifier.outputKind === 'logits' });
    // The feature tests enter the manifest with their fit (a knn detector without features.fit is invalid).
    if (featureTrouble !== null) manifest.detectors = plannedDetectors;
    decide_(`detectors (share of α): ${plannedDetectors.map((d) => `${d.test} ${d.share}`).join(', ')}${featureTrouble === null ? ` — KNN and Mahalanobis on the classifier's features (${options.featuresLayer ? `layer "${options.featuresLayer}"` : featuresLayer ? `layer "${featuresLayer}", the input of its last Dense layer` : 'the input of its last Gemm/MatMul'})` : ` — no feature detectors: ${featureTrouble}`}`);
  } finally {
    await Promise.allSettled(opened.map((r) => r.dispose()));
  }
  checkAbort();
  progress('reading models', 1, 1);
  const planned = [...sources.map((s) => (s.format === 'onnx' ? `${s.name}.onnx` : s.name)), ...(vaeToTrain ? ['vae.onnx', 'vae-encoder.onnx', 'vae-decoder.onnx'] : []), 'ood-pair.json', 'calibration.json', 'split.json'];
  const outProblem = outFolderProblem(out, planned, !!options.force);
  if (outProblem) throw new FitError(outProblem);

  // 2. The data and its split.
  progress('listing images', 0, 0);
  let items = await listData(options.data, options.signal, options.readManifest);
  if (options.limit !== undefined) items = items.slice(0, options.limit);
  checkAbort();
  const seed = options.seed ?? 0;
  // IDX images carry their size in the header: resized to each model's input like any image, never read as
  // if they were the model's size. Said when they differ, so that a surprise (a 64×64 set for a 28×28 model) shows.
  const nativeSizes = new Set(items.flatMap((i) => (i.input.source && 'width' in i.input.source ? [`${i.input.source.width}×${i.input.source.height}`] : [])));
  const geometries: { width?: number; height?: number }[] = manifest.vae ? [manifest.input, manifest.vae] : vaeToTrain ? [manifest.input, vaeToTrain] : [manifest.input];
  const modelSizes = [...new Set(geometries.map((x) => `${x.width ?? manifest.input.width}×${x.height ?? manifest.input.height}`))];
  const odd = [...nativeSizes].filter((sz) => !modelSizes.includes(sz) || modelSizes.length > 1);
  if (odd.length) decide_(`data: IDX images of ${[...nativeSizes].join(', ')} grey; each is resized to each model's input (${modelSizes.join(' and ')}) as any image file would be`);
  const withFeatures = featureTrouble === null;
  const needsFitPart = withFeatures || !!vaeToTrain;
  const parts = splitSizes(items.length, { needsFitPart, checkShare: options.checkShare });
  if (parts.calibration < 20) throw new FitError(`--data: ${items.length} images found; calibration needs at least 20 held-out images after the check part (a few thousand are better)`);
  // Before any scoring: a calibration part too small for any test to fire at α would be written, then refused
  // at load (calibrationCheck.ts, the same rule) — every image would be "in-distribution".
  const tooFew = tooFewForAlpha(items.length, parts, plannedDetectors, alpha, { needsFitPart, checkShare: options.checkShare });
  if (tooFew) throw new FitError(tooFew);
  const order = seededPermutation(items.length, seed);
  const partOf = new Uint8Array(items.length); // 0 fit, 1 calibration, 2 check
  order.forEach((itemIndex, rank) => {
    partOf[itemIndex] = rank < parts.fit ? 0 : rank < parts.fit + parts.calibration ? 1 : 2;
  });
  decide_(`data: ${items.length} images from ${options.data.join(', ')}; seeded shuffle (seed ${seed}) → fit ${parts.fit}, calibration ${parts.calibration}, held-out check ${parts.check}${parts.fit === 0 ? ' (no detector of this pair learns from data, so no fit part)' : ` (${[vaeToTrain ? 'the VAE is trained' : '', withFeatures ? 'KNN/Mahalanobis are fitted' : ''].filter(Boolean).join(' and ')} on the fit part and calibrated on other images${withFeatures ? ', since a fit image is its own nearest neighbour' : ''})`}`);

  // 3. Is the classifier fed right? Checked on the user's own images before anything is written.
  const classLabels = manifest.classifier.labels;
  const labelIndex = new Map(classLabels.map((l, i) => [l, i]));
  const classOf = (label: string | null) => (label === null ? undefined : labelIndex.get(label) ?? (/^\d+$/.test(label) && Number(label) < classLabels.length ? Number(label) : undefined));
  const unmatched = new Map<string, number>();
  for (const item of items) if (item.label !== null && classOf(item.label) === undefined) unmatched.set(item.label, (unmatched.get(item.label) ?? 0) + 1);
  if (unmatched.size) {
    const shown = [...unmatched].slice(0, 6).map(([l, n]) => `"${l}" (${n} image${n === 1 ? '' : 's'})`).join(', ');
    throw new FitError(
      `--labels: the data's labels ${shown}${unmatched.size > 6 ? ` and ${unmatched.size - 6} more` : ''} match no class of the classifier, whose output "${classifierFeed.outputName}" gives ${classLabels.length} classes (${classLabels.length > 12 ? `${classLabels.slice(0, 10).join(', ')}, …` : classLabels.join(', ')}). ` +
        `Give --labels with the class names in output order as the data writes them (numbers are class indices), fix the data's labels, or name the output that gives one score per class with --output. Nothing was written`,
    );
  }
  const classesFound = new Set(items.flatMap((i) => (i.label === null ? [] : [classOf(i.label)!])));
  const checkOrder = [2, 1, 0].flatMap((part) => [...order].filter((i) => partOf[i] === part));
  const labelledFirst = classesFound.size ? checkOrder.filter((i) => items[i].label !== null) : checkOrder;
  progress('checking the classifier', 0, 1);
  const checkRunner = await untilAborted(loadModel(resolve(options.classifier), classifierFormat, { ...loadOptions, constants }), options.signal, () => new FitError(CANCELLED), (late) => void late.dispose().catch(() => undefined));
  // Images smaller than the input by the same even margin on both axes: the check also tries them padded.
  const checkImages = labelledFirst.slice(0, CHECK_IMAGES).map((i) => ({ input: items[i].input, classIndex: classOf(items[i].label) ?? null }));
  let paddingToTry: number | null = null;
  if (options.padding === undefined && classifierFeed.layouts?.[0] !== 'flat') {
    const sizes: { width: number; height: number }[] = [];
    for (const c of checkImages.slice(0, 24)) sizes.push(await imageSizeOf(c.input).catch(() => ({ width: 0, height: 0 })));
    paddingToTry = paddingThatFits(sizes, manifest.input.width!, manifest.input.height!);
  }
  // Padding is in the images' own edge colour (recorded as input.background), never the default white.
  const paddingBackground = options.padding || paddingToTry ? await imagesEdgeColour(checkImages.slice(0, 24).map((c) => c.input), manifest.input.channels!) : undefined;
  if (options.padding && paddingBackground) {
    manifest.input.background = paddingBackground;
    decide_(`padding colour ${paddingBackground}: the median of the images' outermost pixels`);
  }
  let feedCheck: FeedCheckEvidence;
  try {
    feedCheck = await checkClassifierFeed({
      runner: withAnyBatch(checkRunner),
      ...classifierFeed,
      spec: { ...manifest.input, width: manifest.input.width!, height: manifest.input.height!, channels: manifest.input.channels!, layout: manifest.classifier.layout ?? manifest.input.layout },
      given: { range: scaling.range, mean: scaling.mean, std: scaling.std, layout: manifest.classifier.layout ?? manifest.input.layout },
      images: checkImages,
      ...(paddingToTry ? { paddingToTry, paddingBackground } : {}),
      distinctLabels: classesFound.size ? classesFound.size : null,
      batchSize: options.batchSize,
      signal: options.signal,
    });
  } finally {
    await checkRunner.dispose();
  }
  checkAbort();
  progress('checking the classifier', 1, 1);
  const pct = (x: number | null) => (x === null ? '—' : `${(100 * x).toFixed(1)}%`);
  decide_(
    `feeding check on ${feedCheck.images} images${feedCheck.labelled ? ` (${feedCheck.labelled} labelled; accuracy floor ${pct(feedCheck.floor)})` : ' (no labels: checked for a degenerate output)'}: ` +
      feedCheck.trials.map((t, i) => `${t.flags}${i === 0 ? ' (as given)' : ''} ${t.accuracy !== null ? pct(t.accuracy) : `top class ${pct(t.topClassShare)}, confidence ${pct(t.meanConfidence)}`}`).join('; ') +
      `; batch probe: ${feedCheck.batchProbe.images} images alone vs in one batch, largest difference ${feedCheck.batchProbe.maxDifference.toExponential(1)} of the output scale`,
  );
  // Padding a little better (under the refusal margin): said, not refused — the user knows how the model was trained.
  const padded = paddingToTry ? feedCheck.trials.find((t) => t.flags.endsWith(paddingFlag(paddingToTry!))) : undefined;
  if (padded && padded.accuracy !== null && feedCheck.accuracy !== null && padded.accuracy >= feedCheck.accuracy + 0.01 && !feedCheck.problems.length) {
    decide_(`the classifier reads the check images better with the images padded into its ${manifest.input.width}×${manifest.input.height} input than stretched to it: ${pct(padded.accuracy)} against ${pct(feedCheck.accuracy)}; if it was trained on padded images, fit again with ${paddingFlag(paddingToTry!)}`);
  }
  if (classesFound.size && classesFound.size !== feedCheck.classes && !feedCheck.problems.length) decide_(`the data's labels name ${classesFound.size} of the classifier's ${feedCheck.classes} classes`);
  if (feedCheck.problems.length) {
    if (!options.forceReason) {
      throw new FitError(
        `the classifier does not look fed right; nothing was written:\n  - ${feedCheck.problems.join('\n  - ')}\n` +
          'Fix the flags above, or pass --force "why" to write the pair anyway (the reason and these findings are stored in the pair, and info, score and the Inspect panel warn about it)',
      );
    }
    feedCheck.forced = options.forceReason;
    decide_(`written anyway (--force "${options.forceReason}") over: ${feedCheck.problems.join(' | ')}`);
  }

  // 4. Staging: models and a draft manifest in a folder inside `out`, moved into place only at the end.
  mkdirSync(out, { recursive: true });
  for (const name of removeStaleStaging(out)) decide_(`removed ${name}, the staging folder of a fit that did not finish`);
  const staging = join(out, `${STAGING_PREFIX}${process.pid}-${Date.now()}`);
  mkdirSync(staging);
  let engine: OodEngine | undefined;
  let testChoice: TestChoiceRecord | undefined;
  /** Files fit made in the staging folder (the trained VAE), moved into `out` with the rest. */
  const generated: string[] = [];
  try {
    for (const s of sources) {
      const rel = copyModel(s.path, s.format, staging, s.name);
      if (s.role === 'classifier') manifest.classifier.path = rel;
      else if (s.role === 'vae') manifest.vae!.path = rel;
      else if (s.role === 'encoder') manifest.vae!.encoder!.path = rel;
      else manifest.vae!.decoder!.path = rel;
    }
    // A pair forced over the check is loaded as such from the start (the load-time batch probe defers to it).
    if (feedCheck.forced !== undefined) manifest.fit = { data: options.data.join(', '), images: items.length, seed, parts, check: feedCheck };
    // The draft goes through the same validation as any manifest (schema + field relations).
    parsePairManifest(JSON.stringify(manifest), join(out, 'ood-pair.json'));
    writeFileAtomic(join(staging, 'ood-pair.json'), JSON.stringify(manifest, null, 2) + '\n');
    const placeholder: Calibration = { version: 1, pair: '', source: '', count: 1, createdAt: '', scores: { elbo: manifest.vae || vaeToTrain ? [0] : [], msp: [0] } };
    const engineOptions = { provider: options.provider, batchSize: options.batchSize, calibration: placeholder, alpha, onNotice: options.onNotice };
    if (vaeToTrain) {
      const spec: InputSpec = { ...manifest.input, ...vaeToTrain };
      const fitIdx = items.map((_, i) => i).filter((i) => partOf[i] === 0);
      const pixels = spec.width * spec.height * spec.channels;
      const data = new Float32Array(fitIdx.length * pixels);
      let count = 0;
      const unreadable: string[] = [];
      for (const i of fitIdx) {
        checkAbort();
        const input = items[i].input;
        try {
          const source = input.source ?? (await readChecked(input.path, 256 * 1024 * 1024));
          toUnitPlanar(await toModelImage(source, spec), data, count * pixels);
          count++;
        } catch (err) {
          unreadable.push(`${input.path}: ${(err as Error).message}`);
        }
      }
      const trainImages = count - Math.max(1, Math.round(count * 0.1));
      const epochs = options.vaeEpochs ?? defaultVaeEpochs(trainImages, pixels);
      const estimate = (epochs * trainImages) / nominalImagesPerSecond(pixels);
      decide_(`training the VAE on ${count} fit-part images (${trainImages} to train, the rest to measure its held-out ELBO), ${epochs} epochs${options.vaeEpochs ? ' (--vae-epochs)' : ' (from the data size)'}: about ${formatDuration(estimate)} at ${Math.round(nominalImagesPerSecond(pixels))} images/s${unreadable.length ? `; ${unreadable.length} images could not be read (first: ${unreadable[0]})` : ''}`);
      progress('training VAE', 0, epochs * trainImages);
      let trained;
      try {
        trained = await trainVae({
          data: data.subarray(0, count * pixels),
          count,
          pixels,
          seed,
          epochs,
          timeLimitSeconds: options.vaeTimeLimit,
          provider: options.provider,
          signal: options.signal,
          onProgress: (p) => options.onProgress?.({ phase: 'training VAE', done: p.images, total: p.totalImages, vae: { epoch: p.epoch, epochs: p.epochs, loss: p.loss, secondsLeft: p.secondsLeft } }),
        });
      } catch (err) {
        if (err instanceof VaeTrainingCancelled) throw new FitError(CANCELLED);
        throw new FitError(`training the VAE failed: ${(err as Error).message}`);
      }
      const graphs = vaeOnnxModels(trained.weights, spec);
      writeFileAtomic(join(staging, 'vae.onnx'), graphs.vae);
      writeFileAtomic(join(staging, 'vae-encoder.onnx'), graphs.encoder);
      writeFileAtomic(join(staging, 'vae-decoder.onnx'), graphs.decoder);
      generated.push('vae.onnx', 'vae-encoder.onnx', 'vae-decoder.onnx');
      const sameImage = spec.width === manifest.input.width && spec.height === manifest.input.height && spec.channels === manifest.input.channels && (spec.padding ?? 0) === (manifest.input.padding ?? 0);
      manifest.vae = {
        path: 'vae.onnx',
        format: 'onnx',
        input: 'image',
        outputs: { reconstruction: 'reconstruction_logits', mu: 'mu', logvar: 'logvar' },
        reconstructionKind: 'logits',
        likelihood: { type: 'bernoulli' },
        layout: 'NCHW',
        range: [0, 1],
        ...(sameImage ? {} : { width: spec.width, height: spec.height, channels: spec.channels, padding: spec.padding ?? 0 }),
        encoder: { path: 'vae-encoder.onnx', format: 'onnx', input: 'image', outputs: { mu: 'mu', logvar: 'logvar' } },
        decoder: { path: 'vae-decoder.onnx', format: 'onnx', input: 'z', output: 'reconstruction_logits' },
        training: trained.record,
      };
      parsePairManifest(JSON.stringify(manifest), join(out, 'ood-pair.json'));
      writeFileAtomic(join(staging, 'ood-pair.json'), JSON.stringify(manifest, null, 2) + '\n');
      const r = trained.record;
      decide_(`trained the VAE: ${r.epochs} epochs in ${formatDuration(r.seconds)} (${r.imagesPerSecond} images/s, ${r.engine}); loss ${r.lossCurve[0]} → ${r.lossCurve.at(-1)} nats; held-out ELBO ${r.heldOutElbo} nats (${r.heldOutBitsPerDim} bits/dim)${r.stoppedBy ? `; stopped by the ${r.stoppedBy} (planned ${r.plannedEpochs} epochs)` : ''} → vae.onnx, vae-encoder.onnx, vae-decoder.onnx`);
    }
    if (withFeatures) {
      // The feature detectors learn from the fit part (labels, when every fit image has one, for Mahalanobis).
      const fitIdx = items.map((_, i) => i).filter((i) => partOf[i] === 0);
      const fitLabels = fitIdx.map((i) => classOf(items[i].label));
      const fitter = await untilAborted(OodEngine.create({ ...engineOptions, pair: staging, features: true, complexity: false }), options.signal, () => new FitError(CANCELLED), (late) => void late.dispose().catch(() => undefined));
      let fitted;
      try {
        progress('fitting detectors', 0, fitIdx.length);
        fitted = await fitFeatureDetectors(
          fitter,
          fitIdx.map((i) => items[i].input),
          {
            source: `${options.data.map((d) => basename(d)).join(', ')}: fit part of fit's split (seed ${seed}, ${fitIdx.length} images)`,
            labels: fitLabels.every((l) => l !== undefined) ? (fitLabels as number[]) : undefined,
            onProgress: (done) => progress('fitting detectors', done, fitIdx.length),
            signal: options.signal,
          },
        );
      } finally {
        await fitter.dispose();
      }
      checkAbort();
      // The earlier-layer test enters with no share of its own; the probe-based choice below gives it one if it sees the probes.
      if (fitted.fit.layers?.length && !plannedDetectors.some((d) => d.test === 'layers')) plannedDetectors = [...plannedDetectors, { test: 'layers', share: 0 }];
      const fitPath = saveFeatureFit(join(staging, 'ood-pair.json'), fitted.fit, plannedDetectors);
      const saved = JSON.parse(readFileSync(join(staging, 'ood-pair.json'), 'utf8')) as PairManifest;
      manifest.features = saved.features;
      manifest.detectors = saved.detectors;
      decide_(`fitted KNN and Mahalanobis on ${fitted.fit.count} images (${fitted.fit.dims} features from "${fitted.fit.tensor}"; Mahalanobis class means from ${fitted.fit.mahalanobisLabels === 'given' ? 'the data\'s labels' : 'the classifier\'s predictions'})${fitted.fit.layers?.length ? `, and one Gaussian per earlier conv layer (${fitted.fit.layers.map((l) => `"${l.tensor}" ${l.model.dims}${l.pooling === 'channels' ? ' channel means' : ' = 2×2 pooled'}`).join(', ')})` : ''}${fitted.skipped.length ? `; ${fitted.skipped.length} images skipped` : ''} → ${basename(fitPath)}`);
    }
    engine = await untilAborted(OodEngine.create({ ...engineOptions, pair: staging, complexity: !!manifest.vae }), options.signal, () => new FitError(CANCELLED), (late) => void late.dispose().catch(() => undefined));

    // 5. Score the calibration and check parts (and the fit part, for detectors that learn).
    const wanted = items.map((_, i) => i).filter((i) => partOf[i] !== 0);
    const results: (ImageResult | undefined)[] = new Array(items.length);
    let done = 0;
    const started2 = performance.now();
    await engine.scoreAll(
      wanted.map((i) => items[i].input),
      (r, k) => {
        results[wanted[k]] = r;
        done++;
        if (done % 256 === 0 || done === wanted.length) progress('scoring', done, wanted.length);
      },
      { signal: options.signal },
    );
    checkAbort();
    const scoringSeconds = (performance.now() - started2) / 1000;
    const failures = wanted.filter((i) => results[i]?.verdict === 'error').map((i) => ({ path: items[i].input.path, error: results[i]!.error ?? 'unknown error' }));
    const ok = (part: number) => wanted.filter((i) => partOf[i] === part && results[i] && results[i]!.verdict !== 'error');
    const calibrationIdx = ok(1);
    const checkIdx = ok(2);
    if (calibrationIdx.length < 20) {
      throw new FitError(`only ${calibrationIdx.length} of ${parts.calibration} calibration images could be scored; calibration needs at least 20.${failures.length ? ` First problems: ${failures.slice(0, 3).map((f) => `${f.path}: ${f.error}`).join('; ')}` : ''}`);
    }
    // Images that could not be read shrink the calibration part: the same rule again on what was scored.
    const scoredTooFew = rejectionCheck(Object.fromEntries(plannedDetectors.map((d) => [d.test, calibrationIdx.length])), 'pair', alpha, pairShares(manifest) ?? {});
    if (!scoredTooFew.canReject) {
      throw new FitError(`only ${calibrationIdx.length} of ${parts.calibration} calibration images could be scored; at α = ${alpha} no test could ever flag an image with fewer than ${scoredTooFew.minimum}. Nothing was written.${failures.length ? ` First problems: ${failures.slice(0, 3).map((f) => `${f.path}: ${f.error}`).join('; ')}` : ''}`);
    }
    decide_(`scored ${done} images in ${scoringSeconds.toFixed(1)} s (${Math.round(done / Math.max(scoringSeconds, 1e-3))} images/s)${failures.length ? `; ${failures.length} could not be scored (first: ${failures[0].path}: ${failures[0].error})` : ''}`);

    // 6. Calibrate, then measure false alarms on the check part (never used for calibration).
    const calibration = calibrationOf(calibrationIdx.map((i) => results[i]!), engine, `${options.data.map((d) => basename(d)).join(', ')}: calibration part of fit's split (seed ${seed})`);
    const sorted: Calibration = { ...calibration, scores: Object.fromEntries(Object.entries(calibration.scores).map(([k, v]) => [k, v ? [...v].sort((a: number, b: number) => a - b) : v])) as unknown as CalibrationScores };
    // 5a. The tests the verdict leans on, from in-distribution data only: synthetic probes made from fit images.
    if (options.chooseTests !== false && manifest.detectors?.length) {
      const calibrationResults = calibrationIdx.map((i) => results[i]!);
      const sourceIdx = (parts.fit ? items.map((_, i) => i).filter((i) => partOf[i] === 0) : calibrationIdx).slice(0, PROBES_PER_KIND);
      const classifierImage: InputSpec = { ...(manifest.input as InputSpec) };
      const sources: ProbeSource[] = [];
      for (const i of sourceIdx) {
        const input = items[i].input;
        try {
          sources.push(await toModelImage(input.source ?? (await readChecked(input.path, 256 * 1024 * 1024)), classifierImage));
        } catch {
          // An unreadable image makes no probe; the others do.
        }
      }
      checkAbort();
      if (sources.length) {
        const perKind = Math.min(PROBES_PER_KIND, Math.max(20, sources.length));
        const probes = makeProbes(sources, perKind, seed);
        const probeResults: ImageResult[] = new Array(probes.length);
        progress('choosing tests', 0, probes.length);
        await engine.scoreAll(
          probes.map((p, k) => ({ path: `probe:${p.kind}#${k}`, source: p.image })),
          (r, k) => {
            probeResults[k] = r;
          },
          { signal: options.signal },
        );
        checkAbort();
        progress('choosing tests', probes.length, probes.length);
        const inScores: Partial<Record<TestName, number[]>> = {};
        const probeScores: Partial<Record<TestName, Partial<Record<ProbeKind, number[]>>>> = {};
        for (const d of engine.detectors) {
          inScores[d.test] = calibrationResults.map((r) => resultOodScore(d.test, r)).filter((v): v is number => v !== null);
          probeScores[d.test] = scoresByKind(probes, probeResults, (r) => resultOodScore(d.test, r));
        }
        const planned = pairShares(manifest) ?? {};
        let choice = chooseTests(inScores, probeScores, planned, perKind);
        const benign = await scoreBenignProbes(engine, calibrationIdx.map((i) => items[i].input), classifierImage, seed, options.signal);
        checkAbort();
        if (benign) choice = weighBenignShifts(choice, inScores, benign.scores, benign.perKind);
        const chosen = Object.fromEntries(choice.tests.map((t) => [t.test, t.share])) as AlphaShares;
        // The chosen shares must still let a test fire with this calibration part (the rule the pair is loaded with).
        // Checked at the default α (0.01) too, where `score` and the extension use the pair unless told otherwise.
        const checkAlpha = Math.min(alpha, 0.01);
        const counts = Object.fromEntries(choice.tests.map((t) => [t.test, calibrationIdx.length]));
        const fires = rejectionCheck(counts, 'pair', checkAlpha, chosen);
        if (!fires.canReject && rejectionCheck(counts, 'pair', checkAlpha, planned).canReject) choice = { ...choice, fallback: `with ${calibrationIdx.length} calibration images the chosen shares could not flag any image at α = ${checkAlpha} (they need ${fires.minimum}); the planned shares stand`, tests: choice.tests.map((t) => ({ ...t, share: planned[t.test] ?? 0 })) };
        // The chosen tests together (fisherTest.ts): Fisher's method, with its own conformal calibration half.
        const memberRows = choice.tests.filter((t) => t.share > 0);
        const fisher = !choice.fallback && memberRows.length >= 2 ? fisherCalibration(calibrationResults, memberRows.map((t) => t.test), memberRows.map((t) => t.share), seed) : null;
        if (fisher) {
          const byKind = scoresByKind(probes, probeResults, (r) => fisherScoreOf(fisher.reference, r));
          const row = chooseTests({ fisher: fisher.values }, { fisher: byKind }, {}, perKind).tests[0];
          const extended = row ? withFisher(choice, row) : null;
          const extendedShares = Object.fromEntries((extended?.tests ?? []).map((t) => [t.test, t.share])) as AlphaShares;
          if (extended && rejectionCheck({ ...counts, fisher: fisher.values.length }, 'pair', checkAlpha, extendedShares).canReject) {
            choice = extended;
            if (row!.used) {
              for (const c of [calibration, sorted]) {
                c.scores.fisher = [...fisher.values].sort((x, y) => x - y);
                c.fisherReference = fisher.reference;
              }
            }
          }
        }
        const finalShares = Object.fromEntries(choice.tests.map((t) => [t.test, t.share]));
        manifest.detectors = manifest.detectors.map((d) => ({ ...d, share: finalShares[d.test] ?? d.share }));
        // A test the engine scores and calibrates but the plan left out (energy beside a VAE) joins with its share.
        for (const t of choice.tests) if (t.share > 0 && !manifest.detectors.some((d) => d.test === t.test)) manifest.detectors.push({ test: t.test, share: t.share });
        testChoice = choice;
        decide_(`tests chosen on ${probes.length} synthetic probes made from ${sourceIdx === calibrationIdx ? 'calibration' : 'fit'}-part images (${PROBE_KINDS.join(', ')})${benign ? ` and ${benign.perKind * BENIGN_KINDS.length} benign-shift probes made from calibration-part images (${BENIGN_KINDS.join(', ')}), which a test should not flag` : ''}, against the calibration images — never an OOD set:`);
        for (const line of testChoiceLines(choice)) decide_(`  ${line}`);
        if (choice.fallback) decide_(`  ${choice.fallback}`);
      }
    }
    const shares = pairShares(manifest);
    let alarms = 0;
    let correct = 0;
    let labelled = 0;
    for (const i of checkIdx) {
      const r = results[i]!;
      const oodScores: Partial<Record<TestName, number | null>> = {};
      for (const d of engine.detectors) oodScores[d.test] = resultOodScore(d.test, r);
      if (decideTests(sorted, oodScores, alpha, 'pair', shares).verdict === 'out-of-distribution') alarms++;
      const label = items[i].label;
      if (label !== null) {
        const k = classOf(label);
        if (k !== undefined) {
          labelled++;
          if (r.prediction === k) correct++;
        }
      }
    }
    const heldOutFalseAlarmRate = checkIdx.length ? alarms / checkIdx.length : 0;
    const heldOutAccuracy = labelled ? correct / labelled : null;
    const checkResults = checkIdx.map((i) => results[i]!);
    // Each detector's held-out OOD scores (higher = more out-of-distribution), for histograms.
    const calibrationResults = calibrationIdx.map((i) => results[i]!);
    const heldOutScores: HeldOutScores[] = engine.detectors.map((d) => ({
      detector: d.test,
      direction: 'high-is-ood' as const,
      calibration: calibrationResults.map((r) => resultOodScore(d.test, r)).filter((v): v is number => v !== null),
      check: checkResults.map((r) => resultOodScore(d.test, r)).filter((v): v is number => v !== null),
    }));
    if (heldOutAccuracy !== null) {
      decide_(`classifier accuracy on the held-out check part: ${(100 * heldOutAccuracy).toFixed(2)}% of ${labelled} labelled images${heldOutAccuracy < 0.5 ? ' — far below what a working classifier gets: check the input scaling (--range, --mean, --std) and the labels' : ''}`);
    }

    // 7. Write the pair: models, calibration, split, manifest (each atomically), then remove the staging folder.
    progress('writing', 0, 1);
    const dataBase = options.data.length === 1 && existsSync(options.data[0]) && statSync(options.data[0]).isDirectory() ? resolve(options.data[0]) : undefined;
    const split = {
      version: 1,
      data: options.data.map((d) => resolve(d)),
      seed,
      method: 'mulberry32 Fisher–Yates shuffle of the images in listing order (folders by name, IDX by index); the first `fit` go to fit, the next `calibration` to calibration, the rest to check',
      parts: {
        fit: items.map((_, i) => i).filter((i) => partOf[i] === 0).map((i) => shortPath(items[i].input.path, dataBase)),
        calibration: items.map((_, i) => i).filter((i) => partOf[i] === 1).map((i) => shortPath(items[i].input.path, dataBase)),
        check: items.map((_, i) => i).filter((i) => partOf[i] === 2).map((i) => shortPath(items[i].input.path, dataBase)),
      },
    };
    for (const s of sources) {
      const rel = s.role === 'classifier' ? manifest.classifier.path : s.role === 'vae' ? manifest.vae!.path! : s.role === 'encoder' ? manifest.vae!.encoder!.path : manifest.vae!.decoder!.path;
      const top = rel.split('/')[0];
      rmSync(join(out, top), { recursive: true, force: true });
      renameSync(join(staging, top), join(out, top));
    }
    for (const f of generated) renameSync(join(staging, f), join(out, f));
    if (manifest.features?.fit) {
      for (const f of readdirSync(staging).filter((n) => n.startsWith('features'))) renameSync(join(staging, f), join(out, f));
    }
    writeFileAtomic(join(out, 'calibration.json'), JSON.stringify(calibration));
    writeFileAtomic(join(out, 'split.json'), JSON.stringify(split));
    manifest.calibration = 'calibration.json';
    manifest.fit = {
      data: options.data.join(', '),
      images: items.length,
      seed,
      parts,
      splitFile: 'split.json',
      alpha,
      heldOutFalseAlarmRate,
      heldOutAccuracy,
      check: feedCheck,
      files: [...new Set([...sources.map((s) => (s.role === 'classifier' ? manifest.classifier.path : s.role === 'vae' ? manifest.vae!.path! : s.role === 'encoder' ? manifest.vae!.encoder!.path : manifest.vae!.decoder!.path).split('/')[0]), ...(manifest.features?.fit ? readdirSync(out).filter((n) => n.startsWith('features')) : []), ...generated, 'calibration.json', 'split.json', 'ood-pair.json'])],
      createdAt: new Date().toISOString(),
      ...(testChoice ? { testChoice } : {}),
    };
    parsePairManifest(JSON.stringify(manifest), join(out, 'ood-pair.json'));
    writeFileAtomic(join(out, 'ood-pair.json'), JSON.stringify(manifest, null, 2) + '\n');
    progress('writing', 1, 1);
    decide_(`held-out false alarms at α = ${alpha}: ${alarms} of ${checkIdx.length} check images (${(100 * heldOutFalseAlarmRate).toFixed(2)}%)`);
    return {
      manifestPath: join(out, 'ood-pair.json'),
      manifest,
      decisions,
      parts,
      failed: failures.length,
      failures: failures.slice(0, 20),
      alpha,
      heldOutFalseAlarmRate,
      heldOutAccuracy,
      feedCheck,
      checkOod: alarms,
      heldOutScores,
      seconds: (performance.now() - started) / 1000,
    };
  } catch (err) {
    // The draft pair is fit's own business: its problems are said in the user's terms (flags, the --out folder).
    if (err instanceof Error && !(err instanceof FitError)) throw new FitError(inFitTerms(err.message, staging, out));
    throw err;
  } finally {
    await engine?.dispose();
    rmSync(staging, { recursive: true, force: true });
  }
}

/** The manifest fields fit writes from its flags. */
const FIELD_FLAGS: [RegExp, string][] = [
  [/\bclassifier\.range\b/g, '--range'],
  [/\bclassifier\.mean\b/g, '--mean'],
  [/\bclassifier\.std\b/g, '--std'],
  [/\bclassifier\.layout\b/g, '--layout'],
  [/\bclassifier\.labels\b/g, '--labels'],
  [/\bclassifier\.output\b/g, '--output'],
  [/\bclassifier\.outputKind\b/g, '--output-kind'],
  [/\bclassifier\.constants\b/g, '--const'],
  [/\bvae\.range\b/g, '--vae-range'],
  [/\bvae\.mean\b/g, '--vae-mean'],
  [/\bvae\.std\b/g, '--vae-std'],
  [/\bvae\.outputs\b/g, '--vae-outputs'],
  [/\bvae\.likelihood\.sigma\b/g, '--sigma'],
  [/\bvae\.likelihood\b/g, '--likelihood'],
  [/\b(input|classifier)\.(width|height)(\/(input|classifier)\.(width|height))?\b/g, '--size'],
  [/\bfeatures\.layer\b/g, '--features'],
];

/** A message about the draft pair in fit's terms: the --out folder for the staging folder, flags for manifest fields. */
export function inFitTerms(message: string, staging: string, out: string): string {
  let text = message.split(staging).join(out);
  for (const [field, flag] of FIELD_FLAGS) text = text.replace(field, flag);
  return text;
}

/**
 * Why `images` images are too few for the planned detectors to ever flag an image at α (null when they are
 * enough): calibrationCheck's rule (the smallest conformal p-value with n scores is 1/(n+1)) applied to the
 * calibration part the split would give, with how many images would do and the α at which these would.
 */
export function tooFewForAlpha(images: number, parts: { fit: number; calibration: number; check: number }, detectors: DetectorSpec[], alpha: number, split: { needsFitPart: boolean; checkShare?: number }): string | null {
  const shares = Object.fromEntries(detectors.map((d) => [d.test, d.share])) as AlphaShares;
  const countsWith = (n: number) => Object.fromEntries(detectors.map((d) => [d.test, n])) as Partial<Record<TestName, number>>;
  const check = rejectionCheck(countsWith(parts.calibration), 'pair', alpha, shares);
  if (check.canReject) return null;
  // The fewest images whose split gives that many calibration images (the split grows with n).
  let needed = images;
  while (splitSizes(needed, split).calibration < check.minimum) needed++;
  const largest = Math.max(...detectors.map((d) => d.share));
  // The smallest α (3 significant digits, rounded up) at which the largest share can fire with this calibration part.
  const bound = 1 / ((parts.calibration + 1) * largest); // the test fires only when share · α > 1/(n+1)
  const unit = 10 ** (Math.floor(Math.log10(bound)) - 2);
  const alphaWouldDo = Number(((Math.floor(bound / unit) + 1) * unit).toPrecision(3));
  const sharesText = detectors.filter((d) => d.share > 0).map((d) => `${d.test} ${d.share}`).join(', ');
  const splitText = `${parts.fit ? `fit ${parts.fit}, ` : ''}calibration ${parts.calibration}, check ${parts.check}`;
  return (
    `--data: ${images} images are too few for this pair at α = ${alpha}: the split gives ${splitText}, and with n calibration images the smallest p-value is 1/(n+1), ` +
    `so no test (shares of α: ${sharesText}) could ever flag an image — the largest share needs at least ${check.minimum} calibration images. ` +
    `Give at least ${needed} in-distribution images (a few thousand are better)${alphaWouldDo < 1 ? `, or a larger α (--alpha ${alphaWouldDo} or more; more false alarms)` : ''}. Nothing was scored or written.`
  );
}

/** --mean / --std: one value, or one per channel of the model. */
function perChannel(s: Scaling, channels: number, prefix: string, role: string): void {
  for (const key of ['mean', 'std'] as const) {
    const values = s[key];
    if (values && values.length !== channels) throw new FitError(`--${prefix}${key}: ${values.length} values given but the ${role} takes ${channels === 1 ? '1 channel (grey)' : `${channels} channels (RGB)`}; give one value${channels > 1 ? `, or ${channels}` : ''}`);
  }
}

function describeImage(s: Pick<InputSpec, 'width' | 'height' | 'channels'>): string {
  return `${s.width}×${s.height} ${s.channels === 1 ? 'grey' : 'RGB'}`;
}

function formatDuration(seconds: number): string {
  return seconds < 90 ? `${Math.round(seconds)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function fmtList(xs: number[]): string {
  return xs.length === 1 ? String(xs[0]) : `(${xs.join(', ')})`;
}

function shortPath(path: string, base: string | undefined): string {
  return base && path.startsWith(base + '/') ? path.slice(base.length + 1) : path;
}

/**
 * Benign-shift probes (fit/benignProbes.ts) made from calibration-part images — not fit-part ones, since a fit
 * image is its own nearest neighbour and a slightly shifted copy would look closer to the data than a new image —
 * scored by every test. Undefined when no calibration image could be read.
 */
async function scoreBenignProbes(engine: OodEngine, calibration: ScoreInput[], image: InputSpec, seed: number, signal?: AbortSignal): Promise<{ perKind: number; scores: Partial<Record<TestName, Partial<Record<BenignKind, number[]>>>> } | undefined> {
  const sources: ProbeSource[] = [];
  for (const input of calibration.slice(0, BENIGN_PROBES_PER_KIND)) {
    try {
      sources.push(await toModelImage(input.source ?? (await readChecked(input.path, 256 * 1024 * 1024)), image));
    } catch {
      // An unreadable image makes no probe; the others do.
    }
  }
  if (!sources.length) return undefined;
  const probes = await makeBenignProbes(sources, BENIGN_PROBES_PER_KIND, seed);
  const results: (ImageResult | undefined)[] = new Array(probes.length);
  await engine.scoreAll(probes.map((p, k) => ({ path: `benign probe:${p.kind}#${k}`, source: p.image })), (r, k) => {
    results[k] = r;
  }, { signal });
  const scores: Partial<Record<TestName, Partial<Record<BenignKind, number[]>>>> = {};
  for (const d of engine.detectors) scores[d.test] = scoresByKind(probes, results, (r) => resultOodScore(d.test, r));
  return { perKind: BENIGN_PROBES_PER_KIND, scores };
}

/** One score per probe that was scored (not an error, not null), grouped by the probe's kind. */
function scoresByKind<K extends string>(probes: readonly { kind: K }[], results: readonly (ImageResult | undefined)[], score: (r: ImageResult) => number | null): Partial<Record<K, number[]>> {
  const byKind: Partial<Record<K, number[]>> = {};
  probes.forEach((p, k) => {
    const r = results[k];
    const v = r && r.verdict !== 'error' ? score(r) : null;
    if (v !== null) (byKind[p.kind] ??= []).push(v);
  });
  return byKind;
}
