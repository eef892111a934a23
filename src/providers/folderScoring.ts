/**
 * "OOD Lens: Score Folder…" (command palette, folder picker) and "Score folder for out-of-distribution"
 * (Explorer context menu): every image under a folder, recursively, with a cancellable progress
 * notification (count, rate, ETA), optionally against a reference in-distribution folder; then the report.
 */
import * as vscode from 'vscode';
import { errorResult, type ImageResult } from '../inference/engineTypes';
import { walkImages } from '../inference/io/files';
import type { RowSet } from '../shared/reportProtocol';
import type { StoredReport } from '../webviews/reportData';
import { newReportId, ReportPanel } from '../webviews/reportPanel';
import { showPairError } from '../services/docs';
import { progressMessage, RateMeter } from './progressText';
import { scoreStore, type ScoreManyOutcome } from './scoreStore';
import type { Services } from '../services/services';
import { outsideWorkspace } from './workspaceGuard';

export function registerFolderScoring(context: vscode.ExtensionContext, services: Services): void {
  scoreStore(services);
  context.subscriptions.push(
    ReportPanel.registerSerializer(services),
    vscode.commands.registerCommand('oodLens.scoreFolder', async (arg?: vscode.Uri) => {
      const folder = arg instanceof vscode.Uri ? arg : await pickFolder('Score Folder', 'Choose a folder of images to score');
      if (folder) await scoreFolderFlow(services, folder);
    }),
    vscode.commands.registerCommand('oodLens.scoreFolderFromExplorer', async (uri?: vscode.Uri, uris?: vscode.Uri[]) => {
      const folder = uris?.[0] ?? uri ?? (await pickFolder('Score Folder', 'Choose a folder of images to score'));
      if (folder) await scoreFolderFlow(services, folder);
    }),
  );
}

async function pickFolder(openLabel: string, title: string): Promise<vscode.Uri | undefined> {
  const picked = await vscode.window.showOpenDialog({
    canSelectFolders: true,
    canSelectFiles: false,
    canSelectMany: false,
    openLabel,
    title,
    defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
  });
  return picked?.[0];
}

async function askReference(folder: vscode.Uri): Promise<vscode.Uri | null | undefined> {
  type Item = vscode.QuickPickItem & { ref: boolean };
  const choice = await vscode.window.showQuickPick<Item>(
    [
      { label: '$(circle-slash) No reference', description: 'score this folder only', ref: false },
      { label: '$(folder-opened) Compare with a reference folder…', description: 'in-distribution images: AUROC, AUPR, FPR@95%TPR and ROC curves per score', ref: true },
    ],
    { title: `Score ${vscode.workspace.asRelativePath(folder)}`, placeHolder: 'Compare with a reference in-distribution folder?', ignoreFocusOut: true },
  );
  if (!choice) return undefined;
  if (!choice.ref) return null;
  const ref = await pickFolder('Use as Reference', 'Choose a folder of in-distribution (reference) images');
  if (!ref) return undefined;
  if (ref.fsPath === folder.fsPath) {
    void vscode.window.showWarningMessage('OOD Lens: the reference folder is the folder being scored; scoring without a reference.');
    return null;
  }
  return ref;
}

/** Image paths under a folder; what could not be listed (unreadable subfolders) goes to `problems` as error records. */
async function listImages(folder: string, token: vscode.CancellationToken, onCount: (n: number) => void, problems: ImageResult[]): Promise<string[]> {
  const ac = new AbortController();
  const sub = token.onCancellationRequested(() => ac.abort());
  const out: string[] = [];
  try {
    for await (const p of walkImages(folder, true, ac.signal)) {
      if (p.error !== undefined) {
        problems.push(errorResult(p.path, p.error));
        continue;
      }
      out.push(p.path);
      if (out.length % 500 === 0) onCount(out.length);
    }
  } finally {
    sub.dispose();
  }
  return out;
}

function workspaceRoots(): string[] {
  return (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
}

/**
 * Restricted Mode: the listed files whose real path lies outside the workspace folders (symbolic links out of
 * the workspace), by index, with the reason. Checked a few at a time.
 */
async function refusedInRestrictedMode(paths: readonly string[], token: vscode.CancellationToken): Promise<Map<number, string>> {
  const roots = workspaceRoots();
  const refused = new Map<number, string>();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < paths.length && !token.isCancellationRequested) {
        const i = next++;
        const reason = await outsideWorkspace(paths[i], roots);
        if (reason) refused.set(i, reason);
      }
    }),
  );
  return refused;
}

export async function scoreFolderFlow(services: Services, folderUri: vscode.Uri): Promise<void> {
  const { log, engine } = services;
  if (folderUri.scheme !== 'file') {
    void vscode.window.showErrorMessage(`OOD Lens: only local folders can be scored (${folderUri.toString()}).`);
    return;
  }
  if (!services.isTrusted()) {
    const refusal = await outsideWorkspace(folderUri.fsPath, workspaceRoots());
    if (refusal) {
      void vscode.window.showWarningMessage(`OOD Lens: not scoring ${folderUri.fsPath}: ${refusal}.`);
      return;
    }
  }
  const reference = await askReference(folderUri);
  if (reference === undefined) return;
  if (reference && !services.isTrusted()) {
    const refusal = await outsideWorkspace(reference.fsPath, workspaceRoots());
    if (refusal) {
      void vscode.window.showWarningMessage(`OOD Lens: not using ${reference.fsPath} as the reference: ${refusal}.`);
      return;
    }
  }
  const folder = folderUri.fsPath;
  const name = vscode.workspace.asRelativePath(folderUri);

  let outcome;
  try {
    outcome = await runScan(services, folderUri, reference);
  } catch (err) {
    log.error(`score folder ${folder}: ${(err as Error).message}`);
    void vscode.window.showErrorMessage(`OOD Lens: scoring ${name} failed: ${(err as Error).message}`, 'Show Log').then((a) => a && log.show());
    return;
  }
  if (!outcome) return;
  if (outcome.empty) {
    void vscode.window.showWarningMessage(`OOD Lens: no images under ${name} (looked for png, jpg, webp, gif, bmp, tiff, avif…).`);
    return;
  }
  const { paths, sets, result } = outcome;
  const results: Omit<ImageResult, 'details'>[] = [];
  const keptSets: RowSet[] = [];
  result.results.forEach((r, i) => {
    if (!r) return;
    const { details: _d, ...rest } = r;
    results.push(rest);
    keptSets.push(sets[i]);
  });
  let pair;
  try {
    pair = await engine.info();
  } catch (err) {
    void showPairError(`OOD Lens: the pair is not available (${(err as Error).message}).`, log);
    return;
  }
  const errors = results.filter((r) => r.verdict === 'error').length;
  log.info(
    `score folder ${folder}${reference ? ` (reference ${reference.fsPath})` : ''}: ${result.done} of ${paths.length} images in ${result.seconds.toFixed(1)} s` +
      ` (${result.cached} from the cache, ${errors} errors)${result.cancelled ? ', cancelled' : ''}`,
  );
  const report: StoredReport = {
    version: 1,
    id: newReportId(),
    createdAt: new Date().toISOString(),
    folder,
    referenceFolder: reference?.fsPath ?? null,
    pair,
    total: paths.length,
    cancelled: result.cancelled,
    seconds: result.seconds,
    cached: result.cached,
    results,
    sets: keptSets,
  };
  if (!results.length) {
    void vscode.window.showInformationMessage(`OOD Lens: scoring of ${name} was cancelled before any image was scored.`);
    return;
  }
  await ReportPanel.show(services, report);
}

async function runScan(services: Services, folderUri: vscode.Uri, reference: vscode.Uri | null) {
  const folder = folderUri.fsPath;
  const store = scoreStore(services);
  const name = vscode.workspace.asRelativePath(folderUri);
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `OOD Lens: scoring ${name}`, cancellable: true },
    async (progress, token) => {
      progress.report({ message: 'finding images…' });
      let target: string[];
      let refs: string[] = [];
      const targetProblems: ImageResult[] = [];
      const referenceProblems: ImageResult[] = [];
      try {
        target = await listImages(folder, token, (n) => progress.report({ message: `finding images… ${n.toLocaleString('en-US')}` }), targetProblems);
        if (reference) refs = await listImages(reference.fsPath, token, (n) => progress.report({ message: `finding reference images… ${n.toLocaleString('en-US')}` }), referenceProblems);
      } catch (err) {
        throw new Error(`cannot list ${folder}: ${(err as Error).message}`);
      }
      if (token.isCancellationRequested) return undefined;
      const paths = [...target, ...refs];
      const sets: RowSet[] = [...target.map((): RowSet => 'target'), ...refs.map((): RowSet => 'reference')];
      if (!target.length && !targetProblems.length) return { empty: true as const };
      // Restricted Mode: symbolic links out of the workspace are not read; they become error records.
      const refused = services.isTrusted() ? new Map<number, string>() : await refusedInRestrictedMode(paths, token);
      if (token.isCancellationRequested) return undefined;
      if (refused.size) services.log.warn(`score folder ${folder}: ${refused.size} files link outside the workspace and are not read in Restricted Mode`);
      const allowed = paths.map((_, i) => i).filter((i) => !refused.has(i));
      const meter = new RateMeter();
      let lastPct = 0;
      const scored = await store.scoreMany(allowed.map((i) => paths[i]), {
        token,
        onProgress: (done, _total, cached) => {
          meter.update(done - cached);
          const pct = (100 * (done + refused.size)) / paths.length;
          progress.report({ message: progressMessage(done + refused.size, paths.length, cached, meter), increment: pct - lastPct });
          lastPct = pct;
        },
      });
      const results: ScoreManyOutcome['results'] = new Array(paths.length);
      for (const [i, reason] of refused) results[i] = errorResult(paths[i], reason);
      allowed.forEach((i, k) => (results[i] = scored.results[k]));
      const result: ScoreManyOutcome = { ...scored, results, done: scored.done + refused.size, total: paths.length };
      // Folders that could not be listed are rows of their own (error records), never silently missing.
      result.results.push(...targetProblems, ...referenceProblems);
      paths.push(...targetProblems.map((r) => r.path), ...referenceProblems.map((r) => r.path));
      sets.push(...targetProblems.map((): RowSet => 'target'), ...referenceProblems.map((): RowSet => 'reference'));
      return { empty: false as const, paths, sets, targetCount: target.length, result };
    },
  );
}
