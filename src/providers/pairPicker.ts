/**
 * The pair status-bar item ("$(beaker) mnist · CPU") and the `oodLens.selectPair` quick pick: the built-in
 * pairs shipped in the extension's models/ folder, the ood-pair.json files of the workspace, and Browse….
 * The choice is written to `oodLens.pair` (workspace settings in a workspace). Workspace pairs need trust:
 * in Restricted Mode their files are not even read (the list shows their folders). Every read is
 * asynchronous, size-bounded and, for workspace pairs, refuses symbolic links out of the workspace
 * (pairManifestFile.ts).
 */
import { readdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as vscode from 'vscode';
import type { EnginePairInfo } from '../shared/engineProtocol';
import { showPairError } from '../services/docs';
import type { EngineHost } from './engineHost';
import { appendPlain } from './hoverMarkdown';
import { missingPairFiles, PairFileError, readPairManifestText } from './pairManifestFile';
import { configuredPairName, pairFactsLine } from './pairFacts';
import { insideWorkspace, pairSettingValue } from './pairPath';
import type { Services } from '../services/services';
import { isStagingPath, STAGING_PREFIX } from '../inference/fit/outFolder';

/** "cpu" → "CPU", "cuda + cpu" → "CUDA + CPU". */
export function providerLabel(provider: string): string {
  return provider
    .split('+')
    .map((p) => p.trim().toUpperCase())
    .join(' + ');
}

interface PairChoice extends vscode.QuickPickItem {
  manifest?: string;
  builtIn?: boolean;
  browse?: boolean;
}

/**
 * The name a manifest declares and the facts that tell it from other pairs (model, input size, scaling, tests,
 * held-out false alarms, date) as the row's detail (bounded, asynchronous read; `roots` for workspace pairs).
 */
async function readName(manifest: string, roots?: readonly string[]): Promise<{ name: string; description?: string }> {
  try {
    const m = JSON.parse(await readPairManifestText(manifest, { roots })) as { name?: unknown; description?: unknown };
    const modified = await stat(manifest).then((st) => st.mtime, () => undefined);
    return { name: typeof m.name === 'string' ? m.name : dirname(manifest), description: pairFactsLine(m, modified) };
  } catch (err) {
    return { name: `${dirname(manifest)} (unreadable manifest)`, description: err instanceof PairFileError ? err.problem : `not valid JSON (${(err as Error).message})` };
  }
}

/** Built-in pairs: models/<name>/ood-pair.json inside the extension. */
export async function builtInPairs(extensionPath: string): Promise<string[]> {
  const dir = join(extensionPath, 'models');
  try {
    const candidates = (await readdir(dir)).map((d) => join(dir, d, 'ood-pair.json'));
    const present = await Promise.all(candidates.map((f) => stat(f).then((s) => s.isFile(), () => false)));
    return candidates
      .filter((_, i) => present[i])
      .sort((a, b) => (a.includes(`${join('models', 'mnist')}`) ? -1 : b.includes(`${join('models', 'mnist')}`) ? 1 : a.localeCompare(b)));
  } catch {
    return [];
  }
}

export class PairStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('oodLens.pair', vscode.StatusBarAlignment.Right, 100);
  private readonly subscription: vscode.Disposable;

  constructor(private readonly host: EngineHost) {
    this.item.name = 'OOD Lens: pair';
    this.item.command = 'oodLens.selectPair';
    this.subscription = host.onDidChangeEngine(() => this.update());
    this.update();
    this.item.show();
  }

  update(): void {
    const { info, error, loading, idle } = this.host.state;
    const restricted = this.host.restricted;
    this.item.backgroundColor = undefined;
    if (idle) {
      const name = configuredPairName(this.host.config.pair);
      this.item.text = `$(beaker) ${name}`;
      this.item.tooltip = `OOD Lens: pair ${name}; it loads when you open an image or a dataset manifest. Click to choose another pair.`;
      this.item.accessibilityInformation = { label: `OOD Lens pair ${name}, not loaded yet. Click to choose another pair.` };
      return;
    }
    if (loading) {
      this.item.text = `$(loading~spin) ${configuredPairName(this.host.config.pair)}`;
      this.item.tooltip = 'OOD Lens: loading the pair…';
      return;
    }
    if (error || !info) {
      this.item.text = '$(warning) OOD Lens: pair failed';
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
      const md = new vscode.MarkdownString();
      md.appendMarkdown('**OOD Lens** — the pair could not be loaded\n\n');
      md.appendCodeblock(error?.message ?? 'unknown error', 'text');
      md.appendMarkdown('\nClick to choose another pair, or see [how to make a pair](command:oodLens.openDocs?%5B%22pair%22%5D).');
      md.isTrusted = { enabledCommands: ['oodLens.openDocs'] };
      this.item.tooltip = md;
      return;
    }
    this.item.text = `$(beaker) ${info.name} · ${providerLabel(info.provider)}`;
    this.item.tooltip = pairTooltip(info, restricted);
    this.item.accessibilityInformation = { label: `OOD Lens pair ${info.name}, execution provider ${providerLabel(info.provider)}. Click to choose another pair.` };
  }

  dispose(): void {
    this.subscription.dispose();
    this.item.dispose();
  }
}

function pairTooltip(info: EnginePairInfo, restricted: boolean): vscode.MarkdownString {
  // Names, descriptions and paths come from the pair's files: plain text (no links, icons or line breaks).
  const md = new vscode.MarkdownString(undefined, true);
  md.appendMarkdown('**OOD Lens** — pair **');
  appendPlain(md, info.name);
  md.appendMarkdown('**\n\n');
  if (info.description) {
    appendPlain(md, info.description, 1000);
    md.appendMarkdown('\n\n');
  }
  md.appendMarkdown('- Manifest: ');
  appendPlain(md, info.manifestPath);
  md.appendMarkdown('\n- Backend: ');
  appendPlain(md, info.backend);
  md.appendMarkdown(` · execution provider ${providerLabel(info.provider)}\n`);
  if (info.calibrated) {
    md.appendMarkdown(`- Calibrated on ${info.calibrationCount.toLocaleString('en-US')} images`);
    if (info.calibrationSource) {
      md.appendMarkdown(' (');
      appendPlain(md, info.calibrationSource);
      md.appendMarkdown(')');
    }
    md.appendMarkdown('\n');
  } else md.appendMarkdown('- Not calibrated: no p-values or verdicts (run `ood-lens calibrate`)\n');
  if (info.vaeTraining) {
    md.appendMarkdown('- ');
    appendPlain(md, info.vaeTraining);
    md.appendMarkdown('\n');
  }
  for (const [test, why] of Object.entries(info.notUsed ?? {})) {
    md.appendMarkdown(`- Test not used: ${test} — `);
    appendPlain(md, why);
    md.appendMarkdown('\n');
  }
  for (const [test, why] of Object.entries(info.shareCut ?? {})) {
    md.appendMarkdown(`- Smaller share: ${test} — `);
    appendPlain(md, why);
    md.appendMarkdown('\n');
  }
  md.appendMarkdown(`- α = ${info.alpha} · rule: `);
  appendPlain(md, String(info.rule));
  md.appendMarkdown('\n\n');
  if (restricted) md.appendMarkdown('Restricted Mode: only the built-in pair runs.\n\n');
  md.appendMarkdown('Click to choose another pair.');
  return md;
}

function folders() {
  return (vscode.workspace.workspaceFolders ?? []).map((f) => ({ name: f.name, path: f.uri.fsPath }));
}

function roots(): string[] {
  return (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
}

export async function showTrustNeeded(what: string): Promise<void> {
  const choice = await vscode.window.showWarningMessage(
    `OOD Lens: ${what} runs its own model files, so it needs a trusted workspace. This workspace is in Restricted Mode, where only the built-in pair runs.`,
    'Manage Workspace Trust',
  );
  if (choice) await vscode.commands.executeCommand('workbench.trust.manage');
}

/** Writes the choice to `oodLens.pair` (undefined = the built-in default). Shared with Create Pair (createPair.ts). */
export async function writePairSetting(manifest: string | undefined): Promise<void> {
  const c = vscode.workspace.getConfiguration('oodLens');
  const target = vscode.workspace.workspaceFolders?.length ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
  if (manifest === undefined) {
    const inspected = c.inspect<string>('pair');
    // An explicit '' keeps a user-level pair from applying to this workspace.
    const value = target === vscode.ConfigurationTarget.Workspace && inspected?.globalValue ? '' : undefined;
    await c.update('pair', value, target);
    return;
  }
  const folder = dirname(manifest);
  const value = pairSettingValue(manifest.endsWith('ood-pair.json') ? folder : manifest, { folders: folders(), home: homedir() }, target === vscode.ConfigurationTarget.Workspace);
  await c.update('pair', value, target);
}

/**
 * Makes `manifest` the active pair as the picker does (writes `oodLens.pair`, reloads the engine) and waits
 * for the engine to load it: resolves with its info, rejects with the load error. Used by Create Pair.
 */
export async function activatePair(services: Services, host: EngineHost, manifest: string, why: string): Promise<EnginePairInfo> {
  const wasActive = host.state.info?.manifestPath === manifest;
  await writePairSetting(manifest);
  services.log.info(`${why}: now using ${vscode.workspace.asRelativePath(manifest)}${insideWorkspace(manifest, folders()) ? ' (workspace)' : ''}`);
  // Same path as the active pair (a pair replaced in place): the setting did not change, so reload anyway.
  host.reloadIfChanged(why, wasActive);
  return host.info();
}

export async function selectPair(services: Services, host: EngineHost): Promise<void> {
  const extensionPath = services.context.extensionUri.fsPath;
  const builtIns = await builtInPairs(extensionPath);
  const defaultBuiltIn = resolve(extensionPath, 'models', 'mnist', 'ood-pair.json');
  const active = host.state.info?.manifestPath;
  const trusted = services.isTrusted();
  const items: PairChoice[] = [{ label: 'Built-in', kind: vscode.QuickPickItemKind.Separator }];
  const builtInNames = await Promise.all(builtIns.map((m) => readName(m)));
  for (const [i, manifest] of builtIns.entries()) {
    const { name, description } = builtInNames[i];
    items.push({ label: `${manifest === active ? '$(pass-filled)' : '$(package)'} ${name}`, description: `built-in${manifest === active ? ' · active' : ''}`, detail: description, manifest, builtIn: true });
  }
  // A fit that was killed leaves its staging folder (with a draft manifest) behind: never a pair.
  const found = await vscode.workspace.findFiles('**/ood-pair.json', `{**/node_modules/**,**/${STAGING_PREFIX}*/**}`, 50);
  const workspacePairs = found.map((u) => u.fsPath).filter((f) => !builtIns.includes(f) && !isStagingPath(f)).sort();
  if (workspacePairs.length) {
    items.push({ label: 'Workspace', kind: vscode.QuickPickItemKind.Separator });
    // Restricted Mode: workspace files are not read; the folder stands for the pair's name.
    const names = trusted ? await Promise.all(workspacePairs.map((m) => readName(m, roots()))) : workspacePairs.map((m) => ({ name: vscode.workspace.asRelativePath(dirname(m)), description: undefined }));
    for (const [i, manifest] of workspacePairs.entries()) {
      const { name, description } = names[i];
      items.push({
        label: `${manifest === active ? '$(pass-filled)' : '$(folder)'} ${name}`,
        description: `${vscode.workspace.asRelativePath(manifest)}${manifest === active ? ' · active' : ''}${trusted ? '' : ' · needs a trusted workspace'}`,
        detail: description,
        manifest,
      });
    }
  }
  items.push({ label: '', kind: vscode.QuickPickItemKind.Separator }, { label: '$(folder-opened) Browse…', description: 'a pair folder or an ood-pair.json file', browse: true });
  // The active pair is the highlighted row (not the first, built-in one).
  const qp = vscode.window.createQuickPick<PairChoice>();
  qp.title = 'OOD Lens: Select Pair';
  qp.placeholder = active ? `Active: ${host.state.info?.name} (${vscode.workspace.asRelativePath(active)})` : 'Choose the classifier + VAE pair';
  qp.matchOnDescription = true;
  qp.matchOnDetail = true;
  qp.items = items;
  const activeItem = items.find((i) => i.manifest !== undefined && i.manifest === active);
  if (activeItem) qp.activeItems = [activeItem];
  const picked = await new Promise<PairChoice | undefined>((resolvePick) => {
    qp.onDidAccept(() => {
      resolvePick(qp.selectedItems[0] ?? qp.activeItems[0]);
      qp.hide();
    });
    qp.onDidHide(() => resolvePick(undefined));
    qp.show();
  });
  qp.dispose();
  if (!picked) return;
  let manifest = picked.manifest;
  if (picked.browse) {
    if (!trusted) return showTrustNeeded('A pair you browse to');
    const uris = await vscode.window.showOpenDialog({ canSelectFiles: true, canSelectFolders: true, canSelectMany: false, openLabel: 'Use Pair', title: 'Choose a pair folder or its ood-pair.json', filters: { 'Pair manifest': ['json'] } });
    if (!uris?.length) return;
    const p = uris[0].fsPath;
    manifest = (await stat(p).then((s) => s.isDirectory(), () => false)) ? join(p, 'ood-pair.json') : p;
  } else if (!picked.builtIn && !trusted) {
    return showTrustNeeded(`The workspace pair ${vscode.workspace.asRelativePath(manifest!)}`);
  }
  if (!manifest) return;
  if (!picked.builtIn) {
    try {
      // A workspace pair must stay inside the workspace (links included); one the user browsed to may be anywhere.
      const text = await readPairManifestText(manifest, { roots: picked.browse ? undefined : roots() });
      // Loaded here, not at activation: the manifest module compiles its JSON Schema (ajv) when it loads.
      const { parsePairManifest } = await import('../inference/pair/manifest');
      const missing = await missingPairFiles(dirname(manifest), parsePairManifest(text, manifest));
      if (missing.length) throw new Error(`${manifest}:\n${missing.join('\n')}`);
    } catch (err) {
      services.log.error(`selectPair: ${(err as Error).message}`);
      // Say what a pair is when the folder has no manifest at all (an empty models/ folder), else which field to fix.
      const text = (await stat(manifest).then(() => true, () => false))
        ? `OOD Lens: ${manifest} is not a usable pair: ${(err as Error).message.split('\n').slice(1).join(' ').trim() || (err as Error).message}. Fix the field named, or see "How to make a pair".`
        : `OOD Lens: ${dirname(manifest)} is not a pair: it has no ood-pair.json. A pair is a folder holding your classifier (ONNX or TensorFlow.js), optionally a VAE, and an ood-pair.json that says how to feed them — make one from your model with "Create Pair…", or see "How to make a pair".`;
      await showPairError(text, services.log);
      return;
    }
  }
  if (picked.builtIn && manifest === defaultBuiltIn) await writePairSetting(undefined);
  else await writePairSetting(manifest);
  const target = picked.builtIn && manifest === defaultBuiltIn ? 'the built-in pair' : vscode.workspace.asRelativePath(manifest);
  services.log.info(`selectPair: now using ${target}${insideWorkspace(manifest, folders()) ? ' (workspace)' : ''}`);
  // Picking the active pair again reloads it (e.g. after it was re-trained); otherwise only a change reloads.
  host.reloadIfChanged('pair selected', manifest === active);
}

export function registerPairPicker(context: vscode.ExtensionContext, services: Services, host: EngineHost): PairStatusBar {
  const statusBar = new PairStatusBar(host);
  context.subscriptions.push(
    statusBar,
    vscode.commands.registerCommand('oodLens.selectPair', async () => {
      try {
        await selectPair(services, host);
      } catch (err) {
        services.log.error(`Select Pair failed: ${(err as Error).stack ?? err}`);
        const choice = await vscode.window.showErrorMessage(`OOD Lens: could not select a pair: ${(err as Error).message}`, 'Show log');
        if (choice) services.log.show(true);
      }
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => statusBar.update()),
  );
  return statusBar;
}
