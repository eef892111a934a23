/**
 * "OOD Lens: Open Results…": JSONL result files of the CLI (`--format jsonl`, shards from a cluster or their
 * merge) in the report panel, so that a large run is browsed where the dataset is. Several files are merged
 * as `ood-lens merge` does (in input order, an input given twice kept once, files of another pair or
 * calibration refused with their name). Files are read streamed, off the critical path of the host: a 1 MB
 * chunk at a time.
 */
import * as vscode from 'vscode';
import type { ImageResult } from '../inference/engine';
import { headerMismatch, mergedRecords, readResultsHeader, type ResultsHeader, splitLine } from '../inference/datasets/resultsFile';
import type { RowSet } from '../shared/reportProtocol';
import type { StoredReport } from '../webviews/reportData';
import { newReportId, ReportPanel } from '../webviews/reportPanel';
import type { Services } from '../services/services';
import { reportImageFolder } from './workspaceGuard';

/** The report panel keeps every row in memory (host and webview): past this many, the rest is left out, and said. */
export const MAX_REPORT_ROWS = 200_000;

export function registerOpenResults(context: vscode.ExtensionContext, services: Services): void {
  context.subscriptions.push(
    vscode.commands.registerCommand('oodLens.openResults', async (uri?: vscode.Uri, uris?: vscode.Uri[]) => {
      try {
        await openResults(services, uris?.length ? uris : uri ? [uri] : undefined);
      } catch (err) {
        services.log.error(`open results: ${(err as Error).message}`);
        void vscode.window.showErrorMessage(`OOD Lens: ${(err as Error).message}`, 'Show Log').then((a) => a && services.log.show());
      }
    }),
  );
}

async function openResults(services: Services, given?: vscode.Uri[]): Promise<void> {
  const uris =
    given ??
    (await vscode.window.showOpenDialog({
      canSelectMany: true,
      openLabel: 'Open Results',
      title: 'OOD Lens: open result files (ood-lens score --format jsonl, shards or merged)',
      filters: { 'OOD Lens results (JSON Lines)': ['jsonl', 'ndjson'], 'All files': ['*'] },
    }));
  if (!uris?.length) return;
  const files = uris.filter((u) => u.scheme === 'file').map((u) => u.fsPath);
  if (!files.length) throw new Error('result files must be on this machine\'s file system');
  const headers: ResultsHeader[] = [];
  for (const f of files) headers.push(await readResultsHeader(f));
  for (let i = 1; i < files.length; i++) {
    const why = headerMismatch(headers[0], headers[i]);
    if (why) throw new Error(`${files[i]} was scored with ${why} than ${files[0]}; results of different pairs or calibrations cannot be shown as one report`);
  }
  const name = files.length === 1 ? vscode.workspace.asRelativePath(files[0]) : `${files.length} result files`;
  const read = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `OOD Lens: reading ${name}`, cancellable: true }, async (progress, token) => {
    const results: Omit<ImageResult, 'details'>[] = [];
    const seen = new Set<string>();
    let duplicates = 0;
    let total = 0;
    let last = Date.now();
    const torn: string[] = [];
    for await (const { record } of mergedRecords(files, (f, line) => torn.push(`${f}, line ${line}`))) {
      if (token.isCancellationRequested) return { results, duplicates, total, torn, cancelled: true };
      const { result, origin } = splitLine(record);
      const id = `${origin.arg}\u0000${origin.row ?? ''}\u0000${origin.key}`;
      if (seen.has(id)) {
        duplicates++;
        continue;
      }
      seen.add(id);
      total++;
      if (results.length < MAX_REPORT_ROWS) results.push(result);
      if (Date.now() - last > 250) {
        last = Date.now();
        progress.report({ message: `${total.toLocaleString('en-US')} results` });
      }
    }
    return { results, duplicates, total, torn, cancelled: false };
  });
  if (read.cancelled && !read.results.length) return;
  const folder = await reportFolder(services, read.results.map((r) => r.path), files[0]);
  const report: StoredReport = {
    version: 1,
    id: newReportId(),
    createdAt: new Date().toISOString(),
    folder,
    referenceFolder: null,
    pair: headers[0].pair,
    total: read.total,
    cancelled: read.cancelled,
    seconds: 0,
    cached: 0,
    results: read.results,
    sets: read.results.map((): RowSet => 'target'),
  };
  services.log.info(`open results: ${files.join(', ')}: ${read.total} results${read.duplicates ? `, ${read.duplicates} duplicates left out` : ''}${read.total > read.results.length ? `, the first ${read.results.length} shown` : ''}`);
  await ReportPanel.show(services, report);
  const notes: string[] = [];
  if (read.total > read.results.length) notes.push(`showing the first ${read.results.length.toLocaleString('en-US')} of ${read.total.toLocaleString('en-US')} results (the report view holds at most ${MAX_REPORT_ROWS.toLocaleString('en-US')}; \`ood-lens merge … --format csv\` has them all)`);
  if (read.torn.length) notes.push(`${read.torn.join('; ')}: incomplete last line (a run killed while writing it), left out; \`ood-lens score … --resume\` scores its input again`);
  if (read.duplicates) notes.push(`${read.duplicates.toLocaleString('en-US')} inputs appeared more than once (the first result is shown)`);
  if (notes.length) void vscode.window.showWarningMessage(`OOD Lens: ${name}: ${notes.join('; ')}.`);
}

/** The folder the report's thumbnails load from (see reportImageFolder), with this window's trust and folders. */
function reportFolder(services: Services, paths: string[], resultsFile: string): Promise<string> {
  const roots = services.isTrusted() ? null : (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
  return reportImageFolder(paths, resultsFile, roots);
}
