/**
 * The `oodLens.pair` setting ↔ a path on disk. Pure (no vscode) so it is unit-tested: `${workspaceFolder}`,
 * `${workspaceFolder:name}`, `${userHome}` and `~` expand; a relative path resolves against the first
 * workspace folder; the picker writes workspace-relative paths into workspace settings so they travel with
 * the repository.
 */
import { isAbsolute, join, relative, resolve, sep } from 'node:path';

export interface Folder {
  name: string;
  path: string;
}

export interface PairPathContext {
  folders: readonly Folder[];
  home: string;
}

export class PairSettingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PairSettingError';
  }
}

/** Expands and resolves a non-empty `oodLens.pair` value to an absolute path. */
export function resolvePairSetting(value: string, ctx: PairPathContext): string {
  let v = value.trim();
  v = v.replace(/\$\{userHome\}/g, ctx.home);
  if (v === '~' || v.startsWith('~/') || v.startsWith('~\\')) v = join(ctx.home, v.slice(1));
  v = v.replace(/\$\{workspaceFolder(?::([^}]+))?\}/g, (_, name: string | undefined) => {
    const folder = name ? ctx.folders.find((f) => f.name === name) : ctx.folders[0];
    if (!folder) throw new PairSettingError(name ? `oodLens.pair: no workspace folder named "${name}"` : 'oodLens.pair uses ${workspaceFolder} but no folder is open');
    return folder.path;
  });
  if (/\$\{[^}]*\}/.test(v)) throw new PairSettingError(`oodLens.pair: unsupported variable in "${value}" (use \${workspaceFolder}, \${workspaceFolder:name} or \${userHome})`);
  if (isAbsolute(v)) return resolve(v);
  if (!ctx.folders.length) throw new PairSettingError(`oodLens.pair is the relative path "${value}" but no workspace folder is open to resolve it against`);
  return resolve(ctx.folders[0].path, v);
}

/**
 * The value to store for a chosen pair: relative to the first workspace folder when it lies inside it
 * (and the setting goes into workspace settings), else absolute.
 */
export function pairSettingValue(path: string, ctx: PairPathContext, workspaceTarget: boolean): string {
  const abs = resolve(path);
  const first = ctx.folders[0];
  if (workspaceTarget && first) {
    const rel = relative(first.path, abs);
    if (rel && !rel.startsWith('..') && !isAbsolute(rel)) return rel.split(sep).join('/');
    if (!rel) return '.';
  }
  return abs;
}

/** Whether a path lies inside one of the workspace folders. */
export function insideWorkspace(path: string, folders: readonly Folder[]): boolean {
  const abs = resolve(path);
  return folders.some((f) => {
    const rel = relative(f.path, abs);
    return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
  });
}
