/**
 * The "Get started with OOD Lens" walkthrough (package.json `contributes.walkthroughs`): the commands behind
 * its buttons, which act on the samples bundled in the extension (samples/: MNIST digits, FashionMNIST clothes,
 * a hen drawing, a cat photo and a dataset manifest, samples/dataset.csv), and opening it once on first install.
 */
import * as vscode from 'vscode';
import type { Services } from '../services/services';

export const WALKTHROUGH_ID = 'ood-lens.ood-lens#getStarted';
/** globalState key: the walkthrough was shown once (first activation after install); never again by itself. */
const SHOWN_KEY = 'oodLens.walkthroughShown';
/** The sample the first step checks: a FashionMNIST pullover the MNIST classifier calls an '8' with 99% confidence. */
export const SAMPLE_IMAGE = 'fashion-test-00001.png';
export const SAMPLE_MANIFEST = 'dataset.csv';

function samplesUri(services: Services, ...parts: string[]): vscode.Uri {
  return vscode.Uri.joinPath(services.context.extensionUri, 'samples', ...parts);
}

/** Opens the bundled dataset manifest, puts the cursor on the FashionMNIST row's path and shows its hover. */
async function openSampleManifest(services: Services): Promise<void> {
  const doc = await vscode.workspace.openTextDocument(samplesUri(services, SAMPLE_MANIFEST));
  const editor = await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: false });
  const line = Math.max(0, doc.getText().split(/\r?\n/).findIndex((l) => l.startsWith(SAMPLE_IMAGE)));
  const at = new vscode.Position(line, 2);
  editor.selection = new vscode.Selection(at, at);
  editor.revealRange(new vscode.Range(at, at), vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  // Compute the hover first (the manifest parsed, the row scored and kept), then show it: shown while still
  // "Loading…" on a busy machine, it could be dropped as the editor settled (CodeLens, automatic scoring of the
  // rows, decorations), and the step's button would seem to do nothing.
  await vscode.commands.executeCommand('vscode.executeHoverProvider', doc.uri, at);
  if (vscode.window.activeTextEditor?.document !== doc) await vscode.window.showTextDocument(doc, { viewColumn: editor.viewColumn, preview: false });
  await vscode.commands.executeCommand('editor.action.showHover');
}

export function registerWalkthrough(context: vscode.ExtensionContext, services: Services, open: (uris: vscode.Uri[], column?: vscode.ViewColumn) => Promise<void>): void {
  context.subscriptions.push(
    vscode.commands.registerCommand('oodLens.showWalkthrough', () => vscode.commands.executeCommand('workbench.action.openWalkthrough', WALKTHROUGH_ID, false)),
    vscode.commands.registerCommand('oodLens.walkthrough.checkSample', () => open([samplesUri(services, SAMPLE_IMAGE)], vscode.ViewColumn.Beside)),
    vscode.commands.registerCommand('oodLens.walkthrough.scoreSamples', () => vscode.commands.executeCommand('oodLens.scoreFolder', samplesUri(services))),
    vscode.commands.registerCommand('oodLens.walkthrough.openManifest', () => openSampleManifest(services)),
  );
}

/**
 * Opens the walkthrough on the first activation after install, once (globalState), a moment after activation
 * so that a panel the activating command opens comes first; beside it when an OOD Lens panel is open. While a
 * panel's page is still loading (the first webview of a fresh profile can take seconds) it waits, up to 15 s,
 * so that the walkthrough does not compete with the user's first verdict.
 */
export function showWalkthroughOnce(context: vscode.ExtensionContext, log: vscode.LogOutputChannel, panelOpen: () => boolean, panelLoading: () => boolean): void {
  if (context.globalState.get<boolean>(SHOWN_KEY)) return;
  void context.globalState.update(SHOWN_KEY, true);
  const startedAt = Date.now();
  let timer: NodeJS.Timeout;
  const open = () => {
    if (panelLoading() && Date.now() - startedAt < 15_000) {
      timer = setTimeout(open, 250);
      return;
    }
    log.info('first run: opening the "Get started with OOD Lens" walkthrough');
    void vscode.commands.executeCommand('workbench.action.openWalkthrough', WALKTHROUGH_ID, panelOpen()).then(undefined, (err: unknown) => log.warn(`could not open the walkthrough: ${err}`));
  };
  timer = setTimeout(open, 1500);
  context.subscriptions.push({ dispose: () => clearTimeout(timer) });
}
