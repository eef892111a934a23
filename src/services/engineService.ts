/**
 * What the VS Code side needs from the engine. Implemented by EngineHost (engineHost.ts), which runs
 * the engine in a worker thread so that inference never blocks the extension host's main thread.
 */
import type * as vscode from 'vscode';
import type { EngineConfig, EnginePairInfo, FitEvent, FitReport, FitRequest, ImageResult, InspectResult, ModelFacts, ScoreManySummary } from '../shared/engineProtocol';
import type { Layout } from '../inference/pair/manifest';

export interface ScoreProgress {
  done: number;
  total: number;
  /** Results finished since the previous progress event, in input order. */
  results: ImageResult[];
}

export interface EngineService extends vscode.Disposable {
  /** Fires after the pair or settings changed and the worker reloaded (or failed to). */
  readonly onDidChangeEngine: vscode.Event<EnginePairInfo | Error>;
  /** The configuration the worker runs with now. */
  readonly config: EngineConfig;
  /** The active pair (with its calibration histogram); rejects with the load error when the pair is broken. */
  info(): Promise<EnginePairInfo>;
  /** One image with its model input, reconstruction and error heatmap as PNGs. */
  inspect(path: string): Promise<InspectResult>;
  /** Many images in batches; cancellation stops promptly and resolves with what was scored. */
  scoreMany(paths: string[], onProgress: (p: ScoreProgress) => void, token?: vscode.CancellationToken): Promise<ScoreManySummary>;
  /**
   * Stable identity of the active pair (manifest path, model file sizes/mtimes, calibration, α, rule):
   * part of every score-cache key.
   */
  pairIdentity(): Promise<string>;
  /** What a classifier file declares (read in the worker). */
  inspectModel(path: string, options?: { layout?: Layout; size?: { width: number; height: number }; constants?: Record<string, number> }): Promise<ModelFacts>;
  /** Creates a pair in the worker (fitPair); cancelling rejects with "cancelled; nothing was written". */
  fit(request: FitRequest, onEvent: (event: FitEvent) => void, token?: vscode.CancellationToken): Promise<FitReport>;
}
