/**
 * The messages between the engine's thread and its worker threads (preprocessing pool and scoring shards):
 * plain, structured-cloneable data, in a module of its own so that neither side imports the other.
 */
import type { Compressor } from '../detectors/complexity';
import type { EngineOptions, StageTimings } from '../engineTypes';
import type { PairImageSpecs } from '../image/fastpath';
import type { RawImage } from '../image/preprocess';
import type { PairDescription } from '../pair/pair';

/** `error`: an input that could not be listed or parsed; it becomes that path's error record. */
export type WorkItem = { path: string; fsPath?: Uint8Array } | { path: string; raw: RawImage } | { path: string; bytes: Uint8Array } | { path: string; error: string };

export interface PreprocessRequest {
  kind: 'prepare';
  id: number;
  items: WorkItem[];
  /** The classifier's image, and the VAE's own when it differs (decoded once, resized for each). */
  specs: PairImageSpecs;
  maxInputPixels: number;
  maxFileBytes: number;
  /** The compressor for L(x), or false to skip it. */
  complexity: Compressor | false;
}

/** `vaePixels`: the VAE's own image, when the pair's VAE takes another size or channel count. */
export type PreparedMessage = { pixels: Uint8Array; vaePixels?: Uint8Array; complexityBits?: number } | { error: string };

export interface PreprocessResponse {
  id: number;
  results: PreparedMessage[];
}

/** What a shard's engine is created with: the pair and the scoring settings, all structured-cloneable. */
export type ShardEngineOptions = Pick<EngineOptions, 'pair' | 'alpha' | 'rule' | 'batchSize' | 'maxInputPixels' | 'maxFileBytes' | 'complexity' | 'calibration' | 'features'>;

export type ShardRequest =
  /** `describe`: answer with the loaded pair's description (ScoringShards.pair). */
  | { kind: 'open'; id: number; options: ShardEngineOptions; describe?: boolean }
  | { kind: 'score'; id: number; items: WorkItem[]; withDetails: boolean }
  /** Finish the batches in hand, release the models, and end this thread. */
  | { kind: 'close'; id: number };

/**
 * `results`: the batch's ImageResult[] serialized with node:v8 (the structured clone's own format), read back
 * only when the batch's turn to be reported comes (scoringShards.ts unpackResults).
 */
export type ShardResponse = { id: number; error: string } | { id: number; opened: true; pair?: PairDescription } | { id: number; results: Uint8Array; timings: StageTimings };
