/**
 * Starts the engine (worker + pair) in the background when the user first opens an image or a dataset
 * manifest, so the first "Check out-of-distribution" does not wait for the models to load. Activation itself
 * only registers things: a text file, a CSV without image paths or a workspace with a pair loads nothing.
 */
import * as vscode from 'vscode';
import { isImagePath } from '../shared/inspectProtocol';

/** Within the first 4 KB of a CSV/TSV/JSONL/text document: does some value end in an image extension? */
export function looksLikeManifest(head: string): boolean {
  return /\.(png|jpe?g|webp|gif|bmp|tiff?|avif)\b/i.test(head);
}

const MANIFEST_LANGUAGES = new Set(['csv', 'tsv', 'jsonl', 'plaintext']);
const STARTUP_DELAY_MS = 2000;

export function registerWarmup(context: vscode.ExtensionContext, warm: (why: string) => void, started: () => boolean): void {
  const disposables: vscode.Disposable[] = [];
  const stop = () => {
    for (const d of disposables.splice(0)) d.dispose();
  };
  const check = (why: string, ok: boolean) => {
    if (!ok || started()) return;
    warm(why);
    stop();
  };
  const isImageTab = (tab: vscode.Tab) => {
    const input = tab.input;
    return (input instanceof vscode.TabInputCustom || input instanceof vscode.TabInputText) && input.uri.scheme === 'file' && isImagePath(input.uri.path);
  };
  const isManifest = (doc: vscode.TextDocument) => doc.uri.scheme === 'file' && MANIFEST_LANGUAGES.has(doc.languageId) && looksLikeManifest(doc.getText(new vscode.Range(0, 0, 60, 0)).slice(0, 4096));

  // An image or manifest already open at activation (restored with the window): warm up a little later, so
  // that the window's own start-up work goes first.
  const tabs = vscode.window.tabGroups.all.flatMap((g) => g.tabs);
  const openImage = tabs.find(isImageTab);
  const manifest = openImage ? undefined : vscode.workspace.textDocuments.find(isManifest);
  if (openImage || manifest) {
    const why = openImage ? `${openImage.label} is open` : `${vscode.workspace.asRelativePath(manifest!.uri)} is open`;
    const timer = setTimeout(() => check(why, true), STARTUP_DELAY_MS);
    context.subscriptions.push({ dispose: () => clearTimeout(timer) });
    return;
  }

  disposables.push(
    vscode.window.tabGroups.onDidChangeTabs((e) => {
      const tab = e.opened.find(isImageTab) ?? e.changed.find(isImageTab);
      if (tab) check(`${tab.label} was opened`, true);
    }),
    vscode.workspace.onDidOpenTextDocument((doc) => check(`${vscode.workspace.asRelativePath(doc.uri)} was opened`, isManifest(doc))),
  );
  context.subscriptions.push({ dispose: stop });
}
