/**
 * EngineHost: the EngineService the UI uses. Runs the engine in a worker thread (dist/worker.js) through
 * EngineClient, restarts it when it dies, reloads it when the engine settings or the pair's files change,
 * and applies Workspace Trust: in Restricted Mode only the built-in pair runs.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import { parse as parseJsonc } from 'jsonc-parser';
import * as vscode from 'vscode';
import type { EngineConfig, EnginePairInfo, FitEvent, FitReport, FitRequest, InspectResult, ModelFacts, ScoreManySummary } from '../shared/engineProtocol';
import { oneLine } from '../shared/inspectProtocol';
import { EngineClient, type LogLevel } from '../worker/engineClient';
import { showPairError } from '../services/docs';
import type { EngineService, ScoreProgress } from '../services/engineService';
import type { Layout } from '../inference/pair/manifest';
import { PairSettingError, resolvePairSetting } from './pairPath';
import { VERDICT_RULES, type VerdictRule } from '../shared/rules';

const ENGINE_SETTINGS = ['pair', 'alpha', 'verdictRule', 'executionProvider', 'batchSize'];

function errorOf(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class EngineHost implements EngineService {
  private readonly emitter = new vscode.EventEmitter<EnginePairInfo | Error>();
  readonly onDidChangeEngine = this.emitter.event;
  private readonly client: EngineClient;
  private current: EngineConfig;
  private loading?: Promise<EnginePairInfo>;
  private lastInfo?: EnginePairInfo;
  private lastError?: Error;
  private readonly disposables: vscode.Disposable[] = [];
  private pairWatchers: vscode.Disposable[] = [];
  private reloadTimer?: NodeJS.Timeout;
  private identity?: { at: number; key: string; value: string };
  private restrictedNoticeFor?: string;
  private lastErrorShown?: string;
  /** The worker and the pair load on the first image or manifest opened (warm) or the first request, not at activation. */
  private started = false;

  constructor(private readonly context: vscode.ExtensionContext, private readonly log: vscode.LogOutputChannel) {
    const workerPath = vscode.Uri.joinPath(context.extensionUri, 'dist', 'worker.js').fsPath;
    this.client = new EngineClient({
      spawn: () => new Worker(workerPath, { stdout: true, stderr: true, workerData: { spawnedAt: Date.now() } }),
      log: (level: LogLevel, message: string) => this.log[level](message),
      onRestarted: (result) => {
        this.log.info('the engine worker was restarted and the pair reloaded');
        this.loaded(result);
      },
    });
    // In Restricted Mode a workspace pair is ignored: say so at activation (it only reads the settings), not
    // at the first check, which now starts the engine lazily and could be minutes later.
    this.current = this.readConfig(!vscode.workspace.isTrusted);
    this.disposables.push(
      this.emitter,
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (ENGINE_SETTINGS.some((s) => e.affectsConfiguration(`oodLens.${s}`))) this.reloadIfChanged('settings changed');
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        this.log.info('workspace trusted: the pair from the settings may now run');
        this.reloadIfChanged('workspace trusted');
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => this.reloadIfChanged('workspace folders changed')),
    );
  }

  /** Loads the configured pair now (idempotent): called when an image or a manifest is first opened. */
  warm(why: string): void {
    if (this.started) return;
    this.started = true;
    void this.reload(`warming up: ${why}`).catch(() => undefined);
  }

  /** Whether the engine was started (warm-up or a first request). */
  get isStarted(): boolean {
    return this.started;
  }

  get config(): EngineConfig {
    return this.current;
  }

  /** The state now, without waiting: the pair info, the load error, or neither while loading. */
  get state(): { info?: EnginePairInfo; error?: Error; loading: boolean; idle: boolean } {
    return { info: this.lastInfo, error: this.lastError, loading: this.started && !this.lastInfo && !this.lastError, idle: !this.started };
  }

  /** True when Restricted Mode made the engine ignore a configured pair. */
  get restricted(): boolean {
    return !vscode.workspace.isTrusted;
  }

  async info(): Promise<EnginePairInfo> {
    this.warm('first request');
    if (this.lastInfo) return this.lastInfo;
    if (this.loading) return this.loading;
    return this.client.info();
  }

  inspect(path: string): Promise<InspectResult> {
    this.warm('first request');
    return this.client.inspect(path);
  }

  scoreMany(paths: string[], onProgress: (p: ScoreProgress) => void, token?: vscode.CancellationToken): Promise<ScoreManySummary> {
    this.warm('first request');
    const controller = new AbortController();
    const sub = token?.onCancellationRequested(() => controller.abort());
    if (token?.isCancellationRequested) controller.abort();
    const run = this.client.scoreMany(paths, onProgress, controller.signal);
    run.then(
      () => sub?.dispose(),
      () => sub?.dispose(),
    );
    return run;
  }

  inspectModel(path: string, options: { layout?: Layout; size?: { width: number; height: number }; constants?: Record<string, number> } = {}): Promise<ModelFacts> {
    return this.client.inspectModel(path, { ...options, provider: 'cpu' });
  }

  fit(request: FitRequest, onEvent: (event: FitEvent) => void, token?: vscode.CancellationToken): Promise<FitReport> {
    const controller = new AbortController();
    const sub = token?.onCancellationRequested(() => controller.abort());
    if (token?.isCancellationRequested) controller.abort();
    const run = this.client.fit({ provider: this.current.provider, batchSize: this.current.batchSize, ...request }, onEvent, controller.signal);
    run.then(
      () => sub?.dispose(),
      () => sub?.dispose(),
    );
    return run;
  }

  async pairIdentity(): Promise<string> {
    const info = await this.info();
    const key = `${info.manifestPath}|${info.alpha}|${info.rule}`;
    if (this.identity && this.identity.key === key && Date.now() - this.identity.at < 2000) return this.identity.value;
    const files = await Promise.all(
      info.files.map(async (f) => {
        try {
          const s = await stat(f);
          return [f, s.size, Math.round(s.mtimeMs)];
        } catch {
          return [f, 'missing'];
        }
      }),
    );
    const hash = createHash('sha256')
      .update(JSON.stringify({ v: 1, manifest: info.manifestPath, files, calibrated: info.calibrated, calibrationCount: info.calibrationCount, alpha: info.alpha, rule: info.rule }))
      .digest('hex')
      .slice(0, 32);
    this.identity = { at: Date.now(), key, value: hash };
    return hash;
  }

  /** Reloads the engine now (e.g. from the pair picker after writing the setting). */
  reload(why: string): Promise<EnginePairInfo> {
    this.current = this.readConfig(true);
    this.lastInfo = undefined;
    this.lastError = undefined;
    this.identity = undefined;
    const describe = this.current.pair ?? 'the built-in pair';
    this.log.info(`loading ${describe} (${why}; provider ${this.current.provider}, α = ${this.current.alpha}, rule ${this.current.rule}, batch ${this.current.batchSize})`);
    const promise = this.client.configure(this.current);
    this.loading = promise;
    promise.then(
      (info) => this.loading === promise && this.loaded(info),
      (err) => this.loading === promise && this.loaded(errorOf(err)),
    );
    return promise;
  }

  dispose(): void {
    clearTimeout(this.reloadTimer);
    for (const d of [...this.disposables, ...this.pairWatchers]) d.dispose();
    void this.client.dispose();
  }

  /** Reloads when the settings now give another configuration, the last load failed, or `force`. */
  reloadIfChanged(why: string, force = false): void {
    // Not started yet: the settings are read when it starts — unless the user just chose a pair.
    if (!this.started) {
      if (why === 'pair selected') this.warm(why);
      return;
    }
    const next = this.readConfig(false);
    if (force || this.lastError || JSON.stringify(next) !== JSON.stringify(this.current)) void this.reload(why).catch(() => undefined);
  }

  private loaded(result: EnginePairInfo | Error): void {
    if (result instanceof Error) {
      this.lastInfo = undefined;
      this.lastError = result;
      this.log.error(`the pair could not be loaded: ${result.message}`);
      this.watchPair([this.current.pair ? this.manifestGuess(this.current.pair) : undefined].filter((p): p is string => !!p));
      if (this.lastErrorShown !== result.message) {
        this.lastErrorShown = result.message;
        void showPairError(`OOD Lens: the pair could not be loaded: ${oneLine(result.message)}.`, this.log);
      }
    } else {
      this.lastInfo = result;
      this.lastError = undefined;
      this.lastErrorShown = undefined;
      this.watchPair(result.files);
    }
    this.identity = undefined;
    this.emitter.fire(result);
  }

  private manifestGuess(pair: string): string {
    return /\.json$/i.test(pair) ? pair : `${pair}/ood-pair.json`;
  }

  /** Reload when the pair's manifest, models or calibration change on disk (re-trained or re-calibrated). */
  private watchPair(files: string[]): void {
    for (const d of this.pairWatchers) d.dispose();
    this.pairWatchers = [];
    const byDir = new Map<string, string[]>();
    for (const f of files) byDir.set(dirname(f), [...(byDir.get(dirname(f)) ?? []), basename(f)]);
    for (const [dir, names] of byDir) {
      const pattern = new vscode.RelativePattern(vscode.Uri.file(dir), names.length === 1 ? names[0] : `{${names.join(',')}}`);
      const watcher = vscode.workspace.createFileSystemWatcher(pattern);
      const onChange = (uri: vscode.Uri) => {
        clearTimeout(this.reloadTimer);
        this.reloadTimer = setTimeout(() => void this.reload(`${basename(uri.fsPath)} changed on disk`).catch(() => undefined), 1500);
      };
      this.pairWatchers.push(watcher, watcher.onDidChange(onChange), watcher.onDidCreate(onChange), watcher.onDidDelete(onChange));
    }
  }

  private readConfig(notify: boolean): EngineConfig {
    const c = vscode.workspace.getConfiguration('oodLens');
    const provider = c.get<string>('executionProvider', 'auto');
    const rule = c.get<string>('verdictRule', 'pair');
    const alpha = c.get<number>('alpha', 0.01);
    const batchSize = Math.round(c.get<number>('batchSize', 0));
    const config: EngineConfig = {
      pair: this.pairFromSettings(c, notify),
      provider: provider === 'cpu' || provider === 'cuda' ? provider : 'auto',
      alpha: Number.isFinite(alpha) && alpha > 0 && alpha < 1 ? alpha : 0.01,
      rule: (VERDICT_RULES as string[]).includes(rule) ? (rule as VerdictRule) : 'pair',
      batchSize: Number.isFinite(batchSize) ? Math.min(4096, Math.max(0, batchSize)) : 0, // 0: by the models' input size
    };
    if (config.pair === undefined) delete config.pair;
    return config;
  }

  private async noticeHiddenWorkspacePair(): Promise<void> {
    const files = (vscode.workspace.workspaceFolders ?? []).map((f) => vscode.Uri.joinPath(f.uri, '.vscode', 'settings.json'));
    if (vscode.workspace.workspaceFile?.scheme === 'file') files.push(vscode.workspace.workspaceFile);
    for (const file of files) {
      let text: string;
      try {
        text = new TextDecoder().decode(await vscode.workspace.fs.readFile(file));
      } catch {
        continue; // no settings file there
      }
      const data = parseJsonc(text) as Record<string, unknown> | undefined;
      const settings = file === vscode.workspace.workspaceFile ? (data?.settings as Record<string, unknown> | undefined) : data;
      const value = settings?.['oodLens.pair'];
      if (typeof value !== 'string' || !value.trim() || this.restrictedNoticeFor === value) continue;
      this.restrictedNoticeFor = value;
      this.log.warn(`Restricted Mode: ignoring oodLens.pair = "${value}" from ${file.fsPath}; the built-in pair runs`);
      const choice = await vscode.window.showWarningMessage(
        `OOD Lens: this workspace is in Restricted Mode, so the workspace pair "${value}" from ${vscode.workspace.asRelativePath(file)} (oodLens.pair) is not loaded — a pair runs its own model files, which needs a trusted workspace. The built-in MNIST pair runs instead.`,
        'Manage Workspace Trust',
      );
      if (choice) await vscode.commands.executeCommand('workbench.trust.manage');
      return;
    }
  }

  /** The configured pair, or undefined for the built-in one (also in Restricted Mode). */
  private pairFromSettings(c: vscode.WorkspaceConfiguration, notify: boolean): string | undefined {
    const inspected = c.inspect<string>('pair');
    const values = [inspected?.workspaceFolderValue, inspected?.workspaceValue, inspected?.globalValue].filter((v): v is string => typeof v === 'string' && v.trim() !== '');
    const value = (c.get<string>('pair') ?? '').trim() || values[0] || '';
    if (!value) {
      // In Restricted Mode VS Code hides workspace values of restricted settings such as oodLens.pair,
      // so look in the workspace's settings files ourselves — only to tell the user why it is not used.
      if (!vscode.workspace.isTrusted && notify) void this.noticeHiddenWorkspacePair();
      return undefined;
    }
    if (!vscode.workspace.isTrusted) {
      if (notify && this.restrictedNoticeFor !== value) {
        this.restrictedNoticeFor = value;
        this.log.warn(`Restricted Mode: ignoring oodLens.pair = "${value}"; the built-in pair runs`);
        void vscode.window
          .showWarningMessage(
            `OOD Lens: this workspace is in Restricted Mode, so the pair "${value}" from the oodLens.pair setting is not loaded — a pair runs its own model files, which needs a trusted workspace. The built-in MNIST pair runs instead.`,
            'Manage Workspace Trust',
          )
          .then((choice) => choice && vscode.commands.executeCommand('workbench.trust.manage'));
      }
      return undefined;
    }
    try {
      return resolvePairSetting(value, { folders: (vscode.workspace.workspaceFolders ?? []).map((f) => ({ name: f.name, path: f.uri.fsPath })), home: homedir() });
    } catch (err) {
      if (!(err instanceof PairSettingError)) throw err;
      if (notify) {
        this.log.error(`${err.message}; the built-in pair runs`);
        void vscode.window.showErrorMessage(`OOD Lens: ${err.message}. The built-in pair runs instead.`, 'Open Settings').then((choice) => {
          if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', 'oodLens.pair');
        });
      }
      return undefined;
    }
  }
}
