/** Finding the images to score: files, folders (optionally recursive) and IDX archives, streamed in order. */
import { isUtf8 } from 'node:buffer';
import { readdir, stat } from 'node:fs/promises';
import { basename, extname, join, relative, resolve, sep } from 'node:path';
import { describeFsError, showFileName } from './boundedRead';

export { showFileName };
import { idxImages, looksLikeIdx, readIdxFile } from './idx';
import type { ScoreInput } from '../engineTypes';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.bmp', '.tif', '.tiff', '.avif', '.heic', '.heif', '.jp2', '.svg'];

export function isImagePath(path: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(path).toLowerCase());
}

export interface ListOptions {
  recursive?: boolean;
  signal?: AbortSignal;
}

/**
 * A listed image file, or a problem in place of what could not be listed (a folder that cannot be read, a
 * name that cannot be used): the problem becomes that path's error record, so nothing is dropped silently.
 */
export interface ListedFile {
  path: string;
  /** Why this path cannot be scored (set for listing problems only). */
  error?: string;
  /** The path as bytes, when a name in it is not valid UTF-8 (`path` shows those bytes as \xNN). */
  fsPath?: Buffer;
}

const NOT_UTF8_ARGUMENT = 'the name as given holds bytes that are not valid UTF-8 (shown as \uFFFD), which cannot be passed on by name; score its folder instead, or rename it';

function listingProblem(dir: string, err: unknown): ListedFile {
  return { path: dir, error: `cannot list this folder: ${describeFsError(err).reason}; its images were not scored` };
}

/**
 * Image files under a folder, sorted by name at each level, streamed: a level's listing is read at once (it
 * has to be sorted anyway; one readdir for the level costs ~1 µs per entry, where iterating opendir's entries
 * one by one cost ~5), and subfolders are listed only when reached. A folder that cannot be listed (no
 * permission, a path longer than the system allows) is yielded as a problem and the walk goes on. A name
 * that is not valid UTF-8 is listed with its bytes (`fsPath`, read by them) and shown with \xNN.
 */
export async function* walkImages(dir: string, recursive: boolean, signal?: AbortSignal, dirBytes?: Buffer): AsyncGenerator<ListedFile> {
  for await (const chunk of walkImageChunks(dir, recursive, signal, dirBytes)) yield* chunk;
}

/**
 * Files handed on a chunk at a time (`walkImageChunks`, `expandInputChunks`): at most this many, and never past
 * the next subfolder. A yield per file through the CLI's chain of async generators cost ~15 µs of its main
 * thread (and the compiles of five generators) per image; a chunk costs that once.
 */
const LISTED_CHUNK = 1024;

/** `walkImages`, in chunks of up to LISTED_CHUNK files in walk order (the same files, the same order). */
export async function* walkImageChunks(dir: string, recursive: boolean, signal?: AbortSignal, dirBytes?: Buffer): AsyncGenerator<ListedFile[]> {
  let listing;
  try {
    // Names as bytes: a name that is not valid UTF-8 would otherwise be mangled into one that does not exist.
    listing = await readdir(dirBytes ?? dir, { withFileTypes: true, encoding: 'buffer' });
  } catch (err) {
    yield [listingProblem(dir, err)];
    return;
  }
  // The raw name is kept only where the path must be given as bytes (a name that is not UTF-8, or under such a
  // folder): a Buffer per entry held for the whole walk cost ~25 MB of the main thread's heap for 100,000 files.
  const entries: { name: string; raw?: Buffer; isDir: boolean }[] = [];
  for (const entry of listing) {
    const raw = entry.name as unknown as Buffer;
    if (raw[0] === 0x2e) continue; // hidden
    const badName = !isUtf8(raw);
    const name = badName ? showFileName(raw) : raw.toString('utf8');
    const keep = dirBytes || badName ? raw : undefined;
    if (entry.isDirectory()) entries.push({ name, raw: keep, isDir: true });
    else if ((entry.isFile() || entry.isSymbolicLink()) && isImagePath(name)) entries.push({ name, raw: keep, isDir: false });
  }
  listing = undefined; // the Dirents are not needed during the walk
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let chunk: ListedFile[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    entries[i] = undefined!; // each entry is let go once walked
    if (signal?.aborted) return;
    const full = join(dir, e.name);
    // Under a folder whose name is not UTF-8, or itself so named: the real path as bytes.
    const bytes = e.raw ? Buffer.concat([dirBytes ?? Buffer.from(dir), Buffer.from(sep), e.raw]) : undefined;
    if (e.isDir) {
      if (!recursive) continue;
      if (chunk.length) yield chunk;
      chunk = [];
      yield* walkImageChunks(full, true, signal, bytes);
    } else {
      chunk.push(bytes ? { path: full, fsPath: bytes } : { path: full });
      if (chunk.length >= LISTED_CHUNK) {
        yield chunk;
        chunk = [];
      }
    }
  }
  if (chunk.length && !signal?.aborted) yield chunk;
}

/** Subfolders directly in `dir` (for the hint when a folder without --recursive held no images). */
export async function countSubfolders(dir: string): Promise<number> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.')).length;
  } catch {
    return 0;
  }
}

/** The message without the "path: " its thrower put first (the error record carries the path). */
function withoutPath(message: string, path: string): string {
  return message.startsWith(`${path}: `) ? message.slice(path.length + 2) : message;
}

/**
 * A score input with where it came from: `arg` is the index of the command-line argument, `key` the input's
 * path relative to that argument ('/'-separated; a file argument's own name; `name#i` for an IDX entry). The
 * key names the input the same way on every machine: `--shard` hashes it, `--resume` and `merge` match on it.
 */
export type ListedInput = ScoreInput & { arg: number; key: string };

function keyOf(root: string, path: string): string {
  // A walked file's path is join(root, …): its key is what follows the root (path.relative normalised both
  // paths again, for every file: ~1 µs a file on the main thread, 0.1 s of a 100,000-image run).
  const underRoot = path.length > root.length + 1 && path.startsWith(root) && path[root.length] === sep;
  const rel = underRoot ? path.slice(root.length + 1) : relative(root, path);
  if (!rel) return basename(root);
  return sep === '/' ? rel : rel.split(sep).join('/');
}

/**
 * Every argument becomes score inputs: a folder → its images; an IDX file → one raw image per entry
 * (path `file#index`); any other path → itself (so a missing or broken file becomes an error record). What
 * cannot be listed or parsed becomes an input carrying its error, reported as that path's error record.
 */
export async function* expandInputs(args: string[], options: ListOptions = {}): AsyncGenerator<ListedInput> {
  for await (const chunk of expandInputChunks(args, options)) yield* chunk;
}

/** `expandInputs`, in chunks (a folder's files up to LISTED_CHUNK at a time; an IDX archive's images likewise). */
export async function* expandInputChunks(args: string[], options: ListOptions = {}): AsyncGenerator<ListedInput[]> {
  for (let arg = 0; arg < args.length; arg++) {
    const path = resolve(args[arg]);
    const name = basename(path);
    let isDir = false;
    try {
      isDir = (await stat(path)).isDirectory();
    } catch {
      // An argument with bytes that are not UTF-8 reached us already replaced by U+FFFD: say so.
      yield [args[arg].includes('\uFFFD') ? { path, arg, key: name, error: `file not found: ${NOT_UTF8_ARGUMENT}` } : { path, arg, key: name }];
      continue;
    }
    if (isDir) {
      for await (const files of walkImageChunks(path, options.recursive ?? false, options.signal)) yield files.map((file) => ({ ...file, arg, key: keyOf(path, file.path) }));
    } else if (looksLikeIdx(path)) {
      let images;
      try {
        images = idxImages(readIdxFile(path), path);
      } catch (err) {
        // Named as an IDX problem: decoding the archive as an image would only say "not an image".
        yield [{ path, error: withoutPath((err as Error).message, path), arg, key: name }];
        continue;
      }
      for (let from = 0; from < images.count; from += LISTED_CHUNK) {
        if (options.signal?.aborted) return;
        const chunk: ListedInput[] = [];
        for (let i = from; i < Math.min(images.count, from + LISTED_CHUNK); i++) {
          chunk.push({ path: `${path}#${i}`, arg, key: `${name}#${i}`, source: { width: images.width, height: images.height, channels: 1, data: images.image(i) } });
        }
        yield chunk;
      }
    } else yield [{ path, arg, key: name }];
  }
}
