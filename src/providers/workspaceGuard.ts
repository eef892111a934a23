/**
 * Restricted Mode's file rule for the VS Code side: a file is read only when it lies inside a workspace folder,
 * both as written and after following symbolic links (its real path inside a folder's real path). Used by
 * folder scoring, the Inspect commands and the pair picker. No `vscode` import.
 */
import { existsSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { commonFolder } from '../inference/datasets/datasetManifest';

export const OUTSIDE_WORKSPACE_REASON = 'outside the workspace folders: not read in Restricted Mode';

function isInside(child: string, root: string): boolean {
  const rel = relative(root, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

export function insideRoots(path: string, roots: readonly string[]): boolean {
  const abs = resolve(path);
  return roots.some((r) => isInside(abs, resolve(r)));
}

/**
 * Why `path` must not be read given the workspace folders `roots`, or null when it may be: outside every
 * folder as written, or a symbolic link (at any level) whose target is outside. A path that does not exist
 * is judged as written (there is nothing to read; the reader reports "not found").
 */
export async function outsideWorkspace(path: string, roots: readonly string[]): Promise<string | null> {
  if (!insideRoots(path, roots)) return OUTSIDE_WORKSPACE_REASON;
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    return `cannot resolve its real path (${code ?? (err as Error).message}): not read in Restricted Mode`;
  }
  const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => resolve(r))));
  if (!insideRoots(real, realRoots)) return `links to ${real}, ${OUTSIDE_WORKSPACE_REASON}`;
  return null;
}

/**
 * The folder a report of result lines ("Open Results…") loads its thumbnails from (the webview may read
 * under it): the deepest folder holding the images, when it exists here and is not the file system's root;
 * in Restricted Mode (`roots` = the workspace folders; null when trusted) only when it lies inside the
 * workspace both as written and by its real path. Otherwise the results file's folder (results from another
 * machine show without thumbnails).
 */
export async function reportImageFolder(paths: string[], resultsFile: string, roots: readonly string[] | null): Promise<string> {
  const fallback = dirname(resultsFile);
  const common = commonFolder(paths.slice(0, 10_000));
  if (!common || common.split(sep).filter(Boolean).length < 2 || !existsSync(common)) return fallback;
  if (roots && (await outsideWorkspace(common, roots))) return fallback;
  return common;
}
