/**
 * Commands that open the Inspect panel: `oodLens.inspect` (palette and editor title: the image in the active
 * editor — VS Code's image preview counts — else a quick pick of the workspace's images), `oodLens.checkFiles`
 * (Explorer context menu, multi-select → one panel) and `oodLens.showLog`. No handler ever throws: failures
 * become a notification naming the file and the problem, with "Show log".
 */
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { IMAGE_EXTENSIONS, isImagePath } from '../shared/inspectProtocol';
import type { Services } from '../services/services';
import { outsideWorkspace } from './workspaceGuard';

const MANY_IMAGES = 40;

/** `**∕*.{png,PNG,jpg,JPG,…}`: findFiles globs are case-sensitive on Linux. */
export function imageGlob(): string {
  const exts = IMAGE_EXTENSIONS.flatMap((e) => [e, e.toUpperCase()]);
  return `**/*.{${exts.join(',')}}`;
}

/** The image shown in the active editor: VS Code's image preview (a custom editor) or a text editor on an image path. */
export function activeImage(): vscode.Uri | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  if (input instanceof vscode.TabInputCustom && input.viewType === 'imagePreview.previewEditor') return input.uri;
  if (input instanceof vscode.TabInputCustom && isImagePath(input.uri.path)) return input.uri;
  if (input instanceof vscode.TabInputText && isImagePath(input.uri.path)) return input.uri;
  const doc = vscode.window.activeTextEditor?.document.uri;
  return doc && isImagePath(doc.path) ? doc : undefined;
}

/** Wraps a command handler: logs and reports any failure instead of throwing into VS Code. */
function guarded<A extends unknown[]>(services: Services, title: string, fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      services.log.error(`${title} failed: ${e.stack ?? e.message}`);
      const choice = await vscode.window.showErrorMessage(`OOD Lens: ${title} failed: ${e.message}`, 'Show log');
      if (choice) services.log.show(true);
    }
  };
}

async function pickWorkspaceImage(services: Services): Promise<vscode.Uri | undefined> {
  if (!vscode.workspace.workspaceFolders?.length) {
    const picked = await vscode.window.showOpenDialog({ canSelectMany: false, openLabel: 'Inspect', title: 'OOD Lens: choose an image', filters: { Images: IMAGE_EXTENSIONS } });
    return picked?.[0];
  }
  const qp = vscode.window.createQuickPick<vscode.QuickPickItem & { uri: vscode.Uri }>();
  qp.title = 'OOD Lens: Check out-of-distribution';
  qp.placeholder = 'Choose an image of the workspace to check';
  qp.matchOnDescription = true;
  qp.busy = true;
  qp.show();
  try {
    const files = await vscode.workspace.findFiles(imageGlob(), '**/{node_modules,.git}/**', 5000);
    files.sort((a, b) => a.fsPath.localeCompare(b.fsPath));
    qp.items = files.map((uri) => {
      const rel = vscode.workspace.asRelativePath(uri);
      const slash = rel.lastIndexOf('/');
      return { label: `$(file-media) ${basename(uri.fsPath)}`, description: slash > 0 ? rel.slice(0, slash) : '', uri };
    });
    qp.busy = false;
    if (!files.length) {
      qp.hide();
      // The empty state says what to do, and offers the bundled sample.
      void vscode.window
        .showInformationMessage('OOD Lens: this workspace has no images (png, jpg, webp, gif, bmp, tiff, avif). Open an image, or right-click one in the Explorer → Check out-of-distribution. Or try a bundled sample.', 'Check a sample image', 'Get Started')
        .then((choice) => {
          if (choice === 'Check a sample image') void vscode.commands.executeCommand('oodLens.walkthrough.checkSample');
          else if (choice === 'Get Started') void vscode.commands.executeCommand('oodLens.showWalkthrough');
        });
      return undefined;
    }
    services.log.trace(`inspect: ${files.length} workspace images offered`);
    return await new Promise<vscode.Uri | undefined>((resolve) => {
      qp.onDidAccept(() => resolve(qp.selectedItems[0]?.uri));
      qp.onDidHide(() => resolve(undefined));
    });
  } finally {
    qp.dispose();
  }
}

function workspaceRoots(): string[] {
  return (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
}

/**
 * Splits a selection into image files and the rest, with a reason for each rejected item. Command arguments
 * are checked again here: in Restricted Mode a file outside the workspace folders (as written or through a
 * symbolic link) is refused, whoever passed it.
 */
async function imagesOf(uris: vscode.Uri[], restricted: boolean): Promise<{ images: vscode.Uri[]; skipped: string[] }> {
  const images: vscode.Uri[] = [];
  const skipped: string[] = [];
  for (const uri of uris) {
    if (uri.scheme !== 'file') {
      skipped.push(`${uri.toString()} (only files on disk can be scored)`);
      continue;
    }
    const refusal = restricted ? await outsideWorkspace(uri.fsPath, workspaceRoots()) : null;
    if (refusal) {
      skipped.push(`${basename(uri.fsPath)} (${refusal})`);
      continue;
    }
    let isFolder = false;
    try {
      isFolder = ((await vscode.workspace.fs.stat(uri)).type & vscode.FileType.Directory) !== 0;
    } catch {
      // A missing file still gets a row: the panel says "file not found".
    }
    if (isFolder) skipped.push(`${basename(uri.fsPath)} (a folder: use "Score folder for out-of-distribution")`);
    else if (!isImagePath(uri.fsPath)) skipped.push(`${basename(uri.fsPath)} (not an image file)`);
    else images.push(uri);
  }
  return { images, skipped };
}

function reportSkipped(services: Services, skipped: string[]): void {
  if (!skipped.length) return;
  services.log.warn(`check: skipped ${skipped.join('; ')}`);
  void vscode.window.showWarningMessage(`OOD Lens: skipped ${skipped.length === 1 ? skipped[0] : `${skipped.length} items: ${skipped.slice(0, 3).join('; ')}${skipped.length > 3 ? '; …' : ''}`}`);
}

export function registerInspectCommands(context: vscode.ExtensionContext, services: Services, open: (uris: vscode.Uri[], column?: vscode.ViewColumn) => Promise<void>): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(
      'oodLens.inspect',
      guarded(services, 'Check out-of-distribution', async (arg?: unknown) => {
        // From the editor title the command gets the editor's resource; from the palette, nothing.
        let uri = arg instanceof vscode.Uri ? arg : undefined;
        let column = vscode.ViewColumn.Beside;
        let fromArgument = !!uri && isImagePath(uri.path);
        if (!fromArgument) uri = activeImage();
        if (!uri) {
          uri = await pickWorkspaceImage(services);
          column = vscode.ViewColumn.Active;
        }
        if (!uri) return;
        // A file the user opened or picked is theirs to inspect; one passed as an argument is checked.
        const { images, skipped } = await imagesOf([uri], !services.isTrusted() && fromArgument);
        if (!images.length) {
          services.log.warn(`inspect: cannot inspect ${skipped[0]}`);
          void vscode.window.showWarningMessage(`OOD Lens: cannot inspect ${skipped[0]}`);
          return;
        }
        await open(images, column);
      }),
    ),
    vscode.commands.registerCommand(
      'oodLens.checkFiles',
      guarded(services, 'Check out-of-distribution', async (uri?: unknown, uris?: unknown) => {
        const selection = Array.isArray(uris) && uris.length ? uris.filter((u): u is vscode.Uri => u instanceof vscode.Uri) : uri instanceof vscode.Uri ? [uri] : [];
        if (!selection.length) {
          await vscode.commands.executeCommand('oodLens.inspect');
          return;
        }
        const { images, skipped } = await imagesOf(selection, !services.isTrusted());
        reportSkipped(services, skipped);
        if (!images.length) return;
        if (images.length > MANY_IMAGES) {
          const choice = await vscode.window.showWarningMessage(`Inspect ${images.length} images in one panel? For many images the folder report (Score Folder…) is easier to read.`, 'Inspect all', 'Cancel');
          if (choice !== 'Inspect all') return;
        }
        await open(images, vscode.ViewColumn.Active);
      }),
    ),
    vscode.commands.registerCommand('oodLens.showLog', () => services.log.show()),
  );
}
