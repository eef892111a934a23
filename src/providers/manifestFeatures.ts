/**
 * Dataset manifests in the editor: CSV/TSV, JSON Lines and plain path lists that name image files.
 * - Hover on a path: thumbnail, prediction and MSP, ELBO with p-values, verdict, possible label error;
 *   from the score cache, else scored on demand. Missing files, malformed lines and (in Restricted Mode)
 *   paths outside the workspace say so.
 * - "Score manifest" CodeLens at the top (and oodLens.scoreManifest); small manifests score themselves.
 * - After scoring: decorations on out-of-distribution rows, label disagreements and problem rows, a summary
 *   CodeLens, optional Problems-panel diagnostics (oodLens.manifest.diagnostics).
 * Parsing runs in the manifest worker (manifestParser.ts → src/worker/manifestWorker.ts, the engine's streaming
 * reader), debounced on edits; the host keeps the rows in compact form (manifestRows.ts).
 */
import { dirname } from 'node:path';
import * as vscode from 'vscode';
import type { ImageResult } from '../inference/engine';
import { formatBitsPerDim, formatMsp, formatNats, formatP, testPLabel } from '../shared/format';
import type { RowSet } from '../shared/reportProtocol';
import type { StoredReport } from '../webviews/reportData';
import { newReportId, ReportPanel } from '../webviews/reportPanel';
import {
  checkReadable, commonFolder, formatForDocument, formatSummary, isLabelDisagreement, type ManifestRow, type ManifestSummary, type Readability, type RowState, summarize,
} from './datasetManifest';
import { appendPlain, commandLink, HOVER_COMMANDS, type MarkdownSink, thumbnailMarkdown, visibleText } from './hoverMarkdown';
import type { EditorManifest as ParsedManifest } from '../inference/datasets/manifestRows';
import { ManifestParser } from './manifestParser';
import { progressMessage, RateMeter } from './progressText';
import { scoreStore, type ScoreStore } from './scoreStore';
import { AUTO_SCORE_MAX_ROWS, boundedInteger } from './settingsBounds';
import type { Services } from '../services/services';
import { outsideWorkspace } from './workspaceGuard';

const SELECTOR: vscode.DocumentSelector = ['csv', 'tsv', 'jsonl', 'plaintext'].flatMap((language) => [
  { language, scheme: 'file' },
  { language, scheme: 'untitled' },
]);

interface DocState {
  uri: vscode.Uri;
  version: number;
  parsed: ParsedManifest | null;
  parsing: { version: number; abort: AbortController; promise: Promise<ParsedManifest | null> } | null;
  /** By absolute path (several rows may name one file; edits move rows, not files). */
  results: Map<string, ImageResult>;
  readable: Map<string, Readability>;
  scoring: { cts: vscode.CancellationTokenSource; done: number; total: number } | null;
  /** Automatic scoring failed (engine unavailable): not retried until the engine changes or a manual run. */
  autoFailed: boolean;
  debounce: NodeJS.Timeout | undefined;
  checking: boolean;
  /** The summary as of the last decorate() (CodeLens reads it; recomputing per lens request is wasteful). */
  summary: ManifestSummary | null;
}

// p-values and MSPs read the same here as in the Inspect panel and the report (src/shared/format.ts).
const fmtP = formatP;
const fmtPct = formatMsp;

export function registerManifestFeatures(context: vscode.ExtensionContext, services: Services): void {
  const controller = new ManifestController(services, scoreStore(services));
  context.subscriptions.push(
    controller,
    vscode.languages.registerHoverProvider(SELECTOR, controller),
    vscode.languages.registerCodeLensProvider(SELECTOR, controller),
    vscode.commands.registerCommand('oodLens.scoreManifest', (uri?: unknown) => controller.scoreCommand(uri)),
    vscode.commands.registerCommand('oodLens.manifest.cancel', (uri: unknown) => typeof uri === 'string' && controller.cancel(uri)),
    vscode.commands.registerCommand('oodLens.manifest.openReport', (uri: unknown) => (typeof uri === 'string' ? controller.openReport(uri) : undefined)),
    vscode.commands.registerCommand('oodLens.manifest.inspect', (path: unknown) => controller.inspectRow(path)),
  );
}

export class ManifestController implements vscode.HoverProvider, vscode.CodeLensProvider, vscode.Disposable {
  private readonly docs = new Map<string, DocState>();
  private readonly disposables: vscode.Disposable[] = [];
  private readonly lensChanged = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.lensChanged.event;
  private readonly diagnostics = vscode.languages.createDiagnosticCollection('oodLens');
  private readonly parser = new ManifestParser();
  private classLabels: string[] = [];
  private readonly decoTimers = new Map<string, NodeJS.Timeout>();
  private readonly colors = {
    ood: new vscode.ThemeColor('oodLens.manifest.oodForeground'),
    label: new vscode.ThemeColor('oodLens.manifest.labelErrorForeground'),
    problem: new vscode.ThemeColor('oodLens.manifest.problemForeground'),
  };

  private readonly oodDeco = vscode.window.createTextEditorDecorationType({
    isWholeLine: true,
    backgroundColor: new vscode.ThemeColor('oodLens.manifest.oodBackground'),
    overviewRulerColor: new vscode.ThemeColor('oodLens.manifest.oodForeground'),
    overviewRulerLane: vscode.OverviewRulerLane.Right,
  });
  private readonly labelDeco = vscode.window.createTextEditorDecorationType({
    isWholeLine: true,
    backgroundColor: new vscode.ThemeColor('oodLens.manifest.labelErrorBackground'),
    overviewRulerColor: new vscode.ThemeColor('oodLens.manifest.labelErrorForeground'),
    overviewRulerLane: vscode.OverviewRulerLane.Center,
  });
  private readonly problemDeco = vscode.window.createTextEditorDecorationType({
    overviewRulerColor: new vscode.ThemeColor('oodLens.manifest.problemForeground'),
    overviewRulerLane: vscode.OverviewRulerLane.Left,
  });

  constructor(private readonly services: Services, private readonly store: ScoreStore) {
    // The pair's class names arrive with each load of the engine (the event below). Asking the engine for them
    // here would start the worker and load the models at activation, i.e. at VS Code's start-up.
    this.disposables.push(
      this.lensChanged,
      this.diagnostics,
      this.oodDeco,
      this.labelDeco,
      this.problemDeco,
      vscode.workspace.onDidOpenTextDocument((d) => this.schedule(d, 0)),
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length) this.schedule(e.document, e.document.lineCount > 5000 ? 800 : 400);
      }),
      vscode.workspace.onDidCloseTextDocument((d) => this.forget(d.uri)),
      vscode.window.onDidChangeVisibleTextEditors((eds) => eds.forEach((e) => (this.docs.has(e.document.uri.toString()) ? this.decorate(e.document.uri.toString()) : this.schedule(e.document, 0)))),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('oodLens.manifest.diagnostics')) for (const k of this.docs.keys()) this.decorate(k);
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.reparseAll()),
      vscode.workspace.onDidChangeWorkspaceFolders(() => this.reparseAll()),
      services.engine.onDidChangeEngine((result) => {
        this.classLabels = result instanceof Error ? [] : result.labels;
        // A new pair: scores from the old one no longer apply.
        for (const [k, st] of this.docs) {
          st.results.clear();
          st.autoFailed = false;
          this.decorate(k);
          void this.fillFromCache(st);
        }
      }),
      store.onDidChange(() => this.lensChanged.fire()),
    );
    for (const d of vscode.workspace.textDocuments) this.schedule(d, 0);
  }

  dispose(): void {
    for (const st of this.docs.values()) this.forget(st.uri);
    for (const d of this.disposables.splice(0)) d.dispose();
    this.parser.dispose();
  }

  private forget(uri: vscode.Uri): void {
    const key = uri.toString();
    const st = this.docs.get(key);
    if (!st) return;
    st.parsing?.abort.abort();
    st.scoring?.cts.cancel();
    clearTimeout(st.debounce);
    this.docs.delete(key);
    this.diagnostics.delete(uri);
  }

  private reparseAll(): void {
    for (const d of vscode.workspace.textDocuments) if (this.docs.has(d.uri.toString())) this.schedule(d, 0, true);
  }

  private isCandidate(doc: vscode.TextDocument): boolean {
    if (doc.uri.scheme !== 'file' && doc.uri.scheme !== 'untitled') return false;
    if (!['csv', 'tsv', 'jsonl', 'plaintext'].includes(doc.languageId)) return false;
    return formatForDocument(doc.languageId, doc.fileName) !== null;
  }

  private state(doc: vscode.TextDocument): DocState {
    const key = doc.uri.toString();
    let st = this.docs.get(key);
    if (!st) {
      st = { uri: doc.uri, version: -1, parsed: null, parsing: null, results: new Map(), readable: new Map(), scoring: null, autoFailed: false, debounce: undefined, checking: false, summary: null };
      this.docs.set(key, st);
    }
    return st;
  }

  private schedule(doc: vscode.TextDocument, delay: number, force = false): void {
    if (!this.isCandidate(doc)) return;
    const st = this.state(doc);
    if (!force && st.version === doc.version && (st.parsed || st.parsing)) return;
    clearTimeout(st.debounce);
    st.debounce = setTimeout(() => void this.ensureParsed(doc, force), delay);
  }

  private roots(): string[] {
    return (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
  }

  private baseDir(doc: vscode.TextDocument): string {
    if (doc.uri.scheme === 'file') return dirname(doc.uri.fsPath);
    return this.roots()[0] ?? process.cwd();
  }

  /** The parse of the document's current text (parsing it now if needed; an edit aborts an older parse). */
  private async ensureParsed(doc: vscode.TextDocument, force = false): Promise<ParsedManifest | null> {
    const st = this.state(doc);
    if (!force && st.parsed && st.version === doc.version) return st.parsed;
    if (!force && st.parsing && st.parsing.version === doc.version) return st.parsing.promise;
    st.parsing?.abort.abort();
    const format = formatForDocument(doc.languageId, doc.fileName);
    if (!format) return null;
    const abort = new AbortController();
    const version = doc.version;
    const started = Date.now();
    const promise = (async () => {
      try {
        // A saved file is read by the worker itself: its text never has to be copied out of the host.
        const fromDisk = doc.uri.scheme === 'file' && !doc.isDirty;
        const parsed = await this.parser.parse({
          format,
          baseDir: this.baseDir(doc),
          roots: this.roots(),
          restricted: !this.services.isTrusted(),
          signal: abort.signal,
          ...(fromDisk ? { path: doc.uri.fsPath } : { text: doc.getText() }),
        });
        if (abort.signal.aborted) return null;
        st.parsed = parsed;
        st.version = version;
        if (parsed.isManifest && parsed.rows.length > 5000) this.services.log.debug(`manifest ${doc.uri.fsPath}: ${parsed.rows.length} rows parsed in ${Date.now() - started} ms`);
        this.lensChanged.fire();
        this.decorate(doc.uri.toString());
        if (parsed.isManifest) void this.afterParse(doc, st);
        else this.diagnostics.delete(doc.uri);
        return parsed;
      } catch (err) {
        if ((err as Error).name !== 'AbortError') this.services.log.warn(`manifest ${doc.uri.fsPath}: ${(err as Error).message}`);
        return null;
      } finally {
        if (st.parsing?.abort === abort) st.parsing = null;
      }
    })();
    st.parsing = { version, abort, promise };
    return promise;
  }

  private async afterParse(doc: vscode.TextDocument, st: DocState): Promise<void> {
    await this.fillFromCache(st);
    const parsed = st.parsed;
    if (!parsed || st.scoring || st.autoFailed) return;
    const max = boundedInteger(vscode.workspace.getConfiguration('oodLens').get<number>('manifest.autoScoreMaxRows'), AUTO_SCORE_MAX_ROWS);
    // Small manifests score themselves: when opened, and for rows added since.
    const pending = this.uniquePaths(parsed).filter((p) => !st.results.has(p) && st.readable.get(p)?.ok);
    if (parsed.rows.length <= max && pending.length) await this.score(doc, st, false);
  }

  private uniquePaths(parsed: ParsedManifest): string[] {
    const s = new Set<string>();
    for (const r of parsed.rows) if (r.path && !r.problem) s.add(r.path);
    return [...s];
  }

  /** Existence checks and cached scores for every path (a few at a time, decorations refreshed as they come). */
  private async fillFromCache(st: DocState): Promise<void> {
    if (st.checking || !st.parsed) return;
    st.checking = true;
    try {
      const paths = this.uniquePaths(st.parsed).filter((p) => !st.readable.has(p) || !st.results.has(p));
      const opts = { roots: this.roots(), restricted: !this.services.isTrusted() };
      let next = 0;
      let last = Date.now();
      const worker = async () => {
        while (next < paths.length && this.docs.get(st.uri.toString()) === st) {
          const p = paths[next++];
          const r = await checkReadable(p, opts);
          st.readable.set(p, r);
          if (r.ok && !st.results.has(p)) {
            const hit = await this.store.lookup(p).catch(() => undefined);
            if (hit) st.results.set(p, hit);
          }
          if (Date.now() - last > 300) {
            last = Date.now();
            this.decorate(st.uri.toString());
          }
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      this.decorate(st.uri.toString());
    } finally {
      st.checking = false;
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Scoring

  /**
   * `oodLens.manifest.inspect` (the hover's Inspect link): the argument is checked again here, whatever
   * produced it — it must be the image path of a row of a manifest open in this window that may be read
   * (inside the workspace, links included, in Restricted Mode).
   */
  async inspectRow(path: unknown): Promise<void> {
    const shown = typeof path === 'string' ? visibleText(path, 200) : typeof path;
    const hasRow = (parsed: ParsedManifest) => {
      for (const r of parsed.rows) if (r.path === path && !r.problem) return true;
      return false;
    };
    const isRow = typeof path === 'string' && [...this.docs.values()].some((st) => st.parsed?.isManifest && hasRow(st.parsed));
    const refusal = !isRow
      ? 'it is not an image of a dataset manifest open in this window'
      : await checkReadable(path as string, { roots: this.roots(), restricted: !this.services.isTrusted() }).then((rd) => (rd.ok || rd.missing ? null : rd.problem));
    if (refusal) {
      this.services.log.warn(`manifest inspect refused for ${shown}: ${refusal}`);
      void vscode.window.showWarningMessage(`OOD Lens: not inspecting ${shown}: ${refusal}.`);
      return;
    }
    await this.services.openInspect([vscode.Uri.file(path as string)]);
  }

  async scoreCommand(arg?: unknown): Promise<void> {
    const uri = arg instanceof vscode.Uri ? arg : undefined;
    if (uri && !vscode.workspace.textDocuments.some((d) => d.uri.toString() === uri.toString())) {
      // Only documents already open, or (in Restricted Mode) files inside the workspace, are opened here.
      const refusal = uri.scheme !== 'file' ? 'not a file on disk' : !this.services.isTrusted() ? await outsideWorkspace(uri.fsPath, this.roots()) : null;
      if (refusal) {
        void vscode.window.showWarningMessage(`OOD Lens: not scoring ${visibleText(uri.fsPath, 200)}: ${refusal}.`);
        return;
      }
    }
    const doc = uri ? await vscode.workspace.openTextDocument(uri) : vscode.window.activeTextEditor?.document;
    if (!doc) {
      void vscode.window.showInformationMessage('OOD Lens: open a dataset manifest (CSV, TSV, JSONL or a list of image paths) to score it.');
      return;
    }
    if (!this.isCandidate(doc)) {
      void vscode.window.showWarningMessage(`OOD Lens: ${vscode.workspace.asRelativePath(doc.uri)} is not a CSV, TSV, JSONL or text file.`);
      return;
    }
    const parsed = await this.ensureParsed(doc);
    if (!parsed?.isManifest) {
      void vscode.window.showWarningMessage(`OOD Lens: no column of image paths found in ${vscode.workspace.asRelativePath(doc.uri)} (looked for a header such as path, image, file or filename, then for values ending in .png, .jpg, …).`);
      return;
    }
    const st = this.state(doc);
    if (st.scoring) {
      void vscode.window.showInformationMessage('OOD Lens: this manifest is being scored already.');
      return;
    }
    await this.score(doc, st, true);
  }

  cancel(uriString: string): void {
    this.docs.get(uriString)?.scoring?.cts.cancel();
  }

  private async score(doc: vscode.TextDocument, st: DocState, manual: boolean): Promise<void> {
    const parsed = st.parsed;
    if (!parsed) return;
    const key = doc.uri.toString();
    const cts = new vscode.CancellationTokenSource();
    st.scoring = { cts, done: 0, total: 0 };
    this.lensChanged.fire();
    const name = vscode.workspace.asRelativePath(doc.uri);
    try {
      const opts = { roots: this.roots(), restricted: !this.services.isTrusted() };
      const all = this.uniquePaths(parsed);
      // Re-check files now (they may have appeared or changed since the document was opened).
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < all.length && !cts.token.isCancellationRequested) {
            const p = all[next++];
            st.readable.set(p, await checkReadable(p, opts));
          }
        }),
      );
      const paths = all.filter((p) => st.readable.get(p)?.ok);
      st.scoring.total = paths.length;
      const run = async (progress?: vscode.Progress<{ message?: string; increment?: number }>, token?: vscode.CancellationToken) => {
        const sub = token?.onCancellationRequested(() => cts.cancel());
        const meter = new RateMeter();
        let lastPct = 0;
        try {
          return await this.store.scoreMany(paths, {
            token: cts.token,
            onResults: (batch) => {
              for (const { result } of batch) st.results.set(result.path, result);
              this.scheduleDecorate(key);
            },
            onProgress: (done, total, cached) => {
              if (st.scoring) st.scoring.done = done;
              meter.update(done - cached);
              const pct = (100 * done) / Math.max(1, total);
              progress?.report({ message: progressMessage(done, total, cached, meter), increment: pct - lastPct });
              lastPct = pct;
              this.lensChanged.fire();
            },
          });
        } finally {
          sub?.dispose();
        }
      };
      const outcome = manual
        ? await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `OOD Lens: scoring ${name}`, cancellable: true }, (p, t) => run(p, t))
        : await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: `OOD Lens: scoring ${name}` }, (p) => run(p));
      this.services.log.info(`manifest ${doc.uri.fsPath}: ${outcome.done} of ${outcome.total} images scored in ${outcome.seconds.toFixed(1)} s (${outcome.cached} from the cache)${outcome.cancelled ? ', cancelled' : ''}`);
      if (manual) {
        const s = this.summaryOf(st);
        if (s) void vscode.window.showInformationMessage(`OOD Lens: ${name}: ${formatSummary(s)}${outcome.cancelled ? ' (cancelled)' : ''}.`);
      }
      // A cancelled automatic run is not restarted by the next edit (the CodeLens still offers it).
      st.autoFailed = !manual && outcome.cancelled;
    } catch (err) {
      this.services.log.error(`manifest ${doc.uri.fsPath}: scoring failed: ${(err as Error).message}`);
      if (manual) void vscode.window.showErrorMessage(`OOD Lens: scoring ${name} failed: ${(err as Error).message}`, 'Show Log').then((a) => a && this.services.log.show());
      else st.autoFailed = true;
    } finally {
      cts.dispose();
      st.scoring = null;
      this.lensChanged.fire();
      this.decorate(key);
    }
  }

  async openReport(uriString: string): Promise<void> {
    const st = this.docs.get(uriString);
    if (!st?.parsed || !st.results.size) return;
    const pair = await this.services.engine.info();
    // The report's folder: the deepest folder holding the manifest's images (thumbnails load from under it).
    const folder = commonFolder([...st.results.keys()]) ?? (st.uri.scheme === 'file' ? dirname(st.uri.fsPath) : (this.roots()[0] ?? '/'));
    const results: Omit<ImageResult, 'details'>[] = [];
    const seen = new Set<string>();
    for (const r of st.parsed.rows) {
      if (!r.path || seen.has(r.path)) continue;
      const res = st.results.get(r.path);
      if (!res) continue;
      seen.add(r.path);
      const { details: _d, ...rest } = res;
      results.push({ ...rest, path: r.path });
    }
    const report: StoredReport = {
      version: 1,
      id: newReportId(),
      createdAt: new Date().toISOString(),
      folder,
      referenceFolder: null,
      pair,
      total: this.uniquePaths(st.parsed).length,
      cancelled: false,
      seconds: 0,
      cached: 0,
      results,
      sets: results.map((): RowSet => 'target'),
    };
    await ReportPanel.show(this.services, report);
  }

  // -------------------------------------------------------------------------------------------------------
  // Row states, decorations, diagnostics, CodeLens

  private rowState(st: DocState, row: ManifestRow): RowState {
    if (row.problem || !row.path) return { kind: 'problem', message: row.problem ?? 'no path' };
    const rd = st.readable.get(row.path);
    if (rd && !rd.ok) return rd.missing ? { kind: 'missing' } : { kind: 'problem', message: rd.problem };
    const r = st.results.get(row.path);
    if (!r) return { kind: 'pending' };
    return { kind: 'scored', score: r, disagreement: isLabelDisagreement(row.label, r, this.classLabels) };
  }

  private summaryOf(st: DocState): ManifestSummary | null {
    if (!st.parsed?.isManifest) return null;
    return st.summary ?? summarize(st.parsed.rows.map((r) => this.rowState(st, r)));
  }

  private scheduleDecorate(key: string): void {
    if (this.decoTimers.has(key)) return;
    this.decoTimers.set(
      key,
      setTimeout(() => {
        this.decoTimers.delete(key);
        this.decorate(key);
      }, 250),
    );
  }

  private readonly decoGeneration = new Map<string, number>();

  /** Recomputes decorations, diagnostics and the summary; a newer call supersedes a running one. */
  private decorate(key: string): void {
    void this.decorateAsync(key);
  }

  private async decorateAsync(key: string): Promise<void> {
    const gen = (this.decoGeneration.get(key) ?? 0) + 1;
    this.decoGeneration.set(key, gen);
    const st = this.docs.get(key);
    if (!st) return;
    const editors = vscode.window.visibleTextEditors.filter((e) => e.document.uri.toString() === key);
    const ood: vscode.DecorationOptions[] = [];
    const label: vscode.DecorationOptions[] = [];
    const problems: vscode.DecorationOptions[] = [];
    const diags: vscode.Diagnostic[] = [];
    const wantDiags = vscode.workspace.getConfiguration('oodLens').get<boolean>('manifest.diagnostics', false);
    const fresh = st.parsed && editors.every((e) => e.document.version === st.version);
    const states: RowState[] = [];
    const c = this.colors;
    if (st.parsed?.isManifest) {
      const rows = st.parsed.rows;
      for (let i = 0; i < rows.length; i++) {
        // Thousands of rows: yield now and then so that typing never waits for this.
        if (i % 1000 === 999) {
          await new Promise((r) => setImmediate(r));
          if (this.decoGeneration.get(key) !== gen || this.docs.get(key) !== st) return;
        }
        const row = rows.at(i);
        const state = this.rowState(st, row);
        states.push(state);
        if (!fresh) continue;
        const range = new vscode.Range(row.line, row.start, row.line, row.end);
        if (state.kind === 'scored') {
          const r = state.score as ImageResult;
          if (r.verdict === 'out-of-distribution') {
            const text = `OOD · p = ${fmtP(r.pValue)} · predicted ${r.label ?? '?'} (${fmtPct(r.msp)})`;
            ood.push({ range, renderOptions: { after: { contentText: `  ⚠ ${text}`, color: c.ood, margin: '0 0 0 1em' } } });
            if (wantDiags) diags.push(this.diag(range, `Out-of-distribution (p = ${fmtP(r.pValue)}): the prediction "${r.label}" (MSP ${fmtPct(r.msp)}) is unreliable.`, vscode.DiagnosticSeverity.Warning, 'out-of-distribution'));
          } else if (state.disagreement) {
            const text = `label ${row.label} ≠ predicted ${r.label} (${fmtPct(r.msp)})`;
            label.push({ range, renderOptions: { after: { contentText: `  ◆ possible label error: ${text}`, color: c.label, margin: '0 0 0 1em' } } });
            if (wantDiags) diags.push(this.diag(range, `Possible label error: labelled "${row.label}", the classifier predicts "${r.label}" with MSP ${fmtPct(r.msp)} on an in-distribution image.`, vscode.DiagnosticSeverity.Information, 'label-disagreement'));
          } else if (r.verdict === 'error') {
            problems.push({ range, renderOptions: { after: { contentText: `  ✖ ${r.error ?? 'error'}`, color: c.problem, margin: '0 0 0 1em' } } });
            if (wantDiags) diags.push(this.diag(range, `Cannot score ${row.rawPath}: ${r.error}`, vscode.DiagnosticSeverity.Warning, 'unreadable-image'));
          }
        } else if (state.kind === 'missing' || state.kind === 'problem') {
          const msg = state.kind === 'missing' ? 'file not found' : state.message;
          problems.push({ range, renderOptions: { after: { contentText: `  ✖ ${msg}`, color: c.problem, margin: '0 0 0 1em' } } });
          if (wantDiags) diags.push(this.diag(range, state.kind === 'missing' ? `File not found: ${row.path}` : msg, row.problem?.startsWith('malformed') ? vscode.DiagnosticSeverity.Error : vscode.DiagnosticSeverity.Warning, state.kind === 'missing' ? 'missing-file' : 'unreadable-row'));
        }
      }
    }
    st.summary = st.parsed?.isManifest ? summarize(states) : null;
    const stillFresh = editors.every((e) => e.document.version === st.version);
    if ((fresh && stillFresh) || !st.parsed?.isManifest) {
      for (const e of editors) {
        e.setDecorations(this.oodDeco, ood);
        e.setDecorations(this.labelDeco, label);
        e.setDecorations(this.problemDeco, problems);
      }
      if (wantDiags && st.parsed?.isManifest) this.diagnostics.set(st.uri, diags);
      else this.diagnostics.delete(st.uri);
    }
    this.lensChanged.fire();
  }

  private diag(range: vscode.Range, message: string, severity: vscode.DiagnosticSeverity, code: string): vscode.Diagnostic {
    const d = new vscode.Diagnostic(range, message, severity);
    d.source = 'OOD Lens';
    d.code = code;
    return d;
  }

  provideCodeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    const st = this.docs.get(doc.uri.toString());
    if (!st?.parsed?.isManifest) return [];
    const range = new vscode.Range(0, 0, 0, 0);
    const key = doc.uri.toString();
    const lenses: vscode.CodeLens[] = [];
    const n = st.parsed.rows.length.toLocaleString('en-US');
    if (st.scoring) {
      const { done, total } = st.scoring;
      lenses.push(new vscode.CodeLens(range, { title: `$(sync~spin) OOD Lens: scoring ${done.toLocaleString('en-US')} of ${total.toLocaleString('en-US')}…`, command: '' }));
      lenses.push(new vscode.CodeLens(range, { title: 'Cancel', command: 'oodLens.manifest.cancel', arguments: [key] }));
      return lenses;
    }
    const s = this.summaryOf(st);
    const anyScored = !!s && s.scored + s.problems > 0 && st.results.size > 0;
    lenses.push(
      new vscode.CodeLens(range, {
        title: anyScored ? '$(refresh) Rescore manifest' : `$(play) Score manifest (${n} rows)`,
        tooltip: `Score every image named in the ${st.parsed.pathColumn} column with the active pair`,
        command: 'oodLens.scoreManifest',
        arguments: [doc.uri],
      }),
    );
    if (s && (anyScored || s.missing || s.problems)) {
      lenses.push(new vscode.CodeLens(range, { title: formatSummary(s), tooltip: 'Open these results in the report view', command: anyScored ? 'oodLens.manifest.openReport' : '', arguments: [key] }));
    }
    return lenses;
  }

  // -------------------------------------------------------------------------------------------------------
  // Hover

  async provideHover(doc: vscode.TextDocument, pos: vscode.Position, token: vscode.CancellationToken): Promise<vscode.Hover | undefined> {
    if (!this.isCandidate(doc)) return undefined;
    const parsed = await this.ensureParsed(doc);
    if (!parsed?.isManifest || token.isCancellationRequested) return undefined;
    const row = parsed.rows.rowAtLine(pos.line);
    if (!row) return undefined;
    const onPath = pos.line === row.line && pos.character >= row.start && pos.character <= row.end;
    if (!onPath && !row.problem) return undefined;
    const range = new vscode.Range(row.line, row.start, row.line, row.end);
    const md = new vscode.MarkdownString(undefined, true);
    md.supportHtml = false;
    // Untrusted text (paths, labels, messages quoting them) goes through appendPlain; only our own commands run.
    md.isTrusted = { enabledCommands: [...HOVER_COMMANDS] };
    md.appendMarkdown('**OOD Lens**  \n');
    if (row.problem || !row.path) {
      ManifestController.renderProblem(md, row.problem ?? 'no image path on this row', row.problem ? row.path : null);
      return new vscode.Hover(md, range);
    }
    const st = this.state(doc);
    const rd = await checkReadable(row.path, { roots: this.roots(), restricted: !this.services.isTrusted() });
    st.readable.set(row.path, rd);
    if (!rd.ok) {
      ManifestController.renderProblem(md, rd.missing ? 'File not found' : rd.problem, row.path);
      return new vscode.Hover(md, range);
    }
    let result = st.results.get(row.path) ?? (await this.store.lookup(row.path).catch(() => undefined));
    if (!result) {
      if (token.isCancellationRequested) return undefined;
      const cts = new vscode.CancellationTokenSource();
      const sub = token.onCancellationRequested(() => cts.cancel());
      try {
        const out = await this.store.scoreMany([row.path], { token: cts.token });
        result = out.results[0];
      } catch (err) {
        md.appendMarkdown('$(error) Could not score this image: ');
        appendPlain(md, (err as Error).message);
        return new vscode.Hover(md, range);
      } finally {
        sub.dispose();
        cts.dispose();
      }
      if (!result) return undefined;
    }
    if (result.verdict !== 'error') st.results.set(row.path, result);
    this.scheduleDecorate(doc.uri.toString());
    ManifestController.renderHover(md, row, result, this.classLabels, vscode.Uri.file(row.path).toString());
    return new vscode.Hover(md, range);
  }

  /** A hover for a row that cannot be scored: the problem, then the path as written (both plain text). */
  static renderProblem(md: MarkdownSink, problem: string, path: string | null): void {
    md.appendMarkdown('$(error) ');
    appendPlain(md, problem);
    if (path) {
      md.appendMarkdown('  \n');
      appendPlain(md, path);
    }
  }

  /** The scored part of a hover; `md` is a `vscode.MarkdownString` (tests pass VS Code's escaping algorithm). */
  static renderHover(md: MarkdownSink, row: ManifestRow, r: ImageResult, classLabels: readonly string[], fileUri: string): void {
    const thumbnail = thumbnailMarkdown(fileUri, 96);
    if (thumbnail) md.appendMarkdown(`${thumbnail}\n\n`);
    if (r.verdict === 'error') {
      md.appendMarkdown('$(error) Cannot score this image: ');
      appendPlain(md, r.error ?? 'unknown error');
      return;
    }
    const verdict =
      r.verdict === 'out-of-distribution'
        ? '$(warning) **Out-of-distribution**'
        : r.verdict === 'in-distribution'
          ? '$(pass) **In-distribution**'
          : '$(question) **Uncalibrated** (the pair has no calibration: no p-value)';
    md.appendMarkdown(`${verdict}${r.pValue !== null ? ` · p = ${fmtP(r.pValue)}` : ''}  \n`);
    md.appendMarkdown('Predicted **');
    appendPlain(md, r.label ?? String(r.prediction));
    md.appendMarkdown(`** · MSP ${fmtPct(r.msp)}${r.verdict === 'out-of-distribution' ? ' — treat this prediction as unreliable' : ''}  \n`);
    const pv: string[] = [];
    for (const test of ['elbo', 'complexity', 'confidence'] as const) if (r.pValues[test] !== null && r.pValues[test] !== undefined) pv.push(testPLabel(test, r.pValues[test]));
    md.appendMarkdown(`ELBO ${formatNats(r.elbo)} nats${r.elboBitsPerDim !== null ? ` (${formatBitsPerDim(r.elboBitsPerDim)} bits/dim)` : ''}${pv.length ? ` · ${pv.join(' · ')}` : ''}  \n`);
    if (row.label !== null) {
      if (isLabelDisagreement(row.label, r, classLabels)) {
        md.appendMarkdown('$(alert) **Possible label error**: labelled "');
        appendPlain(md, row.label);
        md.appendMarkdown('", the classifier says "');
        appendPlain(md, r.label ?? '');
        md.appendMarkdown(`" with MSP ${fmtPct(r.msp)}  \n`);
      } else {
        md.appendMarkdown('Label: ');
        appendPlain(md, row.label);
        md.appendMarkdown('  \n');
      }
    }
    md.appendMarkdown(`\n${commandLink('$(telescope) Inspect', 'oodLens.manifest.inspect', [row.path], 'Open the Inspect panel for this image')}`);
  }
}
