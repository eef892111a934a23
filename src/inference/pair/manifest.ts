/**
 * The pair manifest (`ood-pair.json`): which classifier and which VAE, how images become their input,
 * and where the calibration scores live. Validated with ajv; every error names the field.
 */
import type { Compressor } from '../detectors/complexity';
import type { ErrorObject } from 'ajv';
import validateManifestSchema from './manifestValidator.generated';
import pairSchemaJson from '../../../schemas/ood-pair.schema.json';
import { existsSync, statSync } from 'node:fs';
import { confinedPath, LIMITS, linkedOutside, readBoundedTextSync, stripBom } from '../io/boundedRead';
import { jsonSyntaxProblem } from '../io/jsonText';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { TestName } from '../../shared/rules';

export type ModelFormat = 'onnx' | 'tfjs-layers' | 'tfjs-graph';
/** `flat`: [batch, channels·height·width], the NCHW image flattened (a model that takes vectors). */
export type Layout = 'NCHW' | 'NHWC' | 'flat';
export type ResizeFit = 'fill' | 'contain' | 'cover';
export const RESIZE_KERNELS = ['nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3'] as const;
export type ResizeKernel = (typeof RESIZE_KERNELS)[number];

/**
 * How an image becomes one model's input, resolved (pair.ts `modelInputs`): that model's size, channels and
 * padding, the shared decoding options, and the model's scaling. Preprocessing works from this.
 */
export interface InputSpec {
  width: number;
  height: number;
  channels: 1 | 3;
  layout: Layout;
  /** Pixel 0..255 maps linearly onto [range[0], range[1]] (default [0, 1]) before mean/std. */
  range?: [number, number];
  mean?: number[];
  std?: number[];
  invert?: boolean;
  resize?: ResizeFit;
  resizeKernel?: ResizeKernel;
  /**
   * What enlarges an image that no axis of the model's input shrinks: libvips with `resizeKernel` (the default:
   * pairs without the field), or onnxruntime's bilinear Resize with half-pixel centres (image/onnxResize.ts;
   * new fits; needs `resizeKernel` "linear" and `resize` "fill"). Shrinking is libvips' either way.
   */
  enlargeWith?: 'libvips' | 'onnxruntime';
  /** Colour that transparent pixels are flattened onto and `contain` and `padding` pad with (before inversion). */
  background?: string;
  /**
   * Border of `background` pixels on each side: the image is resized to (width − 2·padding) × (height −
   * 2·padding) and then padded — LeNet's 28×28 digits in a 32×32 field. Default 0.
   */
  padding?: number;
}

/**
 * The manifest's `input` section: decoding shared by both models, and the defaults of each model's size,
 * channels, padding, layout and scaling. Size and channels may be left out when the model files declare them.
 */
export type SharedInputSpec = Omit<InputSpec, 'width' | 'height' | 'channels'> & Partial<Pick<InputSpec, 'width' | 'height' | 'channels'>>;

/**
 * One model's own image: each field defaults to the shared `input`'s, and (size, channels) to what the model
 * file declares. A classifier and a VAE of different sizes each get the image decoded once, resized to their own.
 */
export interface ImageGeometry {
  width?: number;
  height?: number;
  channels?: 1 | 3;
  padding?: number;
}

/** How one model's tensor is made from the 8-bit image: each field defaults to the shared `input`'s. */
export interface TensorScaling {
  layout?: Layout;
  range?: [number, number];
  mean?: number[];
  std?: number[];
}

export interface ClassifierSpec extends TensorScaling, ImageGeometry {
  path: string;
  format: ModelFormat;
  input?: string;
  output?: string;
  outputKind: 'logits' | 'probabilities';
  labels: string[];
  /** Inputs besides the image, fed this number on every run (fit's `--const NAME=VALUE`). */
  constants?: Record<string, number>;
}

export interface LikelihoodSpec {
  type: 'bernoulli' | 'continuous-bernoulli' | 'gaussian' | 'discretized-logistic';
  /** Standard deviation of the Gaussian decoder, in [0, 1] pixel units. */
  sigma?: number;
  /** discretized-logistic: a constant scale (in [0, 1] pixel units) when the decoder has no log-scale output. */
  scale?: number;
  /** discretized-logistic: grey levels per channel (default 256, 8-bit images). */
  levels?: number;
}

export interface SplitModelSpec {
  path: string;
  format: ModelFormat;
  input?: string;
  layout?: Layout;
}

export interface VaeSpec extends TensorScaling, ImageGeometry {
  /** One model: image → reconstruction, mu, logvar. */
  path?: string;
  format?: ModelFormat;
  input?: string;
  /** logScale: per-pixel log-scale output of a discretized-logistic decoder. */
  outputs?: { reconstruction: string; mu: string; logvar: string; logScale?: string };
  reconstructionKind: 'logits' | 'probabilities' | 'mean';
  likelihood: LikelihoodSpec;
  /** Split encoder (image → mu, logvar) and decoder (z → reconstruction) for K-sample estimates. */
  encoder?: SplitModelSpec & { outputs: { mu: string; logvar: string } };
  decoder?: SplitModelSpec & { output: string; logScaleOutput?: string };
  /** Posterior samples for the sampled ELBO and the importance-weighted bound (needs encoder+decoder). */
  samples?: number;
  seed?: number;
  /** Written by `ood-lens fit` when it trained this VAE (fit/vaeTraining.ts). */
  training?: VaeTrainingRecord;
}

export interface VaeTrainingRecord {
  /** The TensorFlow.js runtime that trained it. */
  engine: string;
  architecture: string;
  seed: number;
  epochs: number;
  plannedEpochs?: number;
  stoppedBy?: string;
  trainImages: number;
  heldOutImages: number;
  /** Mean negative ELBO per training image (nats), per epoch. */
  lossCurve: number[];
  /** Mean ELBO (nats) of the held-out fit images at z = μ. */
  heldOutElbo: number;
  heldOutBitsPerDim?: number;
  seconds: number;
  imagesPerSecond: number;
}

export interface PairManifest {
  $schema?: string;
  name: string;
  description?: string;
  input: SharedInputSpec;
  classifier: ClassifierSpec;
  /** Optional density model; without it the pair is classifier-only. */
  vae?: VaeSpec;
  /** Path of a calibration JSON written by `ood-lens calibrate`, relative to the manifest. */
  calibration?: string;
  /** The lossless compressor behind the complexity L(x) (default png; see complexity.ts). */
  complexity?: { compressor?: Compressor };
  /** The classifier's penultimate features, for the KNN and Mahalanobis detectors. */
  features?: FeaturesSpec;
  /** The detectors the verdict runs over (rule `pair`) and their shares of α; absent: the `all` rule's. */
  detectors?: DetectorSpec[];
  /** Written by `ood-lens fit`: the data and how it was split. */
  fit?: FitRecord;
}

export interface FitRecord {
  data: string;
  images: number;
  seed: number;
  parts: { fit: number; calibration: number; check: number };
  splitFile?: string;
  alpha?: number;
  heldOutFalseAlarmRate?: number;
  /** Classifier accuracy on the held-out check part (null: the data has no labels). */
  heldOutAccuracy?: number | null;
  /** The feeding check fit ran before writing (fit/feedCheck.ts). */
  check?: FitCheckRecord;
  /** The top-level names in the pair folder that fit wrote (the only ones a later `fit --force` replaces). */
  files?: string[];
  createdAt?: string;
  /** How fit chose the tests and their shares of α (fit/testChoice.ts). */
  testChoice?: TestChoiceRecord;
}

export interface TestChoiceRecord {
  method: string;
  probesPerKind: number;
  /** Set when no test passed and the planned shares were kept. */
  fallback?: string;
  /** Benign-shift probes of each kind (fit/benignProbes.ts), when the choice was weighed by them. */
  benignProbesPerKind?: number;
  tests: {
    test: TestName;
    /** AUROC of the test's score: calibration images against all probes. */
    auroc: number;
    aurocByProbe: Record<string, number>;
    /** Share of the probes caught at 1% false alarms, mean over the kinds of probe. */
    caughtAt1Percent: number;
    used: boolean;
    share: number;
    /** Share of the benign-shift probes flagged at 1% false alarms (a good test stays near 1%). */
    benignAlarms?: number;
    benignByKind?: Record<string, number>;
    /** Why its share is smaller than the far-OOD probes alone gave it (it flags benign-shift probes). */
    shareCut?: string;
    /** Why it is not used. */
    reason?: string;
  }[];
}

/** What fit's feeding check found (fit/feedCheck.ts); stored as `fit.check`. */
/** One feeding the fit check tried on the check images. */
export interface FitCheckTrial {
  /** The flags that give this feeding, e.g. `--range -1,1` or `--range 0,1 --mean 0.1307 --std 0.3081`. */
  flags: string;
  /** Top-1 accuracy on the labelled check images (null without labels). */
  accuracy: number | null;
  /** Share of the check images given the most frequent class. */
  topClassShare: number;
  /** Mean of the largest class probability. */
  meanConfidence: number;
}

export interface FitCheckRecord {
  /** Check images the classifier was run on (those that could be decoded). */
  images: number;
  /** Of them, with a label that names a class. */
  labelled: number;
  classes: number;
  /** Accuracy of the feeding the pair uses (null without labels). */
  accuracy: number | null;
  /** The accuracy below which fit refuses: twice chance (less for two or three classes). */
  floor: number;
  /** The feeding the pair uses first, then the alternatives. */
  trials: FitCheckTrial[];
  /** Each of a few images alone against inside one batch: the largest output difference, relative to the output's scale. */
  batchProbe: { images: number; maxDifference: number; independent: boolean };
  /** Why fit refused (or, with --force, would have): empty when the check passed. */
  problems: string[];
  /** The reason given with --force, when the pair was written over these problems. */
  forced?: string;
}


/**
 * Why a pair that fit wrote should not be trusted as it is, or null: written with `--force` over the feeding
 * check's findings, or a classifier that read fit's check images below the accuracy floor. Shown by `info`,
 * `score` (stderr) and the Inspect panel's header.
 */
export function pairTrustWarning(manifest: Pick<PairManifest, 'fit'>): string | null {
  const check = manifest.fit?.check;
  if (!check) return null;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const accuracy = check.accuracy !== null ? `; its classifier read ${pct(check.accuracy)} of fit's ${check.labelled} labelled check images` : '';
  if (check.forced !== undefined) return `this pair was written with --force ("${check.forced}") over fit's feeding check: ${check.problems.join(' | ') || 'no problem recorded'}${accuracy}. Its verdicts may rest on a misfed classifier`;
  if (check.accuracy !== null && check.accuracy < check.floor) return `this pair's classifier read only ${pct(check.accuracy)} of fit's labelled check images (floor ${pct(check.floor)}); its verdicts may rest on a misfed classifier`;
  return null;
}

/** The tensor scaling a model actually gets: its own fields, else the shared input's, else the defaults. */
export interface ResolvedScaling {
  layout: Layout;
  range: [number, number];
  mean?: number[];
  std?: number[];
}

export function modelScaling(input: SharedInputSpec, own: TensorScaling | undefined): ResolvedScaling {
  return {
    layout: own?.layout ?? input.layout,
    range: own?.range ?? input.range ?? [0, 1],
    mean: own?.mean ?? input.mean,
    std: own?.std ?? input.std,
  };
}

/** True when the scaling feeds pixels in [0, 1] unnormalised (then the VAE's feed is the likelihood's target). */
export function isUnitScaling(s: ResolvedScaling): boolean {
  return s.range[0] === 0 && s.range[1] === 1 && !s.mean && !s.std;
}

export interface FeaturesSpec {
  /**
   * The classifier output that holds the features. Default (ONNX): the input of the model's last Gemm or
   * MatMul, exposed as an extra output when the model is loaded.
   */
  output?: string;
  /** TensorFlow.js layers models: the layer whose output is the features. */
  layer?: string;
  /** The fitted feature detectors (features.json, written by fitting; see features/featureFit.ts). */
  fit?: string;
}

export interface DetectorSpec {
  /** elbo, complexity, confidence (MSP), energy, knn, mahalanobis or layers (earlier conv layers' Gaussians). */
  test: TestName;
  /** Share of α (the shares sum to at most 1); 0 = scored, calibrated and reported, but no vote in the verdict. */
  share: number;
  /** knn: which nearest neighbour's distance (default 1). */
  k?: number;
}

/** The pair's compressor for L(x), with the default filled in. */
export function pairCompressor(manifest: PairManifest): Compressor {
  return manifest.complexity?.compressor ?? 'png';
}

/**
 * The JSON Schema in schemas/ood-pair.schema.json is the one source of truth: ajv validates with it here, and
 * VS Code validates and completes ood-pair.json files with the same file (package.json jsonValidation).
 */
export const pairManifestSchema = pairSchemaJson as Record<string, unknown>;

/** The largest width and height of a model's input: the schema's cap on stated sizes, applied to declared ones too. */
export const MAX_INPUT_SIDE: number = Math.min(pairSchemaJson.definitions.width.maximum, pairSchemaJson.definitions.height.maximum);

/**
 * Why an input size a model declares (or a manifest or option states) is refused, or null: past
 * MAX_INPUT_SIDE one probe tensor alone would take gigabytes (40000×40000 floats are 6.4 GB) and scoring
 * would hang or crash. Checked before any tensor is made.
 */
export function oversizeInput(width: number, height: number): string | null {
  if (width <= MAX_INPUT_SIDE && height <= MAX_INPUT_SIDE) return null;
  return `${width}×${height} is larger than the ${MAX_INPUT_SIDE}×${MAX_INPUT_SIDE} OOD Lens feeds a model (one image alone would be ${((width * height * 4) / 1e9).toPrecision(2)} GB of floats per channel); export the model with the input size it was trained on, at most ${MAX_INPUT_SIDE}×${MAX_INPUT_SIDE}`;
}

export class ManifestError extends Error {
  constructor(readonly manifestPath: string, readonly problems: string[]) {
    super(`${manifestPath}: invalid pair manifest:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ManifestError';
  }
}

// The schema is compiled ahead of time (scripts/manifestValidator.mjs, run by the build; a test keeps it in step
// with the schema): requiring ajv and compiling the schema took ~130 ms of every process's start-up.
const validate = validateManifestSchema as ((data: unknown) => data is PairManifest) & { errors?: ErrorObject[] | null };

function describe(error: ErrorObject): string {
  const field = error.instancePath ? error.instancePath.slice(1).replace(/\//g, '.') : '(top level)';
  switch (error.keyword) {
    case 'required':
      return `${field === '(top level)' ? '' : field + '.'}${(error.params as { missingProperty: string }).missingProperty}: is required`;
    case 'additionalProperties':
      return `${field === '(top level)' ? '' : field + '.'}${(error.params as { additionalProperty: string }).additionalProperty}: is not a known field`;
    case 'enum':
      return `${field}: must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return `${field}: ${error.message ?? 'is invalid'}`;
  }
}

/** Checks that go beyond the schema: relations between fields. */
function semanticProblems(m: PairManifest): string[] {
  const problems: string[] = [];
  // Channels and sizes the manifest states (a model's own, else the shared input's); those it leaves to the
  // model files are checked when the pair loads (pair.ts), once they are read.
  const scalingProblems = (field: string, s: TensorScaling | undefined, c: number | undefined, cField: string) => {
    if (c !== undefined && s?.mean && s.mean.length !== c) problems.push(`${field}.mean: needs ${c} value(s), one per channel (${cField} is ${c})`);
    if (c !== undefined && s?.std && s.std.length !== c) problems.push(`${field}.std: needs ${c} value(s), one per channel (${cField} is ${c})`);
    if (s?.range && !(s.range[0] < s.range[1])) problems.push(`${field}.range: the first value must be below the second`);
  };
  const geometryProblems = (model: 'classifier' | 'vae', own: ImageGeometry) => {
    const c = own.channels ?? m.input.channels;
    const cField = own.channels !== undefined ? `${model}.channels` : 'input.channels';
    // A model's own scaling against its channels; the shared mean/std against the channels it is inherited with.
    scalingProblems(model, own as TensorScaling, c, cField);
    if (own.channels !== undefined && own.channels !== m.input.channels) {
      const inherited = (key: 'mean' | 'std') => (own as TensorScaling)[key] === undefined && m.input[key] !== undefined && m.input[key]!.length !== own.channels;
      for (const key of ['mean', 'std'] as const) if (inherited(key)) problems.push(`${model}.${key}: the ${model} takes ${own.channels} channel(s) but inherits input.${key} with ${m.input[key]!.length} value(s); give ${model}.${key} with ${own.channels}`);
    }
    const width = own.width ?? m.input.width;
    const height = own.height ?? m.input.height;
    const padding = own.padding ?? m.input.padding;
    const pField = own.padding !== undefined ? `${model}.padding` : 'input.padding';
    if (padding && width !== undefined && height !== undefined && 2 * padding >= Math.min(width, height)) problems.push(`${pField}: ${padding} on each side leaves no room for the image in the ${model}'s ${width}×${height}`);
  };
  scalingProblems('input', m.input, m.input.channels, 'input.channels');
  geometryProblems('classifier', m.classifier);
  if (!m.vae) return [...problems, ...detectorProblems(m)];
  geometryProblems('vae', m.vae);
  const v = m.vae;
  const single = v.path !== undefined;
  const split = v.encoder !== undefined || v.decoder !== undefined;
  if (!single && !split) problems.push('vae: needs either path (one model) or encoder and decoder');
  if (single && !v.format) problems.push('vae.format: is required with vae.path');
  if (single && !v.outputs) problems.push('vae.outputs: is required with vae.path (names of reconstruction, mu and logvar)');
  if (split && !(v.encoder && v.decoder)) problems.push(`vae.${v.encoder ? 'decoder' : 'encoder'}: is required when the other half of a split VAE is given`);
  if (v.samples !== undefined && !(v.encoder && v.decoder)) problems.push('vae.samples: needs vae.encoder and vae.decoder (posterior samples run the decoder on each sample)');
  if (v.likelihood.type === 'gaussian' && v.likelihood.sigma === undefined) problems.push('vae.likelihood.sigma: is required for a gaussian likelihood');
  const meanKind = v.likelihood.type === 'gaussian' || v.likelihood.type === 'discretized-logistic';
  if (!meanKind && v.reconstructionKind === 'mean') problems.push(`vae.reconstructionKind: "mean" only fits a gaussian or discretized-logistic likelihood, not ${v.likelihood.type}`);
  if (v.likelihood.type === 'discretized-logistic') {
    const hasScale = v.likelihood.scale !== undefined;
    if (single && !hasScale && !v.outputs?.logScale) problems.push('vae.outputs.logScale: is required for a discretized-logistic likelihood (or give a constant vae.likelihood.scale)');
    if (v.decoder && !hasScale && !v.decoder.logScaleOutput) problems.push('vae.decoder.logScaleOutput: is required for a discretized-logistic likelihood (or give a constant vae.likelihood.scale)');
  } else {
    if (v.outputs?.logScale) problems.push(`vae.outputs.logScale: only a discretized-logistic likelihood uses a log-scale output, not ${v.likelihood.type}`);
    if (v.decoder?.logScaleOutput) problems.push(`vae.decoder.logScaleOutput: only a discretized-logistic likelihood uses a log-scale output, not ${v.likelihood.type}`);
  }
  if (v.likelihood.type === 'gaussian' && v.reconstructionKind === 'logits') problems.push('vae.reconstructionKind: a gaussian likelihood needs "mean" or "probabilities", not "logits"');
  // The encoder and the decoder's reconstruction share the VAE's layout (the likelihood compares the
  // reconstruction with the input element by element): a different value would be silently wrong.
  const vaeLayout = v.layout ?? m.input.layout;
  for (const part of ['encoder', 'decoder'] as const) {
    const own = v[part]?.layout;
    if (own && own !== vaeLayout) problems.push(`vae.${part}.layout: is ${own} but the VAE's layout is ${vaeLayout}; the encoder and decoder share the VAE's layout, so set vae.layout to "${own}" (and remove vae.${part}.layout)`);
  }
  const distinct = (field: string, names: Record<string, string | undefined>) => {
    const seen = new Map<string, string>();
    for (const [key, name] of Object.entries(names)) {
      if (name === undefined) continue;
      const other = seen.get(name);
      if (other) problems.push(`${field}.${key}: "${name}" is also ${field}.${other}; each output needs its own tensor (for TF.js sub-model outputs use the names OOD Lens lists, e.g. "encoder/mu")`);
      else seen.set(name, key);
    }
  };
  if (v.outputs) distinct('vae.outputs', { ...v.outputs });
  if (v.encoder) distinct('vae.encoder.outputs', { ...v.encoder.outputs });
  problems.push(...detectorProblems(m));
  return problems;
}

/** The detector list: each test once, shares summing to at most 1, feature tests with a fit to use. */
function detectorProblems(m: PairManifest): string[] {
  const problems: string[] = [];
  const list = m.detectors ?? [];
  const seen = new Set<TestName>();
  list.forEach((d, i) => {
    if (seen.has(d.test)) problems.push(`detectors[${i}].test: "${d.test}" is listed twice`);
    seen.add(d.test);
    if (d.k !== undefined && d.test !== 'knn') problems.push(`detectors[${i}].k: only the knn detector takes k`);
    if ((d.test === 'knn' || d.test === 'mahalanobis' || d.test === 'layers') && !m.features?.fit) problems.push(`detectors[${i}]: the ${d.test} detector needs fitted features (features.fit); fit them first (ood-lens fit)`);
  });
  const total = list.reduce((a, d) => a + d.share, 0);
  if (total > 1 + 1e-9) problems.push(`detectors: the shares of α sum to ${+total.toFixed(6)}; they must sum to at most 1 so that false alarms stay at most α`);
  if (list.length && total <= 0) problems.push('detectors: every share is 0, so no test could ever flag an image; give at least one a share');
  if (m.features?.output && m.features.layer) problems.push('features: give output (a model output) or layer (a TF.js layer), not both');
  return problems;
}

/** The pair's own shares of α by test (rule `pair`), or undefined when the manifest lists no detectors. */
export function pairShares(m: PairManifest): Partial<Record<TestName, number>> | undefined {
  if (!m.detectors?.length) return undefined;
  return Object.fromEntries(m.detectors.map((d) => [d.test, d.share]));
}

/** A manifest with every model path made absolute and the folder it came from. */
export interface ResolvedPair {
  manifest: PairManifest;
  manifestPath: string;
  dir: string;
}

export function parsePairManifest(text: string, manifestPath: string): PairManifest {
  let data: unknown;
  try {
    // A byte-order mark (Windows editors) is accepted, as in dataset manifests.
    text = stripBom(text);
    data = JSON.parse(text);
  } catch (err) {
    throw new ManifestError(manifestPath, [jsonSyntaxProblem(err, text)]);
  }
  if (!validate(data)) throw new ManifestError(manifestPath, (validate.errors ?? []).map(describe));
  const problems = semanticProblems(data);
  if (problems.length) throw new ManifestError(manifestPath, problems);
  return data;
}

/** `location` is a pair folder (holding ood-pair.json) or a manifest file. */
export function resolveManifestPath(location: string): string {
  const abs = resolve(location);
  if (!existsSync(abs)) throw new ManifestError(abs, ['no such file or folder']);
  return statSync(abs).isDirectory() ? join(abs, 'ood-pair.json') : abs;
}

export interface LoadManifestOptions {
  /**
   * `calibrate` and `fit` create the calibration file the manifest names: its absence is then no error.
   * Everywhere else a missing calibration file is reported with how to create it.
   */
  calibrationMayBeMissing?: boolean;
}

export function loadPairManifest(location: string, options: LoadManifestOptions = {}): ResolvedPair {
  const manifestPath = resolveManifestPath(location);
  let text: string;
  try {
    text = readBoundedTextSync(manifestPath, { maxBytes: LIMITS.manifestBytes, what: 'pair manifest' });
  } catch (err) {
    throw new ManifestError(manifestPath, [`cannot read the manifest: ${(err as { reason?: string }).reason ?? (err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  const manifest = parsePairManifest(text, manifestPath);
  const dir = dirname(manifestPath);
  const missing: string[] = [];
  const check = (field: string, p?: string) => {
    if (p === undefined) return;
    const full = confinedPath(dir, p);
    if (full === null) {
      const link = !p.includes('\0') ? linkedOutside(dir, resolve(dir, p)) : null;
      const how = link && !isAbsolute(p) && !relative(dir, resolve(dir, p)).startsWith('..') ? ` (a symbolic link in it leads to ${link})` : '';
      missing.push(`${field}: "${p}" points outside the pair folder${how}; give a path relative to the folder holding ood-pair.json, inside it`);
      return;
    }
    if (existsSync(full)) return;
    const fix = field === 'calibration' ? ` (create it with \`ood-lens calibrate --pair ${dir} <held-out in-distribution images>\`, or remove the field to run uncalibrated)` : '';
    missing.push(`${field}: file not found: ${full}${fix}`);
  };
  check('classifier.path', manifest.classifier.path);
  check('vae.path', manifest.vae?.path);
  check('vae.encoder.path', manifest.vae?.encoder?.path);
  check('vae.decoder.path', manifest.vae?.decoder?.path);
  if (!options.calibrationMayBeMissing) check('calibration', manifest.calibration);
  check('features.fit', manifest.features?.fit);
  if (missing.length) throw new ManifestError(manifestPath, missing);
  return { manifest, manifestPath, dir };
}

/** A manifest path inside the pair folder (loadPairManifest has already refused the others, naming the field). */
export function resolveIn(pair: ResolvedPair, p: string): string {
  const full = confinedPath(pair.dir, p);
  if (full === null) throw new ManifestError(pair.manifestPath, [`"${p}" points outside the pair folder`]);
  return full;
}
