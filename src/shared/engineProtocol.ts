/**
 * Messages between the extension host and the engine worker (worker_threads). Typed on both sides:
 * src/providers/engineHost.ts (client) and src/worker/engineWorker.ts (server). No `vscode` import here.
 */
import type { ImageResult, PairInfo } from '../inference/engine';

export interface EngineConfig {
  /** Pair folder or manifest path; undefined = built-in MNIST pair. */
  pair?: string;
  provider: 'auto' | 'cpu' | 'cuda';
  alpha: number;
  rule: 'elbo' | 'complexity' | 'both';
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

export type WorkerRequest =
  | { id: number; kind: 'configure'; config: EngineConfig }
  | { id: number; kind: 'info' }
  | { id: number; kind: 'inspect'; path: string }
  /** Streams `progress` events with batches of results, then resolves with a summary. */
  | { id: number; kind: 'scoreMany'; paths: string[] }
  | { id: number; kind: 'cancel'; target: number };

export type WorkerResponse =
  | { id: number; kind: 'ok'; value: unknown }
  | { id: number; kind: 'error'; message: string; name?: string }
  | { id: number; kind: 'progress'; done: number; total: number; results: ImageResult[] };

export interface ScoreManySummary {
  done: number;
  total: number;
  cancelled: boolean;
  seconds: number;
}

export type { ImageResult, PairInfo };
