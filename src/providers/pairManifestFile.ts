/**
 * Reading an `ood-pair.json` for the pair picker without stalling the extension host: asynchronous, regular
 * files only (a FIFO or a device is refused before it is opened), size checked before reading
 * (`MAX_PAIR_MANIFEST_BYTES`), and — for the workspace's own pair files — never through a symbolic link that
 * leads out of the workspace. No `vscode` import.
 */
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { outsideWorkspace } from './workspaceGuard';

/** Largest pair manifest the picker reads: real ones are a few KB; 1 MiB leaves room for long label lists. */
export const MAX_PAIR_MANIFEST_BYTES = 1024 * 1024;

export class PairFileError extends Error {
  constructor(readonly path: string, readonly problem: string) {
    super(`${path}: ${problem}`);
    this.name = 'PairFileError';
  }
}

function sizeText(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/**
 * The text of a pair manifest. `roots` (the workspace folders): the file must lie inside one of them, its real
 * path too. Throws PairFileError naming the file and the problem.
 */
export async function readPairManifestText(path: string, options: { roots?: readonly string[]; maxBytes?: number } = {}): Promise<string> {
  const max = options.maxBytes ?? MAX_PAIR_MANIFEST_BYTES;
  if (options.roots) {
    const refusal = await outsideWorkspace(path, options.roots);
    if (refusal) throw new PairFileError(path, refusal.replace('not read in Restricted Mode', 'a workspace pair must lie inside the workspace'));
  }
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PairFileError(path, code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? (err as Error).message})`);
  }
  if (!st.isFile()) throw new PairFileError(path, st.isDirectory() ? 'is a folder' : 'is not a regular file');
  if (st.size > max) throw new PairFileError(path, `is ${sizeText(st.size)}; a pair manifest may be at most ${sizeText(max)}`);
  // O_NONBLOCK: should the file be swapped for a FIFO after the stat, opening it does not hang.
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    throw new PairFileError(path, `cannot open (${err.code ?? err.message})`);
  });
  try {
    const again = await handle.stat();
    if (!again.isFile()) throw new PairFileError(path, 'is not a regular file');
    const buffer = Buffer.alloc(Math.min(max, again.size) + 1);
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (!bytesRead) break;
      filled += bytesRead;
    }
    if (filled > max) throw new PairFileError(path, `grew past ${sizeText(max)} while being read`);
    return buffer.subarray(0, filled).toString('utf8').replace(/^\uFEFF/, '');
  } finally {
    await handle.close();
  }
}

/** The files a manifest names (model files, calibration) that do not exist, as "field: file not found: path". */
export async function missingPairFiles(manifestDir: string, manifest: unknown): Promise<string[]> {
  const m = manifest as { classifier?: { path?: unknown }; vae?: { path?: unknown; encoder?: { path?: unknown }; decoder?: { path?: unknown } }; calibration?: unknown };
  const fields: [string, unknown][] = [
    ['classifier.path', m.classifier?.path],
    ['vae.path', m.vae?.path],
    ['vae.encoder.path', m.vae?.encoder?.path],
    ['vae.decoder.path', m.vae?.decoder?.path],
    ['calibration', m.calibration],
  ];
  const missing: string[] = [];
  for (const [field, p] of fields) {
    if (typeof p !== 'string') continue;
    const full = isAbsolute(p) ? p : join(manifestDir, p);
    if (!(await stat(full).then(() => true, () => false))) missing.push(`${field}: file not found: ${full}`);
  }
  return missing;
}
