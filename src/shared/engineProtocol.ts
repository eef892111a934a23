/**
 * Messages between the extension host and the engine worker (worker_threads). Typed on both sides:
 * src/providers/engineHost.ts (client) and src/worker/engineWorker.ts (server). No `vscode` import here.
 */
import type { ImageResult, PairInfo } from '../inference/engine';
import type { FitOptions, FitProgress } from '../inference/fit/fit';
import type { InspectModelOptions, ModelFacts } from '../inference/fit/modelInspection';
import type { VerdictRule } from './rules';
import type { FitReport } from './fitReport';

export interface EngineConfig {
  /** Pair folder or manifest path; undefined = built-in MNIST pair. */
  pair?: string;
  provider: 'auto' | 'cpu' | 'cuda';
  alpha: number;
  rule: VerdictRule;
  batchSize: number;
}

/** A result with its images encoded as PNG data for the webview. */
export interface InspectResult extends Omit<ImageResult, 'details'> {
  /** PNG (base64) of the model input, the reconstruction and the per-pixel |error| heatmap, at model size. */
  modelInputPng?: string;
  reconstructionPng?: string;
  errorHeatmapPng?: string;
  probabilities?: number[];
}

/** The pair's held-out ELBO distribution, pre-binned for charts (the image's ELBO is placed on it). */
export interface CalibrationHistogram {
  /** Left edge of the first bin and right edge of the last. */
  min: number;
  max: number;
  binWidth: number;
  counts: number[];
  /** Number of calibration values binned. */
  count: number;
  /** 1st, 50th and 99th percentiles of the calibration values. */
  p01: number;
  p50: number;
  p99: number;
}

/** PairInfo as the worker reports it: the engine's info plus what the UI and the score cache need. */
export interface EnginePairInfo extends PairInfo {
  /** Histogram of the calibration ELBOs (null when the pair is uncalibrated). */
  calibrationElbo: CalibrationHistogram | null;
  /** Absolute paths of the manifest, model files and calibration file (for change detection and cache keys). */
  files: string[];
  /** The manifest's description, when it has one. */
  description: string | null;
}

export type WorkerRequest =
  | { id: number; kind: 'configure'; config: EngineConfig }
  | { id: number; kind: 'info' }
  | { id: number; kind: 'inspect'; path: string }
  /** Streams `progress` events with batches of results, then resolves with a summary. */
  | { id: number; kind: 'scoreMany'; paths: string[] }
  | { id: number; kind: 'cancel'; target: number }
  /** What a classifier file declares (tensors, image input, class count); answers ModelFacts. */
  | { id: number; kind: 'inspectModel'; path: string; options?: InspectModelOptions }
  /** Creates a pair (`fitPair`): streams `fitProgress` events, answers a FitReport; `cancel` aborts it (nothing is written). */
  | { id: number; kind: 'fit'; options: FitRequest }
  /**
   * Stops the scans and releases the pair (its scoring shards end their own threads), then answers `ok`; the
   * client ends the worker after that. A thread ended from outside while inside onnxruntime's native code
   * takes the whole process (the extension host) with it.
   */
  | { id: number; kind: 'shutdown' };

export type WorkerResponse =
  | { id: number; kind: 'ok'; value: unknown }
  | { id: number; kind: 'error'; message: string; name?: string }
  | { id: number; kind: 'progress'; done: number; total: number; results: ImageResult[] }
  /** A fit's progress (phase, done of total), or a line of what it read and decided. */
  | { id: number; kind: 'fitProgress'; event: FitEvent }
  /** Unsolicited diagnostics from the worker (id 0), shown in the log channel. */
  | { id: 0; kind: 'log'; level: 'trace' | 'info' | 'warn' | 'error'; message: string };

export interface ScoreManySummary {
  done: number;
  total: number;
  cancelled: boolean;
  seconds: number;
}

/** fitPair's options as they cross the thread boundary: plain data, no callbacks or signal. */
export type FitRequest = Omit<FitOptions, 'signal' | 'onDecision' | 'onProgress' | 'onNotice'>;

export type FitEvent = { type: 'progress'; progress: FitProgress } | { type: 'decision'; line: string } | { type: 'notice'; message: string };

export type { FitReport, ImageResult, ModelFacts, PairInfo };
