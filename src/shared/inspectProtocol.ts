/**
 * Messages between the Inspect panel (src/webviews/inspectPanel.ts) and its webview script
 * (src/webviews/ui/inspect.ts). Typed on both sides; no vscode or DOM imports here.
 */
import type { EnginePairInfo, InspectResult } from './engineProtocol';

export const INSPECT_VIEW_TYPE = 'oodLens.inspect';

/** One inspected image. */
export interface InspectRow {
  /** File system path (the key of a row). */
  path: string;
  /** File name. */
  name: string;
  /** Path relative to its workspace folder, or the full path outside one. */
  displayPath: string;
  /** Webview URI of the file itself when browsers can show its format (else the model input is shown). */
  originalSrc: string | null;
  status: 'queued' | 'scoring' | 'done' | 'failed';
  /** The scores and images (also for an image that could not be decoded: verdict "error"). */
  result?: InspectResult;
  /** The engine request itself failed (broken pair, engine stopped): the message. */
  failure?: string;
  /** When the result was computed (ms since epoch). */
  scoredAt?: number;
}

export interface InspectViewState {
  version: 1;
  rows: InspectRow[];
  /** The pair that produced the results; null while loading or when it failed to load. */
  pair: EnginePairInfo | null;
  /** Why the pair could not be loaded. */
  pairError: string | null;
  /** Restricted Mode: the built-in pair runs whatever the settings say. */
  restricted: boolean;
  /**
   * A pinned panel keeps its images; the one unpinned panel is a preview that the next check reuses
   * (like Markdown preview). Absent in states saved before pinning existed: unpinned.
   */
  pinned?: boolean;
}

export type HostToInspect =
  /** The whole view (on load, after a reload, after the pair changed). */
  | { type: 'state'; state: InspectViewState }
  /** One row changed. */
  | { type: 'row'; row: InspectRow }
  /** The pair changed or failed. */
  | { type: 'pair'; pair: EnginePairInfo | null; pairError: string | null; restricted: boolean }
  /** The panel was pinned or unpinned. */
  | { type: 'pinned'; pinned: boolean };

export type InspectToHost =
  | { type: 'ready' }
  /** Score again: one image, or all when path is absent. */
  | { type: 'rerun'; path?: string }
  | { type: 'openImage'; path: string }
  | { type: 'revealInExplorer'; path: string }
  | { type: 'showLog' }
  | { type: 'selectPair' }
  /** Pin (keep this panel's images) or unpin (let the next check reuse it). */
  | { type: 'togglePin' }
  /** The docs on making a pair (from the pair error). */
  | { type: 'openDocs' };

/** What the webview stores with setState: enough for the panel serializer to rebuild the panel after a reload. */
export interface InspectPersistedState {
  version: 1;
  paths: string[];
  view?: InspectViewState;
}

/** Whether a saved state was a pinned panel. */
export function persistedPinned(state: unknown): boolean {
  return !!state && typeof state === 'object' && (state as Partial<InspectPersistedState>).view?.pinned === true;
}

const TO_HOST = new Set(['ready', 'rerun', 'openImage', 'revealInExplorer', 'showLog', 'selectPair', 'togglePin', 'openDocs']);

/** Validates a message from the webview (it is untrusted input to the extension host). */
export function isInspectToHost(m: unknown): m is InspectToHost {
  if (!m || typeof m !== 'object') return false;
  const msg = m as Record<string, unknown>;
  if (typeof msg.type !== 'string' || !TO_HOST.has(msg.type)) return false;
  if ((msg.type === 'openImage' || msg.type === 'revealInExplorer') && typeof msg.path !== 'string') return false;
  if (msg.type === 'rerun' && msg.path !== undefined && typeof msg.path !== 'string') return false;
  return true;
}

/** Validates persisted state handed to the panel serializer (it may come from an older version). */
export function persistedPaths(state: unknown): string[] {
  if (!state || typeof state !== 'object') return [];
  const s = state as Partial<InspectPersistedState>;
  if (s.version !== 1 || !Array.isArray(s.paths)) return [];
  return s.paths.filter((p): p is string => typeof p === 'string' && p.length > 0);
}

/** Image formats the webview shows directly; the rest (TIFF) show the model input instead. */
export const BROWSER_IMAGE_EXTENSIONS = ['png', 'jpg', 'jpeg', 'gif', 'webp', 'bmp', 'avif'];

/** Image files OOD Lens scores (the Explorer menu's `when` clause lists the same). */
export const IMAGE_EXTENSIONS = ['png', 'jpg', 'jpeg', 'webp', 'gif', 'bmp', 'tif', 'tiff', 'avif'];

export function isImagePath(path: string): boolean {
  const m = /\.([^./\\]+)$/.exec(path);
  return !!m && IMAGE_EXTENSIONS.includes(m[1].toLowerCase());
}

export function browserShows(path: string): boolean {
  const m = /\.([^./\\]+)$/.exec(path);
  return !!m && BROWSER_IMAGE_EXTENSIONS.includes(m[1].toLowerCase());
}

/** A multi-line engine message (a manifest's list of problems) on one line, for notifications. */
export function oneLine(message: string): string {
  return message.replace(/:\n\s*- /, ': ').replace(/\n\s*- /g, '; ').replace(/\s*\n\s*/g, ' ');
}
