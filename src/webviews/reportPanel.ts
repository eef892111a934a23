/**
 * The folder report panel (viewType `oodLens.report`): a webview with the virtualised results table, the
 * barcode plots, histograms, per-verdict counts and — with a reference folder — detection metrics and ROC
 * curves. The scan's results are kept in workspace storage (reports/<id>.json), so a panel restored after a
 * reload re-renders from them; the webview's own state (sort, filter, scroll) comes back via setState.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { Services } from '../services/services';
import { writeFileAtomicAsync } from '../inference/io/atomicFile';
import { type HostToReport, isReportToHost, type ReportViewState } from '../shared/reportProtocol';
import { buildReportData, exportCsv, exportJson, type StoredReport } from './reportData';
import { buildReportHtml, makeReportNonce } from './reportHtml';

export const REPORT_VIEW_TYPE = 'oodLens.report';
const KEEP_REPORTS = 20;

function reportsDir(context: vscode.ExtensionContext): string {
  return join((context.storageUri ?? context.globalStorageUri).fsPath, 'reports');
}

export function newReportId(): string {
  return `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`;
}

async function saveReport(context: vscode.ExtensionContext, report: StoredReport): Promise<void> {
  const dir = reportsDir(context);
  await writeFileAtomicAsync(join(dir, `${report.id}.json`), JSON.stringify(report));
  // Keep the newest reports only.
  const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));
  if (files.length > KEEP_REPORTS) {
    const dated = await Promise.all(files.map(async (f) => ({ f, t: (await stat(join(dir, f)).catch(() => null))?.mtimeMs ?? 0 })));
    dated.sort((a, b) => b.t - a.t);
    for (const { f } of dated.slice(KEEP_REPORTS)) await rm(join(dir, f), { force: true });
  }
}

async function loadReport(context: vscode.ExtensionContext, id: string): Promise<StoredReport | undefined> {
  if (!/^[\w-]+$/.test(id)) return undefined;
  try {
    const data = JSON.parse(await readFile(join(reportsDir(context), `${id}.json`), 'utf8')) as StoredReport;
    return data?.version === 1 && Array.isArray(data.results) ? data : undefined;
  } catch {
    return undefined;
  }
}

/** The report page for a webview (see reportHtml.ts). */
export function reportHtml(webview: vscode.Webview, extensionUri: vscode.Uri, title: string): string {
  return buildReportHtml({
    cspSource: webview.cspSource,
    nonce: makeReportNonce(),
    scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', 'report.js')).toString(),
    styleUri: webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', 'report.css')).toString(),
    title,
  });
}

export class ReportPanel {
  private static readonly open = new Map<string, ReportPanel>();

  static async show(services: Services, report: StoredReport): Promise<void> {
    await saveReport(services.context, report).catch((err: Error) => services.log.warn(`report: cannot save ${report.id} to workspace storage (${err.message}); it will not survive a reload`));
    const panel = vscode.window.createWebviewPanel(REPORT_VIEW_TYPE, ReportPanel.title(report), vscode.ViewColumn.Active, ReportPanel.options(services, report));
    new ReportPanel(services, panel, report);
  }

  static registerSerializer(services: Services): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(REPORT_VIEW_TYPE, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
        const id = (state as ReportViewState | undefined)?.reportId;
        const report = id ? await loadReport(services.context, id) : undefined;
        if (!report) {
          panel.webview.options = { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(services.context.extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(services.context.extensionUri, 'media')] };
          panel.webview.html = reportHtml(panel.webview, services.context.extensionUri, 'OOD report');
          const post = () => void panel.webview.postMessage({ type: 'missing', message: 'The results of this report are no longer in workspace storage. Run OOD Lens: Score Folder… again.' } satisfies HostToReport);
          panel.webview.onDidReceiveMessage((m) => isReportToHost(m) && m.type === 'ready' && post());
          return;
        }
        panel.webview.options = ReportPanel.options(services, report);
        new ReportPanel(services, panel, report);
      },
    });
  }

  private static title(report: StoredReport): string {
    const name = report.folder.split(/[\\/]/).filter(Boolean).pop() ?? report.folder;
    return `OOD: ${name}`;
  }

  private static options(services: Services, report: StoredReport): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    const ext = services.context.extensionUri;
    const roots = [vscode.Uri.joinPath(ext, 'dist', 'webview'), vscode.Uri.joinPath(ext, 'media'), vscode.Uri.file(report.folder)];
    if (report.referenceFolder) roots.push(vscode.Uri.file(report.referenceFolder));
    return { enableScripts: true, localResourceRoots: roots, enableFindWidget: true };
  }

  private readonly disposables: vscode.Disposable[] = [];

  private constructor(private readonly services: Services, private readonly panel: vscode.WebviewPanel, private readonly report: StoredReport) {
    ReportPanel.open.get(report.id)?.panel.dispose();
    ReportPanel.open.set(report.id, this);
    panel.title = ReportPanel.title(report);
    panel.webview.html = reportHtml(panel.webview, services.context.extensionUri, panel.title);
    this.disposables.push(
      panel.webview.onDidReceiveMessage((m: unknown) => void this.onMessage(m)),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  private post(message: HostToReport): void {
    void this.panel.webview.postMessage(message);
  }

  private async onMessage(m: unknown): Promise<void> {
    if (!isReportToHost(m)) return;
    try {
      switch (m.type) {
        case 'ready': {
          const w = this.panel.webview;
          this.post({
            type: 'load',
            data: buildReportData(this.report),
            thumbBase: {
              target: w.asWebviewUri(vscode.Uri.file(this.report.folder)).toString(),
              reference: this.report.referenceFolder ? w.asWebviewUri(vscode.Uri.file(this.report.referenceFolder)).toString() : null,
            },
          });
          break;
        }
        case 'open': {
          const r = this.report.results[m.id];
          if (r) await this.services.openInspect([vscode.Uri.file(r.path)]);
          break;
        }
        case 'export':
          await this.export(m.format);
          break;
      }
    } catch (err) {
      this.services.log.error(`report: ${(err as Error).message}`);
      void vscode.window.showErrorMessage(`OOD Lens: ${(err as Error).message}`, 'Show Log').then((a) => a && this.services.log.show());
    }
  }

  private async export(format: 'csv' | 'json'): Promise<void> {
    const name = this.report.folder.split(/[\\/]/).filter(Boolean).pop() ?? 'report';
    const defaultDir = vscode.workspace.workspaceFolders?.[0]?.uri ?? vscode.Uri.file(this.report.folder);
    const target = await vscode.window.showSaveDialog({
      title: `Export OOD results as ${format.toUpperCase()}`,
      defaultUri: vscode.Uri.joinPath(defaultDir, `ood-${name}.${format}`),
      filters: format === 'csv' ? { CSV: ['csv'] } : { JSON: ['json'] },
    });
    if (!target) return;
    const text = format === 'csv' ? exportCsv(this.report) : exportJson(this.report);
    if (target.scheme === 'file') await writeFileAtomicAsync(target.fsPath, text);
    else await vscode.workspace.fs.writeFile(target, Buffer.from(text, 'utf8'));
    this.services.log.info(`report: exported ${this.report.results.length} results to ${target.fsPath}`);
    this.post({ type: 'exported', format, path: target.fsPath });
    void vscode.window.showInformationMessage(`OOD Lens: exported ${this.report.results.length.toLocaleString('en-US')} results to ${vscode.workspace.asRelativePath(target)}.`, 'Open').then((a) => {
      if (a) void vscode.window.showTextDocument(target);
    });
  }

  private dispose(): void {
    if (ReportPanel.open.get(this.report.id) === this) ReportPanel.open.delete(this.report.id);
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
