/// <reference types="mocha" />
/**
 * Desktop VS Code suite (@vscode/test-cli, see .vscode-test.mjs): activates the extension from dist/ and runs
 * the Inspect command on a committed sample image. Not part of `npm test` (its files end in .vscode.ts).
 */
import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';

const EXTENSION_ID = 'ood-lens.ood-lens';

function samples(): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the test workspace (samples/) is open');
  return folder.uri.fsPath;
}

async function until<T>(what: string, fn: () => T | undefined | false, timeout = 60_000): Promise<T> {
  const end = Date.now() + timeout;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function inspectTabs(): vscode.Tab[] {
  return vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => t.input instanceof vscode.TabInputWebview && t.input.viewType.endsWith('oodLens.inspect'));
}

suite('OOD Lens in desktop VS Code', () => {
  suiteSetup(async () => {
    const ext = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(ext, `${EXTENSION_ID} is installed in the test instance`);
    await ext.activate();
    assert.equal(ext.isActive, true);
  });

  teardown(async () => {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  test('contributes its commands', async () => {
    const commands = await vscode.commands.getCommands(true);
    for (const c of ['oodLens.inspect', 'oodLens.checkFiles', 'oodLens.scoreFolder', 'oodLens.scoreFolderFromExplorer', 'oodLens.scoreManifest', 'oodLens.selectPair']) {
      assert.ok(commands.includes(c), `${c} is registered`);
    }
  });

  test('Check out-of-distribution on an image opens the Inspect panel for it', async () => {
    const image = vscode.Uri.file(join(samples(), 'mnist-test-00000.png'));
    await vscode.commands.executeCommand('oodLens.checkFiles', image, [image]);
    const tab = await until('the Inspect panel', () => inspectTabs()[0]);
    // The pair's name joins the title once the pair is loaded ("OOD: mnist-test-00000.png — mnist").
    assert.match(tab.label, /^OOD: mnist-test-00000\.png( — mnist)?$/);
  });

  test('Inspect OOD on the image open in the editor (image preview)', async () => {
    const image = vscode.Uri.file(join(samples(), 'fashion-test-00000.png'));
    await vscode.commands.executeCommand('vscode.open', image);
    await until('the image preview', () => vscode.window.tabGroups.activeTabGroup.activeTab?.label === 'fashion-test-00000.png');
    await vscode.commands.executeCommand('oodLens.inspect');
    const tab = await until('the Inspect panel', () => inspectTabs().find((t) => t.label.startsWith('OOD: fashion-test-00000.png')));
    assert.ok(tab);
  });
});
