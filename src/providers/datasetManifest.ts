/**
 * Dataset manifests: CSV/TSV tables, JSON Lines and plain path lists that name image files. Finds the
 * column (or field) holding image paths and the label column, resolves paths relative to the manifest's
 * folder, and keeps each row's position in the document for hovers and decorations. No `vscode` import:
 * the extension side (manifestFeatures.ts) feeds it document text.
 *
 * Parsing yields to the event loop every few thousand rows (and can be aborted), so a 10,000-row manifest
 * never blocks typing in the editor that shows it.
 */
import { realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, normalize, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as csvParse } from 'csv-parse';
import { isImagePath } from '../inference/files';

export type ManifestFormat = 'csv' | 'tsv' | 'jsonl' | 'txt';

export interface ManifestRow {
  /** 0-based index among the manifest's data rows (header excluded). */
  index: number;
  /** 0-based document line of the path (the record's first line for CSV). */
  line: number;
  /** Character range of the path text on `line` (the whole line when it cannot be located). */
  start: number;
  end: number;
  /** Last document line of the record (a quoted CSV field may span lines). */
  endLine: number;
  /** The path as written, or null when the row has none. */
  rawPath: string | null;
  /** Absolute path, or null when the row has no usable path (see `problem`). */
  path: string | null;
  label: string | null;
  /** Why this row cannot be scored: malformed line, no path, remote URL, outside the workspace, … */
  problem: string | null;
}

export interface ParsedManifest {
  format: ManifestFormat;
  /** False when the document does not look like a list of images (no path column found). */
  isManifest: boolean;
  delimiter: string | null;
  header: string[] | null;
  /** Column name (or "column N") / JSON field holding the paths. */
  pathColumn: string | null;
  labelColumn: string | null;
  rows: ManifestRow[];
  /** Rows with a problem, by line (malformed JSON, unreadable CSV records, missing paths…). */
  problemCount: number;
  lineCount: number;
}

export interface ParseOptions {
  format: ManifestFormat;
  /** The manifest's folder: relative paths resolve against it. */
  baseDir: string;
  /** Workspace folder paths; in restricted mode, paths outside all of them are not read. */
  roots?: string[];
  restricted?: boolean;
  signal?: AbortSignal;
  /** Rows processed between yields to the event loop. */
  yieldEvery?: number;
}

/** Header names of a path column, compared after lower-casing and dropping non-alphanumerics. */
export const PATH_HEADER_NAMES = [
  'path', 'imagepath', 'filepath', 'image', 'file', 'filename', 'img', 'imgpath', 'imagefile', 'imgfile', 'imagefilename',
  'relativepath', 'relpath', 'fullpath', 'abspath', 'imagename', 'imgname', 'picture', 'photo', 'location', 'src', 'source', 'uri',
];
/** Header names of a label column. */
export const LABEL_HEADER_NAMES = ['label', 'labels', 'class', 'classname', 'classlabel', 'classid', 'target', 'y', 'category', 'gt', 'groundtruth', 'truelabel', 'digit', 'annotation'];

const SAMPLE_ROWS = 200;
const REMOTE_URL = /^[a-z][a-z0-9+.-]*:\/\//i;

export function normalizeHeaderName(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** A value that names an image file (by extension), local or remote. */
export function looksLikeImagePath(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const v = value.trim();
  if (!v || v.length > 4096 || /[\n\r\0]/.test(v)) return false;
  return isImagePath(v.replace(/[?#].*$/, ''));
}

export function formatForDocument(languageId: string, fileName: string): ManifestFormat | null {
  const lower = fileName.toLowerCase();
  if (languageId === 'csv' || lower.endsWith('.csv')) return 'csv';
  if (languageId === 'tsv' || lower.endsWith('.tsv') || lower.endsWith('.tab')) return 'tsv';
  if (languageId === 'jsonl' || lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  if (languageId === 'plaintext' || lower.endsWith('.txt') || lower.endsWith('.lst')) return 'txt';
  return null;
}

function isInside(child: string, root: string): boolean {
  const rel = relative(root, child);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

export function isInsideRoots(path: string, roots: readonly string[]): boolean {
  return roots.some((r) => isInside(path, resolve(r)));
}

/** The deepest folder that contains every path (absolute paths), or undefined for none. */
export function commonFolder(paths: readonly string[]): string | undefined {
  if (!paths.length) return undefined;
  let parts = dirname(paths[0]).split(sep);
  for (const p of paths.slice(1)) {
    const q = dirname(p).split(sep);
    let i = 0;
    while (i < parts.length && i < q.length && parts[i] === q[i]) i++;
    parts = parts.slice(0, i);
  }
  return parts.join(sep) || sep;
}

export const OUTSIDE_WORKSPACE = 'outside the workspace folders: not read in Restricted Mode';

/** Resolves a path as written in a manifest; relative paths are relative to `baseDir`. */
export function resolveManifestPath(raw: string, baseDir: string, options: { roots?: readonly string[]; restricted?: boolean } = {}): { path: string | null; problem: string | null } {
  let v = raw.trim();
  if (!v) return { path: null, problem: 'empty path' };
  if (/[\0]/.test(v)) return { path: null, problem: 'the path contains a NUL character' };
  if (/^file:\/\//i.test(v)) {
    try {
      v = fileURLToPath(v);
    } catch (err) {
      return { path: null, problem: `invalid file URI (${(err as Error).message})` };
    }
  } else if (REMOTE_URL.test(v)) {
    return { path: null, problem: `remote URL (${v.slice(0, v.indexOf(':'))}): only local files are scored` };
  }
  const path = isAbsolute(v) ? normalize(v) : resolve(baseDir, v);
  if (options.restricted && !isInsideRoots(path, options.roots ?? [])) return { path, problem: OUTSIDE_WORKSPACE };
  return { path, problem: null };
}

export type Readability = { ok: true; size: number; mtimeMs: number } | { ok: false; missing: boolean; problem: string };

/**
 * Whether a resolved path can be read: it exists, is a file, and (in restricted mode) its real path —
 * after following symbolic links — is still inside a workspace folder.
 */
export async function checkReadable(path: string, options: { roots?: readonly string[]; restricted?: boolean } = {}): Promise<Readability> {
  if (options.restricted && !isInsideRoots(path, options.roots ?? [])) return { ok: false, missing: false, problem: OUTSIDE_WORKSPACE };
  try {
    const st = await stat(path);
    if (st.isDirectory()) return { ok: false, missing: false, problem: 'is a folder, not an image' };
    if (options.restricted) {
      const real = await realpath(path);
      const realRoots = await Promise.all((options.roots ?? []).map((r) => realpath(r).catch(() => r)));
      if (!isInsideRoots(real, realRoots)) return { ok: false, missing: false, problem: `links to ${real}, ${OUTSIDE_WORKSPACE}` };
    }
    return { ok: true, size: st.size, mtimeMs: st.mtimeMs };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, missing: true, problem: 'file not found' };
    if (code === 'EACCES' || code === 'EPERM') return { ok: false, missing: false, problem: 'permission denied' };
    return { ok: false, missing: false, problem: `cannot read (${(err as Error).message})` };
  }
}

class AbortError extends Error {
  constructor() {
    super('manifest parsing was cancelled');
    this.name = 'AbortError';
  }
}

function yieldNow(): Promise<void> {
  return new Promise((res) => setImmediate(res));
}

/** Splits text into lines (LF or CRLF), without the line ends. A leading BOM is dropped. */
export function splitLines(text: string): string[] {
  return text.replace(/^\uFEFF/, '').split(/\r?\n/);
}

// ---------------------------------------------------------------------------------------------------------
// Plain path lists

const TXT_LINE = new RegExp(`^(.+?\\.(?:${['png', 'jpe?g', 'webp', 'gif', 'bmp', 'tiff?', 'avif', 'heic', 'heif', 'jp2', 'svg'].join('|')}))(?:[\\s,;]+(\\S.*?))?\\s*$`, 'i');

/** Path (and optional label after whitespace) of one line of a path list, or null. */
export function parseListLine(line: string): { path: string; pathStart: number; label: string | null } | null {
  const trimmed = line.trim();
  if (!trimmed || trimmed.startsWith('#')) return null;
  const offset = line.indexOf(trimmed);
  if (looksLikeImagePath(trimmed)) return { path: trimmed, pathStart: offset, label: null };
  const m = TXT_LINE.exec(trimmed);
  if (!m) return null;
  return { path: m[1], pathStart: offset, label: m[2] ?? null };
}

/** A plain-text document is a manifest when most of its first non-empty lines name image files. */
export function looksLikeImageList(text: string): boolean {
  let seen = 0;
  let images = 0;
  for (const line of splitLines(text.slice(0, 64 * 1024))) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    seen++;
    if (parseListLine(line)) images++;
    if (seen >= SAMPLE_ROWS) break;
  }
  return images > 0 && images / seen >= 0.6;
}

// ---------------------------------------------------------------------------------------------------------
// CSV / TSV

/** Most frequent delimiter (outside quotes) in the first line among , ; | and tab. */
export function sniffDelimiter(text: string, format: ManifestFormat): string {
  if (format === 'tsv') return '\t';
  const first = splitLines(text.slice(0, 8192)).find((l) => l.trim()) ?? '';
  let best = ',';
  let bestCount = 0;
  for (const d of [',', ';', '\t', '|']) {
    const n = fieldSpans(first, d).length - 1;
    if (n > bestCount) {
      best = d;
      bestCount = n;
    }
  }
  return best;
}

/** Character spans of the fields of one CSV line (quotes honoured; a span includes its quotes). */
export function fieldSpans(line: string, delimiter: string): { start: number; end: number }[] {
  const spans: { start: number; end: number }[] = [];
  let i = 0;
  for (;;) {
    const start = i;
    if (line[i] === '"') {
      i++;
      while (i < line.length) {
        if (line[i] === '"') {
          if (line[i + 1] === '"') i += 2;
          else {
            i++;
            break;
          }
        } else i++;
      }
      while (i < line.length && line[i] !== delimiter) i++;
    } else {
      while (i < line.length && line[i] !== delimiter) i++;
    }
    spans.push({ start, end: i });
    if (i >= line.length) break;
    i++; // delimiter
  }
  return spans;
}

/** The span of the text of a field, without its quotes and surrounding spaces. */
function innerSpan(line: string, span: { start: number; end: number }): { start: number; end: number } {
  let { start, end } = span;
  while (start < end && /\s/.test(line[start])) start++;
  while (end > start && /\s/.test(line[end - 1])) end--;
  if (line[start] === '"' && end - start >= 2 && line[end - 1] === '"') return { start: start + 1, end: end - 1 };
  return { start, end };
}

interface CsvRecord {
  values: string[];
  /** 0-based first and last line. */
  line: number;
  endLine: number;
  error?: string;
}

async function readCsvRecords(text: string, delimiter: string, signal?: AbortSignal): Promise<CsvRecord[]> {
  const records: CsvRecord[] = [];
  const parser = csvParse({
    delimiter,
    bom: true,
    info: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_records_with_error: true,
  });
  parser.on('readable', () => {
    let rec: { record: string[]; info: { lines: number } } | null;
    while ((rec = parser.read()) !== null) {
      const endLine = rec.info.lines - 1;
      let inner = 0;
      for (const v of rec.record) for (let k = v.indexOf('\n'); k >= 0; k = v.indexOf('\n', k + 1)) inner++;
      records.push({ values: rec.record, line: endLine - inner, endLine });
    }
  });
  parser.on('skip', (err: Error & { lines?: number }) => {
    const line = (err.lines ?? 1) - 1;
    records.push({ values: [], line, endLine: line, error: `unreadable CSV record: ${err.message}` });
  });
  const done = new Promise<void>((res, rej) => {
    parser.on('end', res);
    parser.on('error', rej);
  });
  // Small chunks: csv-parse handles one synchronously, so each is one short slice of the event loop.
  const CHUNK = 4 * 1024;
  for (let at = 0; at < text.length; at += CHUNK) {
    if (signal?.aborted) {
      parser.destroy();
      throw new AbortError();
    }
    const ok = parser.write(text.slice(at, at + CHUNK));
    await (ok ? yieldNow() : new Promise<void>((res) => parser.once('drain', res)));
  }
  parser.end();
  await done;
  records.sort((a, b) => a.line - b.line);
  return records;
}

function pickColumn(names: string[], candidates: string[]): number {
  const normalized = names.map(normalizeHeaderName);
  for (const c of candidates) {
    const i = normalized.indexOf(c);
    if (i >= 0) return i;
  }
  return -1;
}

/** Index of the column whose values most often look like image paths (≥ half of the sample), or -1. */
function columnByContent(rows: string[][]): number {
  const counts: number[] = [];
  let n = 0;
  for (const r of rows) {
    if (!r.length || (r.length === 1 && !r[0].trim())) continue;
    n++;
    r.forEach((v, i) => {
      if (looksLikeImagePath(v)) counts[i] = (counts[i] ?? 0) + 1;
    });
  }
  let best = -1;
  for (let i = 0; i < counts.length; i++) if ((counts[i] ?? 0) > (counts[best] ?? 0)) best = i;
  return best >= 0 && n > 0 && counts[best] / n >= 0.5 ? best : -1;
}

/** Without a header, a label column is a short-valued column other than the path with few distinct values. */
function labelByContent(rows: string[][], pathCol: number): number {
  const width = Math.max(0, ...rows.map((r) => r.length));
  if (width !== 2) return -1;
  const col = pathCol === 0 ? 1 : 0;
  const values = rows.map((r) => r[col]).filter((v): v is string => v !== undefined && v.trim() !== '');
  if (values.length < rows.length * 0.8 || values.some((v) => v.length > 40 || looksLikeImagePath(v))) return -1;
  const distinct = new Set(values).size;
  return distinct <= Math.max(2, Math.min(1000, values.length / 2)) ? col : -1;
}

/** Offset just past the n-th line break (or the text's length). */
function afterLines(text: string, n: number): number {
  let at = 0;
  for (let i = 0; i < n; i++) {
    const k = text.indexOf('\n', at);
    if (k < 0) return text.length;
    at = k + 1;
  }
  return at;
}

async function parseCsv(text: string, options: ParseOptions): Promise<ParsedManifest> {
  const delimiter = sniffDelimiter(text, options.format);
  const lines = splitLines(text);
  // A large table without image paths is not read in full: its first rows decide.
  const headEnd = afterLines(text, SAMPLE_ROWS + 1);
  if (headEnd < text.length) {
    const head = (await readCsvRecords(text.slice(0, headEnd), delimiter, options.signal)).filter((r) => !r.error);
    const rows = head.map((r) => r.values);
    if (head.length && pickColumn(rows[0], PATH_HEADER_NAMES) < 0 && columnByContent(rows) < 0 && columnByContent(rows.slice(1)) < 0) {
      return { format: options.format, isManifest: false, delimiter, header: null, pathColumn: null, labelColumn: null, rows: [], problemCount: 0, lineCount: lines.length };
    }
  }
  const records = await readCsvRecords(text, delimiter, options.signal);
  const good = records.filter((r) => !r.error && !(r.values.length === 1 && !r.values[0].trim()));
  const result: ParsedManifest = { format: options.format, isManifest: false, delimiter, header: null, pathColumn: null, labelColumn: null, rows: [], problemCount: 0, lineCount: lines.length };
  if (!good.length) return result;
  const first = good[0].values;
  let headerRow: CsvRecord | null = null;
  let pathCol = pickColumn(first, PATH_HEADER_NAMES);
  // A header name only counts when the cell itself is not an image path ("image.png" is data).
  if (pathCol >= 0 && !looksLikeImagePath(first[pathCol])) headerRow = good[0];
  else {
    pathCol = columnByContent(good.slice(1, SAMPLE_ROWS + 1).map((r) => r.values));
    if (pathCol < 0) pathCol = columnByContent(good.slice(0, SAMPLE_ROWS).map((r) => r.values));
    if (pathCol < 0) return result;
    if (!looksLikeImagePath(first[pathCol]) && !first.some(looksLikeImagePath)) headerRow = good[0];
  }
  const header = headerRow ? headerRow.values.map((h) => h.trim()) : null;
  let labelCol = header ? pickColumn(header, LABEL_HEADER_NAMES) : -1;
  if (labelCol === pathCol) labelCol = -1;
  if (!header) labelCol = labelByContent(good.slice(0, SAMPLE_ROWS).map((r) => r.values), pathCol);
  result.isManifest = true;
  result.header = header;
  result.pathColumn = header?.[pathCol] || `column ${pathCol + 1}`;
  result.labelColumn = labelCol >= 0 ? header?.[labelCol] || `column ${labelCol + 1}` : null;
  const every = options.yieldEvery ?? 500;
  let index = 0;
  for (let k = 0; k < records.length; k++) {
    const rec = records[k];
    if (rec === headerRow) continue;
    if (k % every === every - 1) {
      await yieldNow();
      if (options.signal?.aborted) throw new AbortError();
    }
    const lineText = lines[rec.line] ?? '';
    const whole = { start: 0, end: lineText.length };
    if (rec.error) {
      result.rows.push({ index: index++, line: rec.line, endLine: rec.endLine, ...whole, rawPath: null, path: null, label: null, problem: rec.error });
      continue;
    }
    if (rec.values.length === 1 && !rec.values[0].trim()) continue; // empty line
    const raw = rec.values[pathCol];
    const label = labelCol >= 0 ? (rec.values[labelCol]?.trim() ?? null) || null : null;
    let span = whole;
    if (rec.line === rec.endLine || !(raw ?? '').includes('\n')) {
      const spans = fieldSpans(lineText, delimiter);
      if (spans[pathCol]) span = innerSpan(lineText, spans[pathCol]);
    }
    if (raw === undefined || !raw.trim()) {
      result.rows.push({ index: index++, line: rec.line, endLine: rec.endLine, ...span, rawPath: null, path: null, label, problem: `no value in the ${result.pathColumn} column` });
      continue;
    }
    const { path, problem } = resolveManifestPath(raw, options.baseDir, options);
    result.rows.push({ index: index++, line: rec.line, endLine: rec.endLine, ...span, rawPath: raw.trim(), path, label, problem });
  }
  result.problemCount = result.rows.filter((r) => r.problem).length;
  return result;
}

// ---------------------------------------------------------------------------------------------------------
// JSON Lines

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Field path (e.g. "image" or "image.path") → the image path in a JSON object, if any. */
function jsonPathCandidates(obj: Record<string, Json>): { key: string; value: string }[] {
  const out: { key: string; value: string }[] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === 'string') out.push({ key: k, value: v });
    else if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) if (typeof v2 === 'string') out.push({ key: `${k}.${k2}`, value: v2 });
    }
  }
  return out;
}

function getField(obj: Record<string, Json>, key: string): Json | undefined {
  const dot = key.indexOf('.');
  if (dot < 0) return obj[key];
  const inner = obj[key.slice(0, dot)];
  return inner && typeof inner === 'object' && !Array.isArray(inner) ? inner[key.slice(dot + 1)] : undefined;
}

function choosePathField(objects: Record<string, Json>[]): string | null {
  const byName = new Map<string, number>();
  const byContent = new Map<string, number>();
  for (const o of objects) {
    for (const { key, value } of jsonPathCandidates(o)) {
      const last = normalizeHeaderName(key.slice(key.lastIndexOf('.') + 1));
      const named = PATH_HEADER_NAMES.includes(last) || PATH_HEADER_NAMES.includes(normalizeHeaderName(key));
      if (looksLikeImagePath(value)) {
        byContent.set(key, (byContent.get(key) ?? 0) + 1);
        if (named) byName.set(key, (byName.get(key) ?? 0) + 1);
      }
    }
  }
  const best = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1] || a[0].split('.').length - b[0].split('.').length)[0];
  const named = best(byName);
  if (named && named[1] >= objects.length * 0.3) return named[0];
  const content = best(byContent);
  return content && content[1] >= objects.length * 0.5 ? content[0] : null;
}

function chooseLabelField(objects: Record<string, Json>[], pathField: string): string | null {
  const counts = new Map<string, number>();
  for (const o of objects) {
    for (const [k, v] of Object.entries(o)) {
      if (k === pathField || !LABEL_HEADER_NAMES.includes(normalizeHeaderName(k))) continue;
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  }
  let best: string | null = null;
  for (const name of LABEL_HEADER_NAMES) {
    for (const [k, n] of counts) if (normalizeHeaderName(k) === name && n > 0 && !best) best = k;
  }
  return best;
}

/** Where a JSON string value sits in its line: after `"key"`, as its JSON literal. */
function locateJsonValue(line: string, key: string, value: string): { start: number; end: number } {
  const lastKey = key.slice(key.lastIndexOf('.') + 1);
  const keyAt = line.indexOf(JSON.stringify(lastKey));
  const literal = JSON.stringify(value);
  let at = line.indexOf(literal, keyAt >= 0 ? keyAt : 0);
  if (at >= 0) return { start: at + 1, end: at + literal.length - 1 };
  at = line.indexOf(value);
  if (at >= 0) return { start: at, end: at + value.length };
  return { start: 0, end: line.length };
}

async function parseJsonl(text: string, options: ParseOptions): Promise<ParsedManifest> {
  const lines = splitLines(text);
  const result: ParsedManifest = { format: 'jsonl', isManifest: false, delimiter: null, header: null, pathColumn: null, labelColumn: null, rows: [], problemCount: 0, lineCount: lines.length };
  const parsed: { line: number; obj?: Record<string, Json>; error?: string }[] = [];
  const every = options.yieldEvery ?? 500;
  for (let i = 0; i < lines.length; i++) {
    if (i % every === every - 1) {
      await yieldNow();
      if (options.signal?.aborted) throw new AbortError();
    }
    const t = lines[i].trim();
    if (!t) continue;
    try {
      const v = JSON.parse(t) as Json;
      if (v && typeof v === 'object' && !Array.isArray(v)) parsed.push({ line: i, obj: v });
      else if (typeof v === 'string') parsed.push({ line: i, obj: { path: v } });
      else parsed.push({ line: i, error: `line ${i + 1}: a JSON ${Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v}, not an object` });
    } catch (err) {
      parsed.push({ line: i, error: `malformed JSON on line ${i + 1}: ${(err as Error).message}` });
    }
  }
  const sample = parsed.filter((p) => p.obj).slice(0, SAMPLE_ROWS).map((p) => p.obj!);
  const pathField = sample.length ? choosePathField(sample) : null;
  if (!pathField) return result;
  const labelField = chooseLabelField(sample, pathField);
  result.isManifest = true;
  result.pathColumn = pathField;
  result.labelColumn = labelField;
  let index = 0;
  for (const p of parsed) {
    const lineText = lines[p.line];
    const base = { index: index++, line: p.line, endLine: p.line };
    if (p.error) {
      result.rows.push({ ...base, start: 0, end: lineText.length, rawPath: null, path: null, label: null, problem: p.error });
      continue;
    }
    const raw = getField(p.obj!, pathField);
    const lv = labelField ? p.obj![labelField] : undefined;
    const label = lv === undefined || lv === null || typeof lv === 'object' ? null : String(lv);
    if (typeof raw !== 'string' || !raw.trim()) {
      result.rows.push({ ...base, start: 0, end: lineText.length, rawPath: null, path: null, label, problem: `no "${pathField}" string on line ${p.line + 1}` });
      continue;
    }
    const span = locateJsonValue(lineText, pathField, raw);
    const { path, problem } = resolveManifestPath(raw, options.baseDir, options);
    result.rows.push({ ...base, ...span, rawPath: raw.trim(), path, label, problem });
  }
  result.problemCount = result.rows.filter((r) => r.problem).length;
  return result;
}

// ---------------------------------------------------------------------------------------------------------
// Path lists

async function parseTxt(text: string, options: ParseOptions): Promise<ParsedManifest> {
  const lines = splitLines(text);
  const result: ParsedManifest = { format: 'txt', isManifest: looksLikeImageList(text), delimiter: null, header: null, pathColumn: 'path', labelColumn: null, rows: [], problemCount: 0, lineCount: lines.length };
  if (!result.isManifest) return result;
  const every = options.yieldEvery ?? 500;
  let index = 0;
  let labels = 0;
  for (let i = 0; i < lines.length; i++) {
    if (i % every === every - 1) {
      await yieldNow();
      if (options.signal?.aborted) throw new AbortError();
    }
    const t = lines[i].trim();
    if (!t || t.startsWith('#')) continue;
    const entry = parseListLine(lines[i]);
    if (!entry) {
      result.rows.push({ index: index++, line: i, endLine: i, start: 0, end: lines[i].length, rawPath: null, path: null, label: null, problem: 'not an image path' });
      continue;
    }
    if (entry.label) labels++;
    const { path, problem } = resolveManifestPath(entry.path, options.baseDir, options);
    result.rows.push({ index: index++, line: i, endLine: i, start: entry.pathStart, end: entry.pathStart + entry.path.length, rawPath: entry.path, path, label: entry.label, problem });
  }
  if (labels) result.labelColumn = 'second field';
  result.problemCount = result.rows.filter((r) => r.problem).length;
  return result;
}

/** Parses a manifest's text. Throws an AbortError (name 'AbortError') when `signal` aborts. */
export async function parseManifest(text: string, options: ParseOptions): Promise<ParsedManifest> {
  switch (options.format) {
    case 'csv':
    case 'tsv':
      return parseCsv(text, options);
    case 'jsonl':
      return parseJsonl(text, options);
    case 'txt':
      return parseTxt(text, options);
  }
}

/** The row whose record covers a 0-based document line (rows are sorted by line). */
export function rowAtLine(rows: readonly ManifestRow[], line: number): ManifestRow | undefined {
  let lo = 0;
  let hi = rows.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = rows[mid];
    if (line < r.line) hi = mid - 1;
    else if (line > r.endLine) lo = mid + 1;
    else return r;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Outcomes and the summary line

/** The fields of a score that manifests use (an ImageResult satisfies it). */
export interface RowScore {
  prediction: number | null;
  label: string | null;
  msp: number | null;
  verdict: 'in-distribution' | 'out-of-distribution' | 'uncalibrated' | 'error';
  error: string | null;
}

export const LABEL_ERROR_MSP = 0.9;

/**
 * Whether a row's label and the prediction disagree: true/false, or null when the label cannot be
 * matched to the classifier's classes (by name, or by index when it is an integer).
 */
const classIndexCache = new WeakMap<readonly string[], Map<string, number>>();

function classIndex(classLabels: readonly string[]): Map<string, number> {
  let m = classIndexCache.get(classLabels);
  if (!m) {
    m = new Map();
    classLabels.forEach((c, i) => {
      const k = c.trim().toLowerCase();
      if (!m!.has(k)) m!.set(k, i);
    });
    classIndexCache.set(classLabels, m);
  }
  return m;
}

export function labelAgrees(rowLabel: string, score: RowScore, classLabels: readonly string[]): boolean | null {
  const l = rowLabel.trim().toLowerCase();
  if (!l || score.prediction === null) return null;
  const byName = classIndex(classLabels).get(l);
  if (byName !== undefined) return byName === score.prediction;
  if (/^\d+$/.test(l) && Number(l) < classLabels.length) return Number(l) === score.prediction;
  return null;
}

/** A possible label error: confident (MSP ≥ 0.9) in-distribution prediction that contradicts the row's label. */
export function isLabelDisagreement(rowLabel: string | null, score: RowScore, classLabels: readonly string[]): boolean {
  if (!rowLabel || score.verdict !== 'in-distribution' || score.msp === null || score.msp < LABEL_ERROR_MSP) return false;
  return labelAgrees(rowLabel, score, classLabels) === false;
}

export type RowState =
  | { kind: 'scored'; score: RowScore; disagreement: boolean }
  | { kind: 'missing' }
  | { kind: 'problem'; message: string }
  | { kind: 'pending' };

export interface ManifestSummary {
  rows: number;
  scored: number;
  inDistribution: number;
  outOfDistribution: number;
  uncalibrated: number;
  disagreements: number;
  missing: number;
  /** Unreadable rows, malformed lines, blocked paths and images that failed to decode. */
  problems: number;
  pending: number;
}

export function summarize(states: Iterable<RowState>): ManifestSummary {
  const s: ManifestSummary = { rows: 0, scored: 0, inDistribution: 0, outOfDistribution: 0, uncalibrated: 0, disagreements: 0, missing: 0, problems: 0, pending: 0 };
  for (const st of states) {
    s.rows++;
    if (st.kind === 'missing') s.missing++;
    else if (st.kind === 'problem') s.problems++;
    else if (st.kind === 'pending') s.pending++;
    else if (st.score.verdict === 'error') s.problems++;
    else {
      s.scored++;
      if (st.score.verdict === 'in-distribution') s.inDistribution++;
      else if (st.score.verdict === 'out-of-distribution') s.outOfDistribution++;
      else s.uncalibrated++;
      if (st.disagreement) s.disagreements++;
    }
  }
  return s;
}

const nf = new Intl.NumberFormat('en-US');

function plural(n: number, one: string, many = `${one}s`): string {
  return `${nf.format(n)} ${n === 1 ? one : many}`;
}

/** "1,204 images · 37 out-of-distribution · 12 label disagreements · 3 missing". */
export function formatSummary(s: ManifestSummary): string {
  const parts = [plural(s.rows, 'image'), `${nf.format(s.outOfDistribution)} out-of-distribution`];
  if (s.disagreements) parts.push(plural(s.disagreements, 'label disagreement'));
  if (s.uncalibrated) parts.push(`${nf.format(s.uncalibrated)} uncalibrated`);
  if (s.missing) parts.push(`${nf.format(s.missing)} missing`);
  if (s.problems) parts.push(plural(s.problems, 'problem'));
  if (s.pending) parts.push(`${nf.format(s.pending)} not scored`);
  return parts.join(' · ');
}
