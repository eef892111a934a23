/**
 * The engine's public data types — its options, per-image results and pair summary — in a module of their
 * own, so that the worker protocol, the CLI and the webviews can use them without importing the engine.
 */
import type { ExecutionProviderSetting } from './backends/types';
import type { Calibration, PValues, TestName, Verdict, VerdictRule } from './pair/calibration';
import type { AlphaShares } from '../shared/rules';
import type { ImageSource, ModelImage } from './image/preprocess';

export interface EngineOptions {
  /** Pair folder or manifest; default: the built-in MNIST pair. */
  pair?: string;
  provider?: ExecutionProviderSetting;
  alpha?: number;
  rule?: VerdictRule;
  /** Images a model run; unset or 0: chosen by the models' input size (engine.ts `defaultBatchSize`). */
  batchSize?: number;
  /** onnxruntime intra-op threads per model (0 = runtime default). */
  threads?: number;
  /** onnxruntime threads spin while idle (default: not while preprocessing workers need the cores). */
  spinning?: boolean;
  /**
   * How scoreAll uses the cores:
   *  - `sharded` (default for ONNX pairs on the CPU with 2+ cores): one scoring shard per core (up to 4),
   *    each a worker thread with its own single-threaded copy of the models that scores whole batches;
   *    started by the first input of more than 16 batches (smaller ones are scored here, without the shards'
   *    start-up), then used for every input.
   *  - `overlapped` (default otherwise: CUDA, TensorFlow.js): the models run on this thread with every core,
   *    while preprocessing workers prepare the next batch;
   *  - `phased`: as overlapped, but the workers prepare only while the models are not running.
   * BENCHMARKS.md measures all three.
   */
  pipeline?: Pipeline;
  /** Scoring shards for the `sharded` pipeline (default: one per core, up to 4). */
  shards?: number;
  maxInputPixels?: number;
  /** Largest file read, in bytes (a guard before decoding). */
  maxFileBytes?: number;
  /** Use this calibration instead of the pair's own (used by `calibrate` and `eval`). */
  calibration?: Calibration;
  /** Expose the classifier's penultimate features even when the pair does not use them yet (to fit detectors). */
  features?: boolean;
  /**
   * Release this thread's models while the scoring shards score, and load them again only if something is
   * then scored here (a shard failed, scoreOne, …). For one-shot runs (the CLI's `score`): measured on the
   * built-in pair, 100,000 PNGs, peak RSS 435 → 387 MB. Not for callers that score on this thread while a
   * sharded run goes on (the extension's worker), which would wait for the reload.
   */
  releaseModelsWhileSharded?: boolean;
  /**
   * About how many inputs the caller is going to score (a cheap count, say a folder's entries). More than the
   * shards are started for (16 batches): the scoring shards start while this thread loads the pair, not after.
   * An overestimate costs the shards' start-up for nothing; results never depend on it.
   */
  expectedInputs?: number;
  /** onnxruntime sessions without memory patterns (LoadOptions.lowMemory); the scoring shards ask for it. */
  lowMemorySessions?: boolean;
  /** Skip the complexity score (it costs one PNG encode per image). */
  complexity?: boolean;
  /**
   * Worker threads that read, decode and resize folders while the models run (onnxruntime-node runs
   * inference synchronously on this thread). Default one per core, up to 4, on machines with 2+ cores;
   * 0 = all in-process.
   */
  preprocessWorkers?: number;
  /**
   * Told (once per distinct message) when scoring carries on in a slower way than asked: the scoring shards
   * could not start, or a shard failed a batch that was then scored here. Results are unaffected.
   */
  onNotice?: (message: string) => void;
}

export interface ScoreDetails {
  /** The 8-bit image the classifier saw (after resize/inversion), H×W×C; the VAE's too unless `vaeInput` is given. */
  modelInput: ModelImage;
  /** The 8-bit image the VAE saw, when its size or channels differ from the classifier's. */
  vaeInput?: ModelImage;
  /** The decoder's mean image, 8-bit, the shape of the VAE's input (`vaeInput ?? modelInput`); null for a classifier-only pair. */
  reconstruction: Uint8Array | null;
  probabilities: number[];
}

export interface ImageResult {
  path: string;
  prediction: number | null;
  label: string | null;
  msp: number | null;
  entropy: number | null;
  energy: number | null;
  elbo: number | null;
  reconstructionLogLik: number | null;
  kl: number | null;
  elboBitsPerDim: number | null;
  /** Importance-weighted bound on log p(x) (nats) with K posterior samples; split VAEs only. */
  logPxBound: number | null;
  complexityBits: number | null;
  complexityScore: number | null;
  /** k-th nearest-neighbour distance of the L2-normalised penultimate features (pairs with a KNN detector). */
  knnDistance?: number | null;
  /** Smallest class-conditional Mahalanobis distance² of the penultimate features (pairs with that detector). */
  mahalanobis?: number | null;
  /** Earlier-layer Gaussian distance (pairs with that detector): the layers' standardised Mahalanobis distances², averaged. */
  layerDistance?: number | null;
  /** Fisher's statistic over the tests fit chose (pairs with a `fisher` test): −Σ ln p against its reference half. */
  fisherScore?: number | null;
  pValue: number | null;
  pValues: PValues;
  firedBy: TestName[];
  verdict: Verdict;
  error: string | null;
  details?: ScoreDetails;
}

export interface PairInfo {
  name: string;
  manifestPath: string;
  backend: string;
  provider: string;
  calibrated: boolean;
  calibrationCount: number;
  calibrationSource: string | null;
  labels: string[];
  /** The classifier's input size (and the VAE's, unless `vaeInput` gives its own). */
  input: { width: number; height: number; channels: number };
  /** The VAE's input, when its size or channels differ from the classifier's. */
  vaeInput?: { width: number; height: number; channels: number };
  alpha: number;
  rule: VerdictRule;
  /** Each test's share of α under the rule (the pair's detector list for `pair`). */
  shares?: AlphaShares;
  /** One line on the VAE `fit` trained for this pair (epochs, time, held-out ELBO), when it did. */
  vaeTraining?: string;
  /** How `fit` chose the tests on synthetic probes, one line per test (why a test is not used), when it did. */
  testChoice?: string[];
  /** Tests `fit` chose not to use, with the reason. */
  notUsed?: Partial<Record<TestName, string>>;
  /** Tests whose share `fit` cut because they flag benign-shift probes, with the reason. */
  shareCut?: Partial<Record<TestName, string>>;
  /**
   * What fit's feeding check found when it wrote this pair (absent for pairs made by hand): the classifier's
   * accuracy on fit's check images, the `--force` reason, and a warning when the pair should not be trusted.
   */
  fitCheck?: { accuracy: number | null; floor: number; forced: string | null; warning: string | null };
}

/** `error`: the input could not even be listed or parsed (a folder that cannot be read, an IDX archive that is truncated); it becomes that path's error record. */
/**
 * `fsPath`: the file's name as bytes, for a name that is not valid UTF-8 (it is read by these bytes; `path`
 * then shows it with each invalid byte as \xNN).
 */
export type ScoreInput = { path: string; fsPath?: Uint8Array; source?: ImageSource; error?: string };

/**
 * Inputs that arrive a chunk at a time (a folder listing, a manifest's rows): `scoreAll` cuts its batches from
 * each chunk without an await per input.
 */
export interface ScoreInputChunks {
  chunks: AsyncIterable<ScoreInput[]>;
}

/** What `scoreAll` takes: a list, a stream of inputs, or a stream of chunks of them. */
export type ScoreInputs = Iterable<ScoreInput> | AsyncIterable<ScoreInput> | ScoreInputChunks;

export type Pipeline = 'sharded' | 'overlapped' | 'phased';

/** Milliseconds spent per stage since the engine was created (stages overlap in time when pipelined). */
export interface StageTimings {
  read: number;
  preprocess: number;
  classifier: number;
  vae: number;
  complexity: number;
  scoring: number;
}

/** The result for an image that could not be scored; `error` says why. */
export function errorResult(path: string, message: string): ImageResult {
  return {
    path,
    prediction: null,
    label: null,
    msp: null,
    entropy: null,
    energy: null,
    elbo: null,
    reconstructionLogLik: null,
    kl: null,
    elboBitsPerDim: null,
    logPxBound: null,
    complexityBits: null,
    complexityScore: null,
    pValue: null,
    pValues: { elbo: null, complexity: null, confidence: null },
    firedBy: [],
    verdict: 'error',
    error: message,
  };
}
