/**
 * The Create Pair result panel (viewType `oodLens.fitResult`): the new pair's held-out false alarms, accuracy,
 * split, what fit read and decided, and one histogram per calibrated score with the score at which its test
 * fires. The webview keeps the report in its state (setState), so the serializer restores the panel after a
 * reload. CSP and resource roots as for the other panels: scripts by nonce, only dist/webview and media.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import * as vscode from 'vscode';
import type { Services } from '../services/services';
import { makeNonce } from './html';
import { type FitReport, type FitResultViewState, type HostToFitResult, isFitReport, isFitResultToHost } from '../shared/fitReport';
import { buildFitResultHtml } from './fitResultHtml';

export const FIT_RESULT_VIEW_TYPE = 'oodLens.fitResult';

export class FitResultPanel {
  static async show(services: Services, report: FitReport, o: { selected: boolean; kept?: boolean }): Promise<void> {
    const panel = vscode.window.createWebviewPanel(FIT_RESULT_VIEW_TYPE, FitResultPanel.title(report), vscode.ViewColumn.Active, FitResultPanel.options(services));
    new FitResultPanel(services, panel, { report, selected: o.selected, kept: o.kept === true });
  }

  static registerSerializer(services: Services): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(FIT_RESULT_VIEW_TYPE, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
        const s = state as Partial<FitResultViewState> | undefined;
        panel.webview.options = FitResultPanel.options(services);
        if (!s || !isFitReport(s.report)) {
          panel.dispose();
          return;
        }
        new FitResultPanel(services, panel, { report: s.report, selected: s.selected === true, kept: s.kept === true });
      },
    });
  }

  private static title(report: FitReport): string {
    return `OOD pair: ${report.name}`;
  }

  private static options(services: Services): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    const ext = services.context.extensionUri;
    return { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(ext, 'dist', 'webview'), vscode.Uri.joinPath(ext, 'media')], enableFindWidget: true };
  }

  private readonly disposables: vscode.Disposable[] = [];

  private constructor(private readonly services: Services, private readonly panel: vscode.WebviewPanel, private readonly state: FitResultViewState) {
    const ext = services.context.extensionUri;
    const w = panel.webview;
    panel.title = FitResultPanel.title(state.report);
    w.html = buildFitResultHtml({
      cspSource: w.cspSource,
      nonce: makeNonce(),
      scriptUri: w.asWebviewUri(vscode.Uri.joinPath(ext, 'dist', 'webview', 'fitResult.js')).toString(),
      styleUri: w.asWebviewUri(vscode.Uri.joinPath(ext, 'media', 'fitResult.css')).toString(),
      title: panel.title,
    });
    this.disposables.push(
      w.onDidReceiveMessage((m: unknown) => void this.onMessage(m)),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  private async onMessage(m: unknown): Promise<void> {
    if (!isFitResultToHost(m)) return;
    const { report } = this.state;
    try {
      switch (m.type) {
        case 'ready':
          void this.panel.webview.postMessage({ type: 'load', report, selected: this.state.selected, kept: this.state.kept } satisfies HostToFitResult);
          break;
        case 'openManifest':
          // The path comes from the host's report (or restored state): open only a pair manifest that exists.
          if (basename(report.manifestPath) !== 'ood-pair.json' || !existsSync(report.manifestPath)) throw new Error(`${report.manifestPath} no longer exists`);
          await vscode.window.showTextDocument(vscode.Uri.file(report.manifestPath), { viewColumn: vscode.ViewColumn.Beside });
          break;
        case 'scoreFolder':
          await vscode.commands.executeCommand('oodLens.scoreFolder');
          break;
        case 'selectPair':
          await vscode.commands.executeCommand('oodLens.selectPair');
          break;
      }
    } catch (err) {
      this.services.log.error(`pair result panel: ${(err as Error).message}`);
      void vscode.window.showErrorMessage(`OOD Lens: ${(err as Error).message}`);
    }
  }

  private dispose(): void {
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
