/**
 * The score cache on the VS Code side, shared by folder scoring and dataset manifests: opens the cache file in
 * global storage, keeps its pair identity current, scores lists of files through the cache, registers
 * `oodLens.clearCache` and the Explorer badge on images scored out-of-distribution.
 */
import { rm } from 'node:fs/promises';
import * as vscode from 'vscode';
import { formatP } from '../shared/format';
import type { ImageResult } from '../inference/engine';
import type { CachedScore } from './scoreCache';
import { ScoreCache } from './scoreCache';
import type { Services } from '../services/services';
import { cacheMaxEntries } from './settingsBounds';

export interface ScoreManyOutcome {
  /** results[i] for paths[i]; undefined where the run stopped before it. */
  results: (ImageResult | undefined)[];
  done: number;
  total: number;
  cached: number;
  cancelled: boolean;
  seconds: number;
}

export interface ScoreStore {
  /** Resolves once the cache file is loaded and the pair identity is known (reading it starts the engine). */
  readonly ready: Promise<ScoreCache>;
  onDidChange: vscode.Event<vscode.Uri[] | undefined>;
  /** Cached score of a file as it is now (hashes it when its size or mtime changed). */
  lookup(path: string): Promise<ImageResult | undefined>;
  /** Records results (errors are not cached). */
  put(results: ImageResult[]): Promise<void>;
  /** Scores files, cached ones from the cache, the rest through the engine; cancellation keeps what was scored. */
  scoreMany(
    paths: string[],
    options: { token?: vscode.CancellationToken; onProgress?: (done: number, total: number, cached: number) => void; onResults?: (batch: { index: number; result: ImageResult }[]) => void },
  ): Promise<ScoreManyOutcome>;
}

const stores = new WeakMap<vscode.ExtensionContext, ScoreStore>();

function withPath(score: CachedScore, path: string): ImageResult {
  return { ...score, path };
}

/** The store for this extension context; the first call registers the command and the decoration provider. */
export function scoreStore(services: Services): ScoreStore {
  const existing = stores.get(services.context);
  if (existing) return existing;
  const { context, engine, log } = services;
  const emitter = new vscode.EventEmitter<vscode.Uri[] | undefined>();
  // User/machine value only: a workspace must not shrink the cache every workspace shares.
  const maxEntries = () => cacheMaxEntries(vscode.workspace.getConfiguration('oodLens').inspect<number>('cache.maxEntries'));
  // An append-only log (scoreCache.ts); the single JSON file of earlier versions is removed unread.
  const file = vscode.Uri.joinPath(context.globalStorageUri, 'score-cache.jsonl').fsPath;
  const legacyFile = vscode.Uri.joinPath(context.globalStorageUri, 'score-cache.json').fsPath;

  const refreshIdentity = async (cache: ScoreCache) => {
    try {
      cache.setIdentity(await engine.pairIdentity());
    } catch (err) {
      log.warn(`score cache: the pair identity is unavailable (${(err as Error).message}); cached scores are not used until the pair loads`);
      cache.setIdentity(`unavailable:${Date.now()}`);
    }
  };

  const decorations = new OodFileDecorations(emitter.event);
  const opened = (async () => {
    await rm(legacyFile, { force: true }).catch(() => undefined);
    const cache = await ScoreCache.open(file, { maxEntries: maxEntries(), log: (m) => log.info(m) });
    cache.onDidChange((paths) => emitter.fire(paths === 'all' ? undefined : paths.map((p) => vscode.Uri.file(p))));
    decorations.cache = cache;
    return cache;
  })();
  opened.catch((err: Error) => log.error(`score cache: ${err.message}`));
  // The pair identity needs the pair loaded in the engine worker: it is asked for when the cache is first used (a
  // manifest, a folder score) or when the engine loads for another reason, never at activation, which would load
  // the models at VS Code's start-up. Until then the Explorer shows no badges from earlier sessions. Setting the
  // identity fires 'all': the Explorer asks again and shows badges from the loaded cache.
  let identified: Promise<ScoreCache> | undefined;
  const ready = (): Promise<ScoreCache> =>
    (identified ??= opened.then(async (cache) => {
      await refreshIdentity(cache);
      return cache;
    }));

  context.subscriptions.push(
    emitter,
    engine.onDidChangeEngine(() => void (identified ? identified.then(refreshIdentity) : ready())),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('oodLens.cache.maxEntries')) void opened.then((c) => c.setMaxEntries(maxEntries()));
    }),
    vscode.commands.registerCommand('oodLens.clearCache', async () => {
      const cache = await opened;
      const n = cache.size;
      await cache.clear();
      log.info(`score cache cleared (${n} scores)`);
      void vscode.window.showInformationMessage(`OOD Lens: score cache cleared (${n.toLocaleString('en-US')} scores).`);
    }),
    vscode.window.registerFileDecorationProvider(decorations),
    { dispose: () => void opened.then((c) => c.dispose()) },
  );

  const store: ScoreStore = {
    get ready() {
      return ready();
    },
    onDidChange: emitter.event,
    async lookup(path) {
      const cache = await ready();
      const hit = await cache.lookup(path);
      return hit?.score ? withPath(hit.score, path) : undefined;
    },
    async put(results) {
      const cache = await ready();
      for (const r of results) await cache.put(r.path, r);
    },
    async scoreMany(paths, options) {
      const started = Date.now();
      const cache = await ready();
      const results: (ImageResult | undefined)[] = new Array(paths.length);
      const at: ({ key: string; size: number; mtimeMs: number } | null)[] = new Array(paths.length).fill(null);
      const todo: number[] = [];
      let cached = 0;
      let looked = 0;
      let lastReport = 0;
      // Phase 1: the cache (a few files at a time; cheap for files seen before thanks to the path index).
      let next = 0;
      const worker = async () => {
        while (next < paths.length && !options.token?.isCancellationRequested) {
          const i = next++;
          const hit = await cache.lookup(paths[i]).catch(() => null);
          at[i] = hit;
          if (hit?.score) {
            results[i] = withPath(hit.score, paths[i]);
            cached++;
            options.onResults?.([{ index: i, result: results[i]! }]);
          } else todo.push(i);
          looked++;
          if (Date.now() - lastReport > 100) {
            lastReport = Date.now();
            options.onProgress?.(cached, paths.length, cached);
          }
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      todo.sort((a, b) => a - b);
      if (options.token?.isCancellationRequested) {
        return { results, done: cached, total: paths.length, cached, cancelled: true, seconds: (Date.now() - started) / 1000 };
      }
      options.onProgress?.(cached, paths.length, cached);
      // Phase 2: the engine, for the rest.
      let scored = 0;
      let cancelled = false;
      if (todo.length) {
        const summary = await engine.scoreMany(
          todo.map((i) => paths[i]),
          (p) => {
            const batch: { index: number; result: ImageResult }[] = [];
            for (const r of p.results) {
              const i = todo[scored++];
              results[i] = r;
              batch.push({ index: i, result: r });
              void cache.put(paths[i], r, at[i]);
            }
            if (batch.length) options.onResults?.(batch);
            options.onProgress?.(cached + scored, paths.length, cached);
          },
          options.token,
        );
        cancelled = summary.cancelled;
      }
      void looked;
      return { results, done: cached + scored, total: paths.length, cached, cancelled: cancelled || cached + scored < paths.length, seconds: (Date.now() - started) / 1000 };
    },
  };
  stores.set(context, store);
  return store;
}

/** A badge on image files whose latest score under the active pair is out-of-distribution. */
class OodFileDecorations implements vscode.FileDecorationProvider {
  cache: ScoreCache | undefined;
  readonly onDidChangeFileDecorations: vscode.Event<vscode.Uri | vscode.Uri[] | undefined>;

  constructor(changes: vscode.Event<vscode.Uri[] | undefined>) {
    this.onDidChangeFileDecorations = changes;
  }

  provideFileDecoration(uri: vscode.Uri): vscode.FileDecoration | undefined {
    if (uri.scheme !== 'file' || !this.cache) return undefined;
    const s = this.cache.peekPath(uri.fsPath);
    if (!s || s.verdict !== 'out-of-distribution') return undefined;
    const p = s.pValue !== null ? ` (p = ${formatP(s.pValue)})` : '';
    return {
      badge: '⚠',
      tooltip: `OOD Lens: out-of-distribution${p}; the prediction "${s.label}" is unreliable`,
      color: new vscode.ThemeColor('oodLens.explorer.oodForeground'),
      propagate: false,
    };
  }
}
