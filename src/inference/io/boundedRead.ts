/**
 * Bounded reads for every file the engine opens that a user or a pair author chose: pair manifests,
 * calibration files, model files, TensorFlow.js weights, IDX archives and images.
 *  - regular files only: the file is opened first (O_NONBLOCK, so that a named pipe cannot block the open)
 *    and checked with fstat on that same descriptor, so FIFOs, sockets and devices (/dev/zero) are refused
 *    without reading a byte;
 *  - the size is checked against a limit before anything is read, and never more than the size fstat gave is
 *    read (a file that grows meanwhile cannot push a read past the limit);
 *  - gzip is inflated with a cap on the output (`maxOutputLength`), so a bomb stops at the cap.
 * Messages name the file and the problem, never the file's content.
 */
import { isUtf8 } from 'node:buffer';
import { closeSync, constants, existsSync, fstatSync, openSync, readSync, realpathSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep, win32 } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** A file name's bytes as text, each byte that is not valid UTF-8 shown as \xNN (so the name stays distinct). */
export function showFileName(name: Buffer): string {
  if (isUtf8(name)) return name.toString('utf8');
  let out = '';
  let i = 0;
  while (i < name.length) {
    const b = name[i];
    const len = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    const seq = len ? name.subarray(i, i + len) : null;
    if (seq && seq.length === len && isUtf8(seq)) {
      out += seq.toString('utf8');
      i += len;
    } else {
      out += `\\x${b.toString(16).padStart(2, '0')}`;
      i++;
    }
  }
  return out;
}

/** Limits for the files a pair is made of (generous for real models; they stop /dev/zero-style reads). */
export const LIMITS = {
  /** ood-pair.json and TF.js model.json (topology only; the weights are separate files). */
  manifestBytes: 16 * 1024 * 1024,
  /** calibration.json: 1,000,000 scores × 3 lists is ~60 MB of JSON. */
  calibrationBytes: 256 * 1024 * 1024,
  /** One model file (ONNX protobuf files cannot exceed 2 GiB anyway). */
  modelBytes: 2 * 1024 * 1024 * 1024,
  /** All of one TF.js model's weight files together. */
  weightsTotalBytes: 2 * 1024 * 1024 * 1024,
  /** An IDX archive, compressed, and its decompressed size. */
  idxBytes: 512 * 1024 * 1024,
  idxInflatedBytes: 512 * 1024 * 1024,
} as const;

export type ReadProblem = 'not-found' | 'permission' | 'folder' | 'not-regular' | 'too-large' | 'empty' | 'io';

export class BoundedReadError extends Error {
  constructor(readonly path: string, readonly problem: ReadProblem, readonly reason: string) {
    super(`${path}: ${reason}`);
    this.name = 'BoundedReadError';
  }
}

export interface BoundedReadOptions {
  /** Largest size accepted, in bytes. */
  maxBytes: number;
  /** What the file is, for messages ("calibration file"); default "file". */
  what?: string;
  /** An empty file is refused unless this is set. */
  allowEmpty?: boolean;
  /**
   * readBoundedSync: room for this many more bytes after the file's in the returned buffer's memory (its
   * `buffer`), so that a caller can append to it without copying the file (onnxGraph.ts withGraphAdditions).
   */
  spareBytes?: number;
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a named pipe';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file or folder';
}

/** The reason in words for an error from open/fstat/read (the code, never the content). */
export function describeFsError(err: unknown): { problem: ReadProblem; reason: string } {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return { problem: 'not-found', reason: 'file not found' };
    case 'EACCES':
    case 'EPERM':
      return { problem: 'permission', reason: 'permission denied' };
    case 'EISDIR':
      return { problem: 'folder', reason: 'is a folder, not a file' };
    case 'ENAMETOOLONG':
      return { problem: 'io', reason: 'the path is too long for the file system (ENAMETOOLONG)' };
    case 'ELOOP':
      return { problem: 'io', reason: 'too many levels of symbolic links (ELOOP)' };
    case 'ENOTDIR':
      return { problem: 'not-found', reason: 'file not found (a part of the path is not a folder)' };
    default:
      return { problem: 'io', reason: `cannot read (${code ?? (err as Error).message})` };
  }
}

function checkStats(path: string, st: Stats, options: BoundedReadOptions): number {
  const what = options.what ?? 'file';
  if (st.isDirectory()) throw new BoundedReadError(path, 'folder', `is a folder, not a${/^[aeiou]/i.test(what) ? 'n' : ''} ${what}`);
  if (!st.isFile()) throw new BoundedReadError(path, 'not-regular', `is not a regular file (${kindOf(st)}); only regular files are read`);
  if (st.size > options.maxBytes) throw new BoundedReadError(path, 'too-large', `${what} is too large (${st.size} bytes; the limit is ${options.maxBytes})`);
  if (st.size === 0 && !options.allowEmpty) throw new BoundedReadError(path, 'empty', `the ${what} is empty`);
  return st.size;
}

function wrap(path: string, err: unknown): BoundedReadError {
  if (err instanceof BoundedReadError) return err;
  const { problem, reason } = describeFsError(err);
  return new BoundedReadError(path, problem, reason);
}

/** A path given as text, or as the bytes of a name that is not valid UTF-8 (shown with \xNN for those bytes). */
function fsPath(given: string | Uint8Array): { path: string | Buffer; shown: string } {
  if (typeof given === 'string') return { path: given, shown: given };
  const bytes = Buffer.from(given.buffer, given.byteOffset, given.byteLength);
  return { path: bytes, shown: showFileName(bytes) };
}

/** Reads a regular file of at most `maxBytes` (synchronously: for worker threads and load-time reads). */
export function readBoundedSync(given: string | Uint8Array, options: BoundedReadOptions): Buffer {
  const { path, shown } = fsPath(given);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw wrap(shown, err);
  }
  try {
    const size = checkStats(shown, fstatSync(fd), options);
    const bytes = options.spareBytes ? Buffer.from(new ArrayBuffer(size + options.spareBytes), 0, size) : Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      const n = readSync(fd, bytes, filled, size - filled, filled);
      if (n === 0) break; // the file shrank while being read
      filled += n;
    }
    return filled === size ? bytes : bytes.subarray(0, filled);
  } catch (err) {
    throw wrap(shown, err);
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks that a file another library will open (onnxruntime reads ONNX files itself, which keeps external
 * data beside the model working) is a regular file within the limit; returns its size.
 */
export function checkFileSync(path: string, options: BoundedReadOptions): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw wrap(path, err);
  }
  try {
    return checkStats(path, fstatSync(fd), options);
  } catch (err) {
    throw wrap(path, err);
  } finally {
    closeSync(fd);
  }
}

/** The same read, asynchronously (the extension host's and the CLI's main thread). */
export async function readBounded(given: string | Uint8Array, options: BoundedReadOptions): Promise<Buffer> {
  const { path, shown } = fsPath(given);
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw wrap(shown, err);
  }
  try {
    const size = checkStats(shown, await handle.stat(), options);
    const bytes = Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await handle.read(bytes, filled, size - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return filled === size ? bytes : bytes.subarray(0, filled);
  } catch (err) {
    throw wrap(shown, err);
  } finally {
    await handle.close();
  }
}

/** UTF-8 text of a bounded file, with a leading byte-order mark removed (editors on Windows write one). */
export function readBoundedTextSync(path: string, options: BoundedReadOptions): string {
  return stripBom(readBoundedSync(path, options).toString('utf8'));
}

export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Inflates gzip data, stopping at `maxOutputBytes` (zlib stops writing there: a bomb costs at most the cap in
 * memory, not its full inflated size). Truncated or corrupt data is named as such.
 */
export function gunzipBounded(bytes: Uint8Array, maxOutputBytes: number, source: string): Buffer {
  try {
    return gunzipSync(bytes, { maxOutputLength: maxOutputBytes });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new BoundedReadError(source, 'too-large', `decompresses to more than ${maxOutputBytes} bytes (the limit); refused as a possible decompression bomb`);
    }
    if (e.code === 'Z_BUF_ERROR') throw new BoundedReadError(source, 'io', 'gzip data is truncated (unexpected end of file)');
    throw new BoundedReadError(source, 'io', `gzip data is corrupt (${e.code ?? e.message})`);
  }
}

/**
 * A running total over several reads (a TF.js model's weight files): each file is read at most once, and
 * the total is capped before each read.
 */
export class ReadBudget {
  private used = 0;
  private readonly seen = new Map<string, Buffer>();
  constructor(private readonly maxTotalBytes: number, private readonly what: string) {}

  readSync(path: string, maxBytes = this.maxTotalBytes): Buffer {
    const cached = this.seen.get(path);
    if (cached) return cached;
    const left = this.maxTotalBytes - this.used;
    let bytes: Buffer;
    try {
      bytes = readBoundedSync(path, { maxBytes: Math.min(maxBytes, left), what: this.what });
    } catch (err) {
      if (err instanceof BoundedReadError && err.problem === 'too-large' && left < maxBytes) {
        throw new BoundedReadError(path, 'too-large', `${this.what}s together exceed the limit of ${this.maxTotalBytes} bytes`);
      }
      throw err;
    }
    this.used += bytes.length;
    this.seen.set(path, bytes);
    return bytes;
  }
}

/** Whether `child` is `root` or lies under it (both absolute). */
function isWithin(child: string, root: string): boolean {
  const rel = relative(root, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** The real path of `path`, or of its nearest existing ancestor with the rest appended (a file yet to be written). */
function realPathOrNearest(path: string): string {
  let head = path;
  const tail: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(head), ...tail);
    } catch (err) {
      const parent = dirname(head);
      if (parent === head || !['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) return path;
      tail.unshift(basename(head));
      head = parent;
    }
  }
}

/**
 * Where a pair's symbolic links may lead besides the pair folder: the object stores of git-annex
 * (`.git/annex/objects`) and DVC (`.dvc/cache`) of the repository holding the pair, which keep large model
 * files as links into them.
 */
function objectStores(realDir: string): string[] {
  for (let d = realDir; ; d = dirname(d)) {
    if (existsSync(join(d, '.git')) || existsSync(join(d, '.dvc'))) return [join(d, '.git', 'annex', 'objects'), join(d, '.dvc', 'cache')];
    if (dirname(d) === d) return [];
  }
}

/**
 * The real path `target` leads to when that lies outside the real path of the pair folder `dir` (and outside
 * its repository's git-annex and DVC object stores), else null: a symbolic link inside the folder must not
 * read a file outside it, as a `..` path may not.
 */
export function linkedOutside(dir: string, target: string): string | null {
  const real = realPathOrNearest(target);
  const realDir = realPathOrNearest(dir);
  if (isWithin(real, realDir)) return null;
  return objectStores(realDir).some((store) => isWithin(real, store)) ? null : real;
}

/**
 * A path from a pair file (`ood-pair.json`'s model and calibration paths), resolved inside the pair's
 * folder; null when it is absolute, a URL, climbs out of the folder with `..`, or leads out of it through a
 * symbolic link (a pair from a cloned repository must not make OOD Lens read /etc/shadow or ~/.ssh and
 * report on it). Links into the repository's git-annex or DVC object store are followed.
 */
export function confinedPath(dir: string, p: string): string | null {
  if (p.includes('\0') || /^[a-z][a-z0-9+.-]+:/i.test(p) || isAbsolute(p) || win32.isAbsolute(p)) return null;
  const target = resolve(dir, p);
  const rel = relative(dir, target);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) return null;
  return linkedOutside(dir, target) === null ? target : null;
}
