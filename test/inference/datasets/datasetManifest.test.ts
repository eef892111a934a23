/**
 * Dataset manifests: CSV/TSV/JSONL/txt samples as people write them (quoted commas, BOM, CRLF, no header,
 * malformed JSON lines), path resolution and Restricted Mode, file checks, label disagreement, the summary
 * line, and a 10,000-row manifest that must parse correctly while yielding to the event loop.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  checkReadable, commonFolder, fieldSpans, formatForDocument, formatSummary, isLabelDisagreement, looksLikeImageList, looksLikeImagePath, OUTSIDE_WORKSPACE, parseManifest,
  type ParseOptions, resolveManifestPath, rowAtLine, type RowScore, summarize, type RowState,
} from '../../../src/inference/datasets/datasetManifest';

const base = '/ws/data';
const opts = (format: ParseOptions['format'], extra: Partial<ParseOptions> = {}): ParseOptions => ({ format, baseDir: base, ...extra });

/** The text a row's [start, end) range covers. */
function spanText(text: string, row: { line: number; start: number; end: number }): string {
  return text.replace(/^\uFEFF/, '').split(/\r?\n/)[row.line].slice(row.start, row.end);
}

describe('CSV and TSV', () => {
  test('header by name, quoted commas, label column, positions', async () => {
    const text = 'id,image_path,label\n1,"train/a,b.png",3\n2,train/c.png,7\n3,"sub dir/""q"".jpg",1\n';
    const m = await parseManifest(text, opts('csv'));
    assert.equal(m.isManifest, true);
    assert.deepEqual(m.header, ['id', 'image_path', 'label']);
    assert.equal(m.pathColumn, 'image_path');
    assert.equal(m.labelColumn, 'label');
    assert.equal(m.rows.length, 3);
    assert.deepEqual(m.rows.map((r) => r.rawPath), ['train/a,b.png', 'train/c.png', 'sub dir/"q".jpg']);
    assert.deepEqual(m.rows.map((r) => r.path), [resolve(base, 'train/a,b.png'), resolve(base, 'train/c.png'), resolve(base, 'sub dir/"q".jpg')]);
    assert.deepEqual(m.rows.map((r) => r.label), ['3', '7', '1']);
    assert.deepEqual(m.rows.map((r) => r.line), [1, 2, 3]);
    assert.equal(spanText(text, m.rows[0]), 'train/a,b.png');
    assert.equal(spanText(text, m.rows[1]), 'train/c.png');
    assert.equal(spanText(text, m.rows[2]), 'sub dir/""q"".jpg');
  });

  test('BOM and CRLF', async () => {
    const text = '\uFEFFfilename,class\r\nimgs/0001.png,cat\r\nimgs/0002.png,dog\r\n';
    const m = await parseManifest(text, opts('csv'));
    assert.equal(m.pathColumn, 'filename');
    assert.equal(m.labelColumn, 'class');
    assert.deepEqual(m.rows.map((r) => [r.rawPath, r.label, r.line]), [['imgs/0001.png', 'cat', 1], ['imgs/0002.png', 'dog', 2]]);
    assert.equal(spanText(text, m.rows[1]), 'imgs/0002.png');
  });

  test('header found by content when its name is unusual', async () => {
    const text = 'sample,picture_location,y\n0,a.png,1\n1,b.png,2\n';
    const m = await parseManifest(text, opts('csv'));
    assert.equal(m.pathColumn, 'picture_location');
    assert.equal(m.labelColumn, 'y');
    assert.equal(m.rows.length, 2);
  });

  test('no header: column by content, label by content', async () => {
    const text = 'x/1.png,5\nx/2.png,3\nx/3.png,5\nx/4.png,3\n';
    const m = await parseManifest(text, opts('csv'));
    assert.equal(m.header, null);
    assert.equal(m.pathColumn, 'column 1');
    assert.equal(m.labelColumn, 'column 2');
    assert.equal(m.rows.length, 4);
    assert.equal(m.rows[0].line, 0);
    assert.equal(m.rows[0].label, '5');
  });

  test('a header cell that is itself an image path is data', async () => {
    const m = await parseManifest('image.png\nother.png\n', opts('csv'));
    assert.equal(m.header, null);
    assert.equal(m.rows.length, 2);
  });

  test('semicolon-separated .csv and TSV', async () => {
    const semi = await parseManifest('path;label\na.png;1\n', opts('csv'));
    assert.equal(semi.delimiter, ';');
    assert.equal(semi.rows[0].label, '1');
    const text = 'file\tlabel\n"with\ttab.png"\t2\nplain.webp\t4\n';
    const tsv = await parseManifest(text, opts('tsv'));
    assert.deepEqual(tsv.rows.map((r) => r.rawPath), ['with\ttab.png', 'plain.webp']);
    assert.equal(spanText(text, tsv.rows[1]), 'plain.webp');
  });

  test('multi-line quoted field, empty lines, missing value, unclosed quote', async () => {
    const text = 'path,label,note\na.png,1,"two\nlines"\n\nb.png,2,x\n,3,no path\nc.png,4,"never closed\n';
    const m = await parseManifest(text, opts('csv'));
    const byLine = new Map(m.rows.map((r) => [r.line, r]));
    assert.equal(byLine.get(1)?.rawPath, 'a.png');
    assert.equal(byLine.get(1)?.endLine, 2);
    assert.equal(rowAtLine(m.rows, 2)?.rawPath, 'a.png', 'the second line of a record belongs to it');
    assert.equal(byLine.get(4)?.rawPath, 'b.png');
    assert.match(byLine.get(5)?.problem ?? '', /no value in the path column/);
    const last = m.rows[m.rows.length - 1];
    assert.ok(last.problem, 'an unclosed quote is reported, not thrown');
    assert.ok(m.problemCount >= 2);
  });

  test('a CSV without image paths is not a manifest', async () => {
    const m = await parseManifest('a,b,c\n1,2,3\n4,5,6\n', opts('csv'));
    assert.equal(m.isManifest, false);
    assert.equal(m.rows.length, 0);
  });

  test('fieldSpans honours quotes and doubled quotes', () => {
    assert.deepEqual(fieldSpans('a,"b,c",d', ','), [{ start: 0, end: 1 }, { start: 2, end: 7 }, { start: 8, end: 9 }]);
    assert.deepEqual(fieldSpans('"x""y",', ','), [{ start: 0, end: 6 }, { start: 7, end: 7 }]);
  });
});

describe('JSON Lines', () => {
  test('path field by name, nested field, label, malformed lines with their line number', async () => {
    const text = [
      '{"file_name": "imgs/a.png", "label": 3}',
      '{"file_name": "imgs/b.png", "label": "7", "extra": {"k": 1}}',
      '{"file_name": "imgs/c.png", "label": 1',
      '',
      '[1, 2]',
      '{"other": 1}',
      '{"file_name": "imgs/d.png"}',
    ].join('\n');
    const m = await parseManifest(text, opts('jsonl'));
    assert.equal(m.isManifest, true);
    assert.equal(m.pathColumn, 'file_name');
    assert.equal(m.labelColumn, 'label');
    const at = (line: number) => m.rows.find((r) => r.line === line)!;
    assert.equal(at(0).rawPath, 'imgs/a.png');
    assert.equal(at(0).label, '3');
    assert.equal(spanText(text, at(0)), 'imgs/a.png');
    assert.equal(at(1).label, '7');
    assert.match(at(2).problem!, /^malformed JSON on line 3/);
    assert.match(at(4).problem!, /line 5: a JSON array, not an object/);
    assert.match(at(5).problem!, /no "file_name" string on line 6/);
    assert.equal(at(6).rawPath, 'imgs/d.png');
    assert.equal(at(6).label, null);
    assert.equal(m.problemCount, 3);
  });

  test('field by content, nested image.path, CRLF', async () => {
    const text = '{"id": 1, "image": {"path": "x/1.jpg"}, "target": 0}\r\n{"id": 2, "image": {"path": "x/2.jpg"}, "target": 1}\r\n';
    const m = await parseManifest(text, opts('jsonl'));
    assert.equal(m.pathColumn, 'image.path');
    assert.equal(m.labelColumn, 'target');
    assert.deepEqual(m.rows.map((r) => r.rawPath), ['x/1.jpg', 'x/2.jpg']);
    assert.equal(spanText(text, m.rows[1]), 'x/2.jpg');
  });

  test('escaped characters in the path keep the span on the literal', async () => {
    const text = '{"path": "dir\\\\with\\"quote.png"}\n';
    const m = await parseManifest(text, opts('jsonl'));
    assert.equal(m.rows[0].rawPath, 'dir\\with"quote.png');
    assert.equal(spanText(text, m.rows[0]), 'dir\\\\with\\"quote.png');
  });
});

describe('plain path lists', () => {
  test('paths with optional labels, comments and blank lines', async () => {
    const text = '# my list\nimages/a.png\n\nimages/b b.jpg 4\n  images/c.webp\nnot a path\n';
    assert.equal(looksLikeImageList(text), true);
    const m = await parseManifest(text, opts('txt'));
    assert.equal(m.isManifest, true);
    assert.deepEqual(m.rows.map((r) => [r.rawPath, r.label]), [['images/a.png', null], ['images/b b.jpg', '4'], ['images/c.webp', null], [null, null]]);
    assert.equal(spanText(text, m.rows[2]), 'images/c.webp');
    assert.equal(m.rows[3].problem, 'not an image path');
    assert.equal(m.labelColumn, 'second field');
  });

  test('prose is not a manifest', async () => {
    const text = 'Notes for the dataset\nWe collected images in 2021.\nSee figure.png for details.\nThanks.\n';
    assert.equal(looksLikeImageList(text), false);
    assert.equal((await parseManifest(text, opts('txt'))).isManifest, false);
  });

  test('common folder of image paths', () => {
    assert.equal(commonFolder(['/a/b/c/1.png', '/a/b/d/2.png', '/a/b/3.png']), '/a/b');
    assert.equal(commonFolder(['/a/1.png']), '/a');
    assert.equal(commonFolder(['/x/1.png', '/y/2.png']), '/');
    assert.equal(commonFolder([]), undefined);
  });

  test('document formats', () => {
    assert.equal(formatForDocument('csv', '/x/a.csv'), 'csv');
    assert.equal(formatForDocument('plaintext', '/x/a.tsv'), 'tsv');
    assert.equal(formatForDocument('jsonl', '/x/a.ndjson'), 'jsonl');
    assert.equal(formatForDocument('plaintext', '/x/list.txt'), 'txt');
    assert.equal(formatForDocument('typescript', '/x/a.ts'), null);
  });
});

describe('paths, Restricted Mode and file checks', () => {
  let ws: string;
  let outside: string;
  before(() => {
    ws = mkdtempSync(join(tmpdir(), 'oodlens-ws-'));
    outside = mkdtempSync(join(tmpdir(), 'oodlens-out-'));
    mkdirSync(join(ws, 'data', 'imgs'), { recursive: true });
    writeFileSync(join(ws, 'data', 'imgs', 'a.png'), 'x');
    writeFileSync(join(outside, 'secret.png'), 'x');
    symlinkSync(join(outside, 'secret.png'), join(ws, 'data', 'imgs', 'link.png'));
  });
  after(() => {
    rmSync(ws, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  test('relative, absolute, file: URIs and remote URLs', () => {
    assert.deepEqual(resolveManifestPath('imgs/a.png', '/ws/data'), { path: '/ws/data/imgs/a.png', problem: null });
    assert.deepEqual(resolveManifestPath('/abs/b.png', '/ws/data'), { path: '/abs/b.png', problem: null });
    assert.deepEqual(resolveManifestPath('file:///abs/c%20d.png', '/ws/data'), { path: '/abs/c d.png', problem: null });
    assert.match(resolveManifestPath('https://example.com/x.png', '/ws/data').problem!, /remote URL \(https\)/);
    assert.match(resolveManifestPath('s3://bucket/x.png', '/ws/data').problem!, /remote URL \(s3\)/);
    assert.equal(resolveManifestPath('  ', '/ws/data').problem, 'empty path');
  });

  test('hostile paths are refused in Restricted Mode only', async () => {
    const text = 'path\nimgs/a.png\n../../etc/passwd.png\n/etc/shadow.png\n../data/imgs/a.png\n';
    const restricted = await parseManifest(text, { format: 'csv', baseDir: join(ws, 'data'), roots: [ws], restricted: true });
    assert.deepEqual(restricted.rows.map((r) => r.problem), [null, OUTSIDE_WORKSPACE, OUTSIDE_WORKSPACE, null]);
    const trusted = await parseManifest(text, { format: 'csv', baseDir: join(ws, 'data'), roots: [ws], restricted: false });
    assert.deepEqual(trusted.rows.map((r) => r.problem), [null, null, null, null]);
    assert.equal(trusted.rows[1].path, resolve(ws, 'data', '../../etc/passwd.png'));
    assert.ok(!trusted.rows[1].path!.startsWith(ws), '../../ leaves the workspace');
  });

  test('checkReadable: present, missing, folder, symlink escaping the workspace', async () => {
    const o = { roots: [ws], restricted: true };
    const ok = await checkReadable(join(ws, 'data', 'imgs', 'a.png'), o);
    assert.equal(ok.ok, true);
    const missing = await checkReadable(join(ws, 'data', 'imgs', 'nope.png'), o);
    assert.deepEqual(missing, { ok: false, missing: true, problem: 'file not found' });
    const folder = await checkReadable(join(ws, 'data', 'imgs'), o);
    assert.equal(folder.ok, false);
    const link = await checkReadable(join(ws, 'data', 'imgs', 'link.png'), o);
    assert.equal(link.ok, false);
    assert.match((link as { problem: string }).problem, /links to .*secret\.png/);
    assert.equal((await checkReadable(join(ws, 'data', 'imgs', 'link.png'), { roots: [ws], restricted: false })).ok, true);
    const out = await checkReadable(join(outside, 'secret.png'), o);
    assert.deepEqual(out, { ok: false, missing: false, problem: OUTSIDE_WORKSPACE });
  });
});

describe('label disagreement and the summary line', () => {
  const labels = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
  const score = (prediction: number, msp: number, verdict: RowScore['verdict'] = 'in-distribution'): RowScore => ({ prediction, label: labels[prediction], msp, verdict, error: null });

  test('confident in-distribution disagreement only', () => {
    assert.equal(isLabelDisagreement('3', score(5, 0.97), labels), true);
    assert.equal(isLabelDisagreement('5', score(5, 0.97), labels), false);
    assert.equal(isLabelDisagreement('3', score(5, 0.6), labels), false, 'not confident');
    assert.equal(isLabelDisagreement('3', score(5, 0.99, 'out-of-distribution'), labels), false, 'OOD: the prediction means nothing');
    assert.equal(isLabelDisagreement('cat', score(5, 0.99), labels), false, 'unknown label');
    assert.equal(isLabelDisagreement(null, score(5, 0.99), labels), false);
    const names = ['cat', 'dog'];
    assert.equal(isLabelDisagreement('Dog', { prediction: 0, label: 'cat', msp: 0.95, verdict: 'in-distribution', error: null }, names), true);
    assert.equal(isLabelDisagreement('0', { prediction: 0, label: 'cat', msp: 0.95, verdict: 'in-distribution', error: null }, names), false, 'index label');
  });

  test('summary counts and text', () => {
    const states: RowState[] = [
      ...Array.from({ length: 1150 }, (): RowState => ({ kind: 'scored', score: score(1, 0.99), disagreement: false })),
      ...Array.from({ length: 37 }, (): RowState => ({ kind: 'scored', score: score(1, 0.99, 'out-of-distribution'), disagreement: false })),
      ...Array.from({ length: 12 }, (): RowState => ({ kind: 'scored', score: score(1, 0.99), disagreement: true })),
      { kind: 'missing' }, { kind: 'missing' }, { kind: 'missing' },
      { kind: 'problem', message: 'malformed JSON on line 9' },
      { kind: 'scored', score: { prediction: null, label: null, msp: null, verdict: 'error', error: 'cannot decode' }, disagreement: false },
    ];
    const s = summarize(states);
    assert.equal(s.rows, 1204);
    assert.equal(s.outOfDistribution, 37);
    assert.equal(s.disagreements, 12);
    assert.equal(s.missing, 3);
    assert.equal(s.problems, 2);
    assert.equal(formatSummary(s), '1,204 images · 37 out-of-distribution · 12 label disagreements · 3 missing · 2 problems');
  });
});

describe('large manifests', () => {
  test('10,000-row CSV parses correctly and yields to the event loop', async () => {
    const n = 10_000;
    const lines = ['path,label'];
    for (let i = 0; i < n; i++) lines.push(i % 1000 === 0 ? `"imgs/${i}, copy.png",${i % 10}` : `imgs/${i}.png,${i % 10}`);
    const text = lines.join('\n') + '\n';
    let ticks = 0;
    let last = performance.now();
    let longest = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
      ticks++;
    }, 0);
    const t0 = performance.now();
    const m = await parseManifest(text, opts('csv'));
    const ms = performance.now() - t0;
    clearInterval(timer);
    console.log(`# 10,000-row CSV manifest parsed in ${ms.toFixed(0)} ms; the event loop ran ${ticks} times meanwhile, longest block ${longest.toFixed(0)} ms`);
    assert.equal(m.rows.length, n);
    assert.ok(m.rows.every((r, i) => r.line === i + 1 && r.label === String(i % 10) && !r.problem));
    assert.equal(m.rows[1000].rawPath, 'imgs/1000, copy.png');
    assert.equal(m.rows[9999].path, resolve(base, 'imgs/9999.png'));
    assert.ok(ticks > 0, 'parsing let timers run');
    assert.equal(rowAtLine(m.rows, 5002)?.rawPath, 'imgs/5001.png');
  });

  test('10,000-line JSONL parses and can be aborted', async () => {
    const text = Array.from({ length: 10_000 }, (_, i) => (i === 4321 ? '{"path": broken' : JSON.stringify({ path: `imgs/${i}.png`, label: i % 10 }))).join('\n');
    const t0 = performance.now();
    const m = await parseManifest(text, opts('jsonl'));
    console.log(`# 10,000-line JSONL manifest parsed in ${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(m.rows.length, 10_000);
    assert.match(m.rows[4321].problem!, /malformed JSON on line 4322/);
    assert.equal(m.problemCount, 1);
    const ac = new AbortController();
    const p = parseManifest(text, opts('jsonl', { signal: ac.signal, yieldEvery: 500 }));
    ac.abort();
    await assert.rejects(p, { name: 'AbortError' });
  });

  test('looksLikeImagePath', () => {
    assert.equal(looksLikeImagePath('a/b.PNG'), true);
    assert.equal(looksLikeImagePath('https://x/y.jpg?size=2'), true);
    assert.equal(looksLikeImagePath('a/b.txt'), false);
    assert.equal(looksLikeImagePath(3), false);
  });
});

describe('large tables without image paths', () => {
  test('are recognised from their first rows', async () => {
    const text = 'a,b,c\n' + Array.from({ length: 50_000 }, (_, i) => `${i},${i * 2},x${i}`).join('\n');
    const t0 = performance.now();
    const m = await parseManifest(text, opts('csv'));
    const ms = performance.now() - t0;
    console.log(`# 50,000-row numeric CSV rejected in ${ms.toFixed(0)} ms`);
    assert.equal(m.isManifest, false);
  });
});
