/**
 * The Inspect panel (viewType `oodLens.inspect`): one webview per set of images, a row each. Scores come from
 * the engine worker through EngineService; the panel re-scores an image when its file changes and every image
 * when the pair changes. The webview keeps its view with setState (retainContextWhenHidden is off), and the
 * WebviewPanelSerializer rebuilds the panel after a reload from the image paths it saved.
 */
import { basename, dirname, extname, sep } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as vscode from 'vscode';
import type { Services } from '../services/services';
import type { EnginePairInfo } from '../shared/engineProtocol';
import { formatMsp, formatNats, formatP } from '../shared/format';
import { browserShows, type HostToInspect, INSPECT_VIEW_TYPE, type InspectRow, type InspectToHost, type InspectViewState, isInspectToHost, oneLine, persistedPaths, persistedPinned } from '../shared/inspectProtocol';
import { docsAction } from '../services/docs';
import { buildInspectHtml, makeNonce } from './html';

/** Originals up to this size are shown as they are (sent as data: URIs); larger ones show the model input. */
const MAX_ORIGINAL_BYTES = 8 * 1024 * 1024;
const MIME: Record<string, string> = { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.gif': 'image/gif', '.webp': 'image/webp', '.bmp': 'image/bmp', '.avif': 'image/avif' };

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `oodLens.inspect.reusePanel`: the next check replaces the images of the unpinned panel (default), or opens a new one. */
function reusePanel(): boolean {
  return vscode.workspace.getConfiguration('oodLens').get<boolean>('inspect.reusePanel', true);
}

export class InspectPanel implements vscode.Disposable {
  private static readonly open = new Set<InspectPanel>();
  /** The unpinned panel that the next check reuses, as Markdown preview does. */
  private static preview: InspectPanel | undefined;
  private rows: InspectRow[] = [];
  private pinned: boolean;
  private pathWatchers: vscode.Disposable[] = [];
  private pair: EnginePairInfo | null = null;
  private pairError: string | null = null;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Bumped per scoring run of a row, so that a slow old answer never overwrites a newer one. */
  private readonly runIds = new Map<string, number>();
  private disposed = false;
  /** When the page was set (performance.now()), until the page says it runs: how long the webview took to come up. */
  private pageSetAt: number | undefined;

  /**
   * Shows these images: reveals (and re-scores) a panel that holds exactly them, else reuses the unpinned
   * preview panel, else opens a new panel. With `oodLens.inspect.reusePanel` off every new set gets its own
   * (pinned) panel.
   */
  static async show(services: Services, uris: vscode.Uri[], column?: vscode.ViewColumn): Promise<void> {
    const paths = [...new Set(uris.map((u) => u.fsPath))];
    if (!paths.length) return;
    for (const existing of InspectPanel.open) {
      if (existing.samePaths(paths)) {
        existing.panel.reveal(existing.panel.viewColumn ?? column, true);
        existing.scoreAll(true);
        return;
      }
    }
    const reuse = reusePanel();
    const preview = InspectPanel.preview;
    if (reuse && preview && !preview.disposed) {
      preview.replace(paths);
      preview.panel.reveal(preview.panel.viewColumn ?? column, true);
      return;
    }
    const asked = performance.now();
    const panel = vscode.window.createWebviewPanel(INSPECT_VIEW_TYPE, InspectPanel.title(paths, !reuse), { viewColumn: column ?? vscode.ViewColumn.Active, preserveFocus: true }, InspectPanel.options(services));
    new InspectPanel(panel, services, paths, true, !reuse);
    services.log.info(`inspect: new panel for ${paths.length === 1 ? basename(paths[0]) : `${paths.length} images`}, its page set in ${(performance.now() - asked).toFixed(0)} ms`);
  }

  /** True until the panel's page has started (its first webview load can take seconds in a fresh browser profile). */
  get waitingForPage(): boolean {
    return this.pageSetAt !== undefined;
  }

  /** The panels now open (tests and the walkthrough's checks read them). */
  static openPanels(): readonly InspectPanel[] {
    return [...InspectPanel.open];
  }

  /** Rebuilds a panel VS Code restored after a reload (WebviewPanelSerializer). */
  static revive(panel: vscode.WebviewPanel, services: Services, state: unknown): void {
    const paths = persistedPaths(state);
    panel.webview.options = InspectPanel.options(services);
    if (!paths.length) {
      panel.dispose();
      return;
    }
    // Only one restored panel can be the preview; the others come back pinned.
    const pinned = persistedPinned(state) || (!!InspectPanel.preview && !InspectPanel.preview.disposed) || !reusePanel();
    panel.title = InspectPanel.title(paths, pinned);
    new InspectPanel(panel, services, paths, false, pinned);
  }

  static options(services: Services): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    const ext = services.context.extensionUri;
    return {
      enableScripts: true,
      retainContextWhenHidden: false,
      enableFindWidget: true,
      localResourceRoots: [vscode.Uri.joinPath(ext, 'dist', 'webview'), vscode.Uri.joinPath(ext, 'media')],
    };
  }

  /** "OOD: digit.png — mnist": the pair's name once it is known (panels of two pairs must not look alike). */
  private static title(paths: string[], pinned: boolean, pairName?: string): string {
    const what = paths.length === 1 ? basename(paths[0]) : `${paths.length} images`;
    const pair = pairName ? ` — ${pairName}` : '';
    return pinned ? `OOD (pinned): ${what}${pair}` : `OOD: ${what}${pair}`;
  }

  /** Where a path is shown: relative to the workspace, or to the extension for its own samples (no machine's full path). */
  private static displayPath(path: string, extensionPath: string): string {
    const ext = extensionPath.endsWith(sep) ? extensionPath : `${extensionPath}${sep}`;
    if (path.startsWith(ext)) return `OOD Lens: ${path.slice(ext.length).split(sep).join('/')}`;
    return vscode.workspace.asRelativePath(vscode.Uri.file(path), (vscode.workspace.workspaceFolders?.length ?? 0) > 1);
  }

  private static rowsFor(paths: string[], extensionPath: string): InspectRow[] {
    // Rows start as "scoring": the panel says so at once, also while the pair is still loading.
    return paths.map((path) => ({
      path,
      name: basename(path),
      displayPath: InspectPanel.displayPath(path, extensionPath),
      originalSrc: null,
      status: 'scoring',
    }));
  }

  private constructor(readonly panel: vscode.WebviewPanel, private readonly services: Services, paths: string[], notify: boolean, pinned: boolean) {
    InspectPanel.open.add(this);
    this.pinned = pinned;
    if (!pinned) InspectPanel.preview = this;
    this.rows = InspectPanel.rowsFor(paths, this.services.context.extensionUri.fsPath);
    panel.webview.html = this.html();
    this.pageSetAt = performance.now();
    this.disposables.push(
      panel.onDidDispose(() => this.dispose()),
      panel.webview.onDidReceiveMessage((m: unknown) => this.onMessage(m)),
      services.engine.onDidChangeEngine((result) => {
        this.setPair(result);
        this.scoreAll(false);
      }),
    );
    for (const path of paths) this.watch(path);
    void this.start(notify);
  }

  /** The preview panel takes another set of images: the old rows, their runs and file watchers are dropped. */
  private replace(paths: string[]): void {
    for (const d of this.pathWatchers) d.dispose();
    this.pathWatchers = [];
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    // Bumping every run id makes answers still on their way for the old images land nowhere.
    for (const [path, id] of this.runIds) this.runIds.set(path, id + 1);
    this.rows = InspectPanel.rowsFor(paths, this.services.context.extensionUri.fsPath);
    this.panel.title = InspectPanel.title(paths, this.pinned, this.pair?.name);
    this.post({ type: 'state', state: this.state() });
    for (const path of paths) this.watch(path);
    this.services.log.info(`inspect: the preview panel now shows ${paths.length === 1 ? paths[0] : `${paths.length} images`}`);
    this.scoreAll(true);
  }

  private setPinned(pinned: boolean): void {
    this.pinned = pinned;
    if (pinned && InspectPanel.preview === this) InspectPanel.preview = undefined;
    if (!pinned) {
      // One preview at a time: the panel that was it keeps its images, pinned.
      const previous = InspectPanel.preview;
      if (previous && previous !== this && !previous.disposed) previous.setPinned(true);
      InspectPanel.preview = this;
    }
    this.panel.title = InspectPanel.title(this.rows.map((r) => r.path), pinned, this.pair?.name);
    this.post({ type: 'pinned', pinned });
  }

  get isPinned(): boolean {
    return this.pinned;
  }

  get paths(): string[] {
    return this.rows.map((r) => r.path);
  }

  private samePaths(paths: string[]): boolean {
    return paths.length === this.rows.length && paths.every((p) => this.rows.some((r) => r.path === p));
  }

  private html(): string {
    const webview = this.panel.webview;
    const ext = this.services.context.extensionUri;
    return buildInspectHtml({
      cspSource: webview.cspSource,
      nonce: makeNonce(),
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(ext, 'dist', 'webview', 'inspect.js')).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(ext, 'media', 'inspect.css')).toString(),
      title: this.panel.title,
      rows: this.rows.map((r) => ({ path: r.path, name: r.name, displayPath: r.displayPath })),
    });
  }

  private async start(notify: boolean): Promise<void> {
    try {
      this.setPair(await this.services.engine.info());
    } catch (err) {
      this.setPair(err instanceof Error ? err : new Error(String(err)));
    }
    this.scoreAll(notify);
  }

  private setPair(result: EnginePairInfo | Error): void {
    if (result instanceof Error) {
      this.pair = null;
      this.pairError = result.message;
    } else {
      this.pair = result;
      this.pairError = null;
    }
    this.panel.title = InspectPanel.title(this.rows.map((r) => r.path), this.pinned, this.pair?.name);
    this.post({ type: 'pair', pair: this.pair, pairError: this.pairError, restricted: !this.services.isTrusted() });
  }

  private state(): InspectViewState {
    return { version: 1, rows: this.rows, pair: this.pair, pairError: this.pairError, restricted: !this.services.isTrusted(), pinned: this.pinned };
  }

  private post(message: HostToInspect): void {
    if (this.disposed) return;
    // A hidden webview is gone (retainContextWhenHidden is off); it asks for the whole state when shown again.
    if (!this.panel.visible) return;
    void this.panel.webview.postMessage(message).then(undefined, () => undefined);
  }

  private setRow(row: InspectRow): void {
    const i = this.rows.findIndex((r) => r.path === row.path);
    if (i >= 0) this.rows[i] = row;
    this.post({ type: 'row', row });
  }

  /** Scores every row (a few at a time); with `notify`, failures raise one notification. */
  scoreAll(notify: boolean): void {
    void this.scoreRows(this.rows.map((r) => r.path), notify);
  }

  private async scoreRows(paths: string[], notify: boolean): Promise<void> {
    const failures: { path: string; problem: string }[] = [];
    let engineFailure: string | undefined;
    const queue = [...paths];
    const worker = async () => {
      for (let path = queue.shift(); path !== undefined; path = queue.shift()) {
        const outcome = await this.scoreRow(path);
        if (outcome?.engine) engineFailure ??= outcome.problem;
        else if (outcome) failures.push({ path, problem: outcome.problem });
      }
    };
    await Promise.all([worker(), worker()]);
    if (!notify || this.disposed) return;
    if (engineFailure !== undefined) {
      await this.notify(`OOD Lens could not score ${paths.length === 1 ? basename(paths[0]) : `${paths.length} images`}: ${engineFailure}`, true);
    } else if (failures.length === 1) {
      await this.notify(`OOD Lens could not score ${basename(failures[0].path)}: ${failures[0].problem}`);
    } else if (failures.length > 1) {
      const listed = failures.slice(0, 3).map((f) => `${basename(f.path)} (${f.problem})`).join(', ');
      await this.notify(`OOD Lens could not score ${failures.length} of ${paths.length} images: ${listed}${failures.length > 3 ? ', …' : ''}`);
    }
  }

  private async notify(text: string, offerPair = false): Promise<void> {
    // A pair that cannot run: say what to do (choose another pair, or read how to make one).
    const docs = offerPair ? docsAction('pair') : undefined;
    const actions = offerPair ? ['Select Pair…', docs!.label, 'Show log'] : ['Show log'];
    const choice = await vscode.window.showErrorMessage(oneLine(offerPair ? `${text} — choose a working pair (Select Pair…) or see "${docs!.title}".` : text), ...actions);
    if (choice === 'Show log') this.services.log.show(true);
    else if (choice === 'Select Pair…') await vscode.commands.executeCommand('oodLens.selectPair');
    else if (docs && choice === docs.label) await docs.run();
  }

  /** Scores one row; returns the problem when it failed (engine = the request itself failed). */
  private async scoreRow(path: string): Promise<{ problem: string; engine: boolean } | undefined> {
    const runId = (this.runIds.get(path) ?? 0) + 1;
    this.runIds.set(path, runId);
    const previous = this.rows.find((r) => r.path === path);
    if (!previous || this.disposed) return undefined;
    this.setRow({ ...previous, status: 'scoring' });
    const asked = performance.now();
    const [original, outcome] = await Promise.all([this.original(path), this.services.engine.inspect(path).then((r) => ({ r }), (err: unknown) => ({ err }))]);
    if (this.disposed || this.runIds.get(path) !== runId) return undefined;
    const base = this.rows.find((r) => r.path === path)!;
    if ('err' in outcome) {
      const problem = message(outcome.err);
      this.services.log.error(`inspect ${path}: ${problem}`);
      this.setRow({ ...base, status: 'failed', failure: problem, result: undefined, originalSrc: original, scoredAt: Date.now() });
      return { problem, engine: true };
    }
    const r = outcome.r;
    this.setRow({ ...base, status: 'done', result: r, failure: undefined, originalSrc: original, scoredAt: Date.now() });
    if (r.verdict === 'error') {
      this.services.log.error(`inspect ${path}: ${r.error}`);
      return { problem: r.error ?? 'unknown error', engine: false };
    }
    this.services.log.info(`inspect ${path}: ${r.verdict}, p = ${formatP(r.pValue)}${r.label !== null ? `, predicted ${r.label} (MSP ${formatMsp(r.msp)})` : ''}, ELBO ${formatNats(r.elbo)} nats (${(performance.now() - asked).toFixed(0)} ms)`);
    return undefined;
  }

  /** The file as a data: URI when a browser shows its format and it is not huge; else null (the model input is shown). */
  private async original(path: string): Promise<string | null> {
    const mime = MIME[extname(path).toLowerCase()];
    if (!mime || !browserShows(path)) return null;
    try {
      const uri = vscode.Uri.file(path);
      const st = await vscode.workspace.fs.stat(uri);
      if (st.size > MAX_ORIGINAL_BYTES || st.size === 0) return null;
      const bytes = await vscode.workspace.fs.readFile(uri);
      return `data:${mime};base64,${Buffer.from(bytes).toString('base64')}`;
    } catch {
      return null;
    }
  }

  private watch(path: string): void {
    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(dirname(path)), basename(path)));
    const changed = () => {
      clearTimeout(this.timers.get(path));
      this.timers.set(
        path,
        setTimeout(() => {
          this.services.log.info(`inspect: ${path} changed on disk, scoring it again`);
          void this.scoreRow(path);
        }, 400),
      );
    };
    this.pathWatchers.push(watcher, watcher.onDidChange(changed), watcher.onDidCreate(changed), watcher.onDidDelete(changed));
  }

  private onMessage(m: unknown): void {
    if (!isInspectToHost(m)) {
      this.services.log.warn(`inspect panel: ignored an unknown message from the webview: ${JSON.stringify(m)?.slice(0, 200)}`);
      return;
    }
    void this.handle(m).catch((err) => {
      this.services.log.error(`inspect panel: ${m.type} failed: ${(err as Error).stack ?? err}`);
      void this.notify(`OOD Lens: ${m.type} failed: ${message(err)}`);
    });
  }

  private async handle(m: InspectToHost): Promise<void> {
    // Paths from the webview are only acted on when they are rows of this panel.
    const known = (path: string) => this.rows.some((r) => r.path === path);
    switch (m.type) {
      case 'ready':
        if (this.pageSetAt !== undefined) {
          this.services.log.info(`inspect: the panel's page runs, ${(performance.now() - this.pageSetAt).toFixed(0)} ms after it was set`);
          this.pageSetAt = undefined;
        }
        this.post({ type: 'state', state: this.state() });
        return;
      case 'rerun':
        if (m.path === undefined) await this.scoreRows(this.rows.map((r) => r.path), true);
        else if (known(m.path)) await this.scoreRows([m.path], true);
        return;
      case 'openImage':
        if (known(m.path)) await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(m.path), { viewColumn: vscode.ViewColumn.Beside, preview: true });
        return;
      case 'revealInExplorer':
        if (known(m.path)) await vscode.commands.executeCommand('revealInExplorer', vscode.Uri.file(m.path));
        return;
      case 'showLog':
        this.services.log.show(true);
        return;
      case 'selectPair':
        await vscode.commands.executeCommand('oodLens.selectPair');
        return;
      case 'togglePin':
        this.setPinned(!this.pinned);
        return;
      case 'openDocs':
        await docsAction('pair').run();
        return;
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    InspectPanel.open.delete(this);
    if (InspectPanel.preview === this) InspectPanel.preview = undefined;
    for (const t of this.timers.values()) clearTimeout(t);
    for (const d of [...this.disposables, ...this.pathWatchers]) d.dispose();
    this.panel.dispose();
  }
}

export function registerInspectPanelSerializer(services: Services): vscode.Disposable {
  return vscode.window.registerWebviewPanelSerializer(INSPECT_VIEW_TYPE, {
    async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
      try {
        InspectPanel.revive(panel, services, state);
      } catch (err) {
        services.log.error(`could not restore an Inspect panel: ${(err as Error).stack ?? err}`);
        panel.dispose();
      }
    },
  });
}
