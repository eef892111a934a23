/**
 * Links from errors and the walkthrough to the documentation shipped in the extension (README.md): the
 * `oodLens.openDocs` command opens the README at a section's heading. Errors about pairs and models offer
 * "How to make a pair", and pair errors also "Create Pair…" (`oodLens.createPair`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';

export type DocsTopic = 'pair' | 'calibrate' | 'settings' | 'security';

/** Each topic's README heading, then fallbacks (a heading another change may rename). */
const SECTIONS: Record<DocsTopic, { title: string; headings: string[] }> = {
  pair: { title: 'Bring your own model', headings: ['Bring your own model', 'Pairs'] },
  calibrate: { title: 'Calibrate a pair', headings: ['Bring your own model', 'Pairs'] },
  settings: { title: 'Settings', headings: ['Settings', 'VS Code'] },
  security: { title: 'Security and limits', headings: ['Security and limits', 'VS Code'] },
};

let extensionUri: vscode.Uri | undefined;

/** Line (0-based) of the first heading of the README whose text is one of `headings`, else 0. */
export function headingLine(markdown: string, headings: string[]): number {
  const lines = markdown.split(/\r?\n/);
  for (const wanted of headings) {
    const i = lines.findIndex((l) => new RegExp(`^#{1,6}\\s+${wanted.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`, 'i').test(l));
    if (i >= 0) return i;
  }
  return 0;
}

function isTopic(x: unknown): x is DocsTopic {
  return typeof x === 'string' && x in SECTIONS;
}

/**
 * The README in an extension folder, whatever its case: vsce stores the package's README.md as `readme.md` in
 * the VSIX, so an installed extension has readme.md while a clone (the Extension Development Host) has README.md.
 */
export function findReadme(folder: string): string | undefined {
  const name = readdirSync(folder).find((f) => /^readme\.md$/i.test(f));
  return name === undefined ? undefined : join(folder, name);
}

/**
 * Opens the README shipped in the extension at the topic's section, that heading at the top of the editor.
 * Never throws: a missing README is reported by name (callers such as walkthrough buttons drop errors silently).
 */
export async function openDocs(topic: unknown = 'pair'): Promise<void> {
  try {
    if (!extensionUri) throw new Error('OOD Lens is not activated');
    const section = SECTIONS[isTopic(topic) ? topic : 'pair'];
    const path = findReadme(extensionUri.fsPath);
    if (!path) throw new Error(`there is no README.md in the extension folder ${extensionUri.fsPath}; reinstall the extension`);
    const line = headingLine(readFileSync(path, 'utf8'), section.headings);
    const position = new vscode.Position(line, 0);
    const editor = await vscode.window.showTextDocument(vscode.Uri.file(path), { preview: true, selection: new vscode.Range(position, position) });
    editor.revealRange(new vscode.Range(position, position), vscode.TextEditorRevealType.AtTop);
  } catch (err) {
    void vscode.window.showErrorMessage(`OOD Lens: could not open the documentation: ${(err as Error).message}`);
  }
}

/** A notification button that opens the docs for a topic: `{ label, title, run }`. */
export function docsAction(topic: DocsTopic): { label: string; title: string; run: () => Promise<void> } {
  const title = SECTIONS[topic].title;
  const label = topic === 'pair' ? 'How to make a pair' : `Docs: ${title}`;
  return { label, title, run: () => openDocs(topic) };
}

export function registerDocs(context: vscode.ExtensionContext): void {
  extensionUri = context.extensionUri;
  context.subscriptions.push(vscode.commands.registerCommand('oodLens.openDocs', (topic?: unknown) => openDocs(topic)));
}

/**
 * A pair or model error as a notification that says what to do: choose another pair, or read how to make one
 * (the docs section), with the details in the log.
 */
export async function showPairError(text: string, log: vscode.LogOutputChannel): Promise<void> {
  const docs = docsAction('pair');
  const fix = /Select Pair|How to make a pair/.test(text) ? '' : ' Choose a working pair with "Select Pair…", make one with "Create Pair…", or see "How to make a pair".';
  const choice = await vscode.window.showErrorMessage(`${text}${fix}`, 'Select Pair…', 'Create Pair…', docs.label, 'Show log');
  if (choice === 'Select Pair…') await vscode.commands.executeCommand('oodLens.selectPair');
  else if (choice === 'Create Pair…') await vscode.commands.executeCommand('oodLens.createPair');
  else if (choice === docs.label) await docs.run();
  else if (choice === 'Show log') log.show(true);
}
