/**
 * The pair manifest (`ood-pair.json`): which classifier and which VAE, how images become their input,
 * and where the calibration scores live. Validated with ajv; every error names the field.
 */
import type { Compressor } from './complexity';
import Ajv, { type ErrorObject, type JSONSchemaType } from 'ajv';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { TEST_NAMES, type TestName } from './rules';

export type ModelFormat = 'onnx' | 'tfjs-layers' | 'tfjs-graph';
export type Layout = 'NCHW' | 'NHWC';
export type ResizeFit = 'fill' | 'contain' | 'cover';
export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';

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
  /** Colour that transparent pixels are flattened onto and `contain` and `padding` pad with (before inversion). */
  background?: string;
  /**
   * Border of `background` pixels on each side: the image is resized to (width − 2·padding) × (height −
   * 2·padding) and then padded — LeNet's 28×28 digits in a 32×32 field. Default 0.
   */
  padding?: number;
}

export interface ClassifierSpec {
  path: string;
  format: ModelFormat;
  input?: string;
  output?: string;
  layout?: Layout;
  outputKind: 'logits' | 'probabilities';
  labels: string[];
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

export interface VaeSpec {
  /** One model: image → reconstruction, mu, logvar. */
  path?: string;
  format?: ModelFormat;
  input?: string;
  layout?: Layout;
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
}

export interface PairManifest {
  $schema?: string;
  name: string;
  description?: string;
  input: InputSpec;
  classifier: ClassifierSpec;
  vae: VaeSpec;
  /** Path of a calibration JSON written by `ood-lens calibrate`, relative to the manifest. */
  calibration?: string;
  /** The lossless compressor behind the complexity L(x) (default png; see complexity.ts). */
  complexity?: { compressor?: Compressor };
  /** The classifier's penultimate features, for the KNN and Mahalanobis detectors. */
  features?: FeaturesSpec;
  /** The detectors the verdict runs over (rule `pair`) and their shares of α; absent: the `all` rule's. */
  detectors?: DetectorSpec[];
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
  /** elbo, complexity, confidence (MSP), energy, knn or mahalanobis. */
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

const formatSchema = { type: 'string', enum: ['onnx', 'tfjs-layers', 'tfjs-graph'] } as const;
const layoutSchema = { type: 'string', enum: ['NCHW', 'NHWC'], nullable: true } as const;
const nonEmpty = { type: 'string', minLength: 1 } as const;
const optionalName = { type: 'string', minLength: 1, nullable: true } as const;

export const pairManifestSchema: JSONSchemaType<PairManifest> = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'input', 'classifier', 'vae'],
  properties: {
    $schema: { type: 'string', nullable: true },
    name: nonEmpty,
    description: { type: 'string', nullable: true },
    input: {
      type: 'object',
      additionalProperties: false,
      required: ['width', 'height', 'channels', 'layout'],
      properties: {
        width: { type: 'integer', minimum: 1, maximum: 4096 },
        height: { type: 'integer', minimum: 1, maximum: 4096 },
        channels: { type: 'integer', enum: [1, 3] },
        layout: { type: 'string', enum: ['NCHW', 'NHWC'] },
        range: { type: 'array', items: [{ type: 'number' }, { type: 'number' }], minItems: 2, maxItems: 2, nullable: true } as never,
        mean: { type: 'array', items: { type: 'number' }, minItems: 1, maxItems: 3, nullable: true },
        std: { type: 'array', items: { type: 'number', exclusiveMinimum: 0 }, minItems: 1, maxItems: 3, nullable: true },
        invert: { type: 'boolean', nullable: true },
        resize: { type: 'string', enum: ['fill', 'contain', 'cover'], nullable: true },
        resizeKernel: { type: 'string', enum: ['nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3'], nullable: true },
        background: { type: 'string', pattern: '^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$', nullable: true },
        padding: { type: 'integer', minimum: 0, maximum: 2047, nullable: true },
      },
    },
    classifier: {
      type: 'object',
      additionalProperties: false,
      required: ['path', 'format', 'outputKind', 'labels'],
      properties: {
        path: nonEmpty,
        format: formatSchema,
        input: optionalName,
        output: optionalName,
        layout: layoutSchema,
        outputKind: { type: 'string', enum: ['logits', 'probabilities'] },
        labels: { type: 'array', items: { type: 'string' }, minItems: 2 },
      },
    },
    vae: {
      type: 'object',
      additionalProperties: false,
      required: ['reconstructionKind', 'likelihood'],
      properties: {
        path: optionalName,
        format: { ...formatSchema, nullable: true },
        input: optionalName,
        layout: layoutSchema,
        outputs: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          required: ['reconstruction', 'mu', 'logvar'],
          properties: { reconstruction: nonEmpty, mu: nonEmpty, logvar: nonEmpty, logScale: optionalName },
        },
        reconstructionKind: { type: 'string', enum: ['logits', 'probabilities', 'mean'] },
        likelihood: {
          type: 'object',
          additionalProperties: false,
          required: ['type'],
          properties: {
            type: { type: 'string', enum: ['bernoulli', 'continuous-bernoulli', 'gaussian', 'discretized-logistic'] },
            sigma: { type: 'number', exclusiveMinimum: 0, nullable: true },
            scale: { type: 'number', exclusiveMinimum: 0, nullable: true },
            levels: { type: 'integer', minimum: 2, maximum: 65536, nullable: true },
          },
        },
        encoder: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          required: ['path', 'format', 'outputs'],
          properties: {
            path: nonEmpty,
            format: formatSchema,
            input: optionalName,
            layout: layoutSchema,
            outputs: {
              type: 'object',
              additionalProperties: false,
              required: ['mu', 'logvar'],
              properties: { mu: nonEmpty, logvar: nonEmpty },
            },
          },
        },
        decoder: {
          type: 'object',
          nullable: true,
          additionalProperties: false,
          required: ['path', 'format', 'output'],
          properties: { path: nonEmpty, format: formatSchema, input: optionalName, layout: layoutSchema, output: nonEmpty, logScaleOutput: optionalName },
        },
        samples: { type: 'integer', minimum: 1, maximum: 1024, nullable: true },
        seed: { type: 'integer', nullable: true },
      },
    },
    calibration: { type: 'string', minLength: 1, nullable: true },
    complexity: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      properties: { compressor: { type: 'string', enum: ['png', 'webp-lossless'], nullable: true } },
    },
    features: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      properties: { output: optionalName, layer: optionalName, fit: optionalName },
    },
    detectors: {
      type: 'array',
      nullable: true,
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['test', 'share'],
        properties: {
          test: { type: 'string', enum: [...TEST_NAMES] },
          share: { type: 'number', minimum: 0, maximum: 1 },
          k: { type: 'integer', minimum: 1, maximum: 1000, nullable: true },
        },
      },
    },
  },
} as unknown as JSONSchemaType<PairManifest>;

export class ManifestError extends Error {
  constructor(readonly manifestPath: string, readonly problems: string[]) {
    super(`${manifestPath}: invalid pair manifest:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ManifestError';
  }
}

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(pairManifestSchema);

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
  const c = m.input.channels;
  if (m.input.mean && m.input.mean.length !== c) problems.push(`input.mean: needs ${c} value(s), one per channel`);
  if (m.input.std && m.input.std.length !== c) problems.push(`input.std: needs ${c} value(s), one per channel`);
  if (m.input.range && !(m.input.range[0] < m.input.range[1])) problems.push('input.range: the first value must be below the second');
  if (m.input.padding && 2 * m.input.padding >= Math.min(m.input.width, m.input.height)) problems.push(`input.padding: ${m.input.padding} on each side leaves no room for the image in ${m.input.width}×${m.input.height}`);
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
    if ((d.test === 'knn' || d.test === 'mahalanobis') && !m.features?.fit) problems.push(`detectors[${i}]: the ${d.test} detector needs fitted features (features.fit); fit them first (ood-lens fit)`);
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
    data = JSON.parse(text);
  } catch (err) {
    throw new ManifestError(manifestPath, [`not valid JSON: ${(err as Error).message}`]);
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

export function loadPairManifest(location: string): ResolvedPair {
  const manifestPath = resolveManifestPath(location);
  let text: string;
  try {
    text = readFileSync(manifestPath, 'utf8');
  } catch (err) {
    throw new ManifestError(manifestPath, [`cannot read the manifest: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  const manifest = parsePairManifest(text, manifestPath);
  const dir = dirname(manifestPath);
  const missing: string[] = [];
  const check = (field: string, p?: string) => {
    if (p === undefined) return;
    const full = isAbsolute(p) ? p : join(dir, p);
    if (!existsSync(full)) missing.push(`${field}: file not found: ${full}`);
  };
  check('classifier.path', manifest.classifier.path);
  check('vae.path', manifest.vae.path);
  check('vae.encoder.path', manifest.vae.encoder?.path);
  check('vae.decoder.path', manifest.vae.decoder?.path);
  check('calibration', manifest.calibration);
  check('features.fit', manifest.features?.fit);
  if (missing.length) throw new ManifestError(manifestPath, missing);
  return { manifest, manifestPath, dir };
}

export function resolveIn(pair: ResolvedPair, p: string): string {
  return isAbsolute(p) ? p : join(pair.dir, p);
}
