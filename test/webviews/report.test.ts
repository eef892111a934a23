/**
 * Folder report: the view model (filter, sort, barcode order, histogram bins, counts, virtual window,
 * thumbnail URLs), the message guard, the report built from results (reference comparison metrics), the
 * CSV/JSON exports with the CLI's columns, and the progress text.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse } from 'csv-parse/sync';
import type { ImageResult, PairInfo } from '../../src/inference/engine';
import { detectionMetrics } from '../../src/inference/detectors/metrics';
import { RESULT_COLUMNS } from '../../src/inference/datasets/output';
import { progressMessage, RateMeter } from '../../src/providers/progressText';
import { barcodeOrder, filterRows, formatDuration, histogram, robustRange, sortRows, thumbnailUrl, verdictCounts, visibleWindow } from '../../src/shared/reportModel';
import { isReportToHost, type ReportRow } from '../../src/shared/reportProtocol';
import { buildReportData, exportCsv, exportJson, relativePath, type StoredReport } from '../../src/webviews/reportData';

function row(id: number, over: Partial<ReportRow> = {}): ReportRow {
  return { id, set: 'target', rel: `img/${id}.png`, prediction: id % 10, label: String(id % 10), msp: 0.5, entropy: 1, energy: -3, elbo: -100, pValue: 0.5, verdict: 'in-distribution', error: null, ...over };
}

describe('report view model', () => {
  const rows = [
    row(0, { rel: 'b/2.png', msp: 0.9, elbo: -80, pValue: 0.6 }),
    row(1, { rel: 'a/10.png', msp: 0.3, elbo: -300, pValue: 0.001, verdict: 'out-of-distribution', label: '7' }),
    row(2, { rel: 'a/9.png', msp: null, elbo: null, pValue: null, verdict: 'error', error: 'cannot decode', label: null }),
    row(3, { rel: 'c/1.png', msp: 0.99, elbo: -90, pValue: 0.2, set: 'reference', label: '7' }),
    row(4, { rel: 'c/2.png', msp: 0.3, elbo: -150, pValue: 0.004, verdict: 'out-of-distribution' }),
  ];

  test('filter by text, label, verdict and set', () => {
    assert.deepEqual(filterRows(rows, { text: 'a/', verdict: 'all', set: 'all' }).map((r) => r.id), [1, 2]);
    assert.deepEqual(filterRows(rows, { text: '7', verdict: 'all', set: 'all' }).map((r) => r.id), [1, 3], 'label matches exactly');
    assert.deepEqual(filterRows(rows, { text: 'DECODE', verdict: 'all', set: 'all' }).map((r) => r.id), [2], 'errors are searchable');
    assert.deepEqual(filterRows(rows, { text: '', verdict: 'out-of-distribution', set: 'all' }).map((r) => r.id), [1, 4]);
    assert.deepEqual(filterRows(rows, { text: '', verdict: 'all', set: 'reference' }).map((r) => r.id), [3]);
  });

  test('sort: numbers, natural path order, nulls last both ways, stable ties', () => {
    assert.deepEqual(sortRows(rows, { column: 'msp', descending: false }).map((r) => r.id), [1, 4, 0, 3, 2]);
    assert.deepEqual(sortRows(rows, { column: 'msp', descending: true }).map((r) => r.id), [3, 0, 1, 4, 2]);
    assert.deepEqual(sortRows(rows, { column: 'rel', descending: false }).map((r) => r.rel), ['a/9.png', 'a/10.png', 'b/2.png', 'c/1.png', 'c/2.png']);
    assert.deepEqual(sortRows(rows, { column: 'pValue', descending: false }).map((r) => r.id), [1, 4, 3, 0, 2]);
    assert.deepEqual(sortRows(rows, { column: 'verdict', descending: false }).map((r) => r.id), [1, 4, 0, 3, 2]);
    assert.deepEqual(sortRows(rows, { column: 'label', descending: false }).map((r) => r.id), [0, 4, 1, 3, 2]);
  });

  test('barcode: ascending by score, images without it left out', () => {
    assert.deepEqual(barcodeOrder(rows, 'msp').map((l) => l.id), [1, 4, 0, 3]);
    assert.deepEqual(barcodeOrder(rows, 'elbo').map((l) => [l.id, l.value, l.verdict]), [[1, -300, 'out-of-distribution'], [4, -150, 'out-of-distribution'], [3, -90, 'in-distribution'], [0, -80, 'in-distribution']]);
  });

  test('histogram bins: fixed range, last edge inclusive, grouped', () => {
    const h = histogram(rows, 'msp', 10, (r) => r.verdict, [0, 1]);
    assert.equal(h.edges.length, 11);
    assert.equal(h.edges[0], 0);
    assert.ok(Math.abs(h.edges[10] - 1) < 1e-12);
    assert.deepEqual(h.counts['out-of-distribution'], [0, 0, 0, 2, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(h.counts['in-distribution'], [0, 0, 0, 0, 0, 0, 0, 0, 0, 2], '0.9 and 0.99 fall in the last bin');
    const one = histogram([row(0, { msp: 1 })], 'msp', 4, () => 'x', [0, 1]);
    assert.deepEqual(one.counts.x, [0, 0, 0, 1], 'a value on the right edge counts');
    const auto = histogram(rows, 'elbo', 4, () => 'all');
    assert.equal(auto.edges[0], -300);
    assert.equal(auto.edges[4], -80);
    assert.equal(auto.counts.all.reduce((a, b) => a + b, 0), 4);
    assert.deepEqual(histogram([row(0, { elbo: -5 })], 'elbo', 2, () => 'x').edges, [-5.5, -5, -4.5], 'a single value gets a unit-wide range');
    assert.deepEqual(histogram([], 'elbo', 3, () => 'x'), { edges: [], counts: {} });
  });

  test('robust ELBO range and clamped bins', () => {
    const many = Array.from({ length: 100 }, (_, i) => row(i, { elbo: i === 0 ? -5000 : i === 1 ? -4000 : -100 + i }));
    const r = robustRange(many.map((x) => x.elbo))!;
    assert.deepEqual(r, [-98, -1], 'the two extreme values do not stretch the range');
    const h = histogram(many, 'elbo', 4, () => 'all', r, true);
    assert.equal(h.counts.all.reduce((a, b) => a + b, 0), 100, 'clamped values still counted');
    assert.equal(h.counts.all[0], 2 + 25);
    assert.equal(robustRange([null, null]), undefined);
  });

  test('verdict counts', () => {
    assert.deepEqual(verdictCounts(rows), { 'out-of-distribution': 2, 'in-distribution': 2, uncalibrated: 0, error: 1 });
  });

  test('virtual window stays small at 10,000+ rows', () => {
    assert.deepEqual(visibleWindow(0, 440, 44, 20_000, 8), { first: 0, last: 18 });
    const w = visibleWindow(44 * 10_000, 440, 44, 20_000, 8);
    assert.deepEqual(w, { first: 9992, last: 10018 });
    assert.deepEqual(visibleWindow(44 * 19_999, 440, 44, 20_000, 8), { first: 19991, last: 20000 });
    assert.deepEqual(visibleWindow(0, 440, 44, 0), { first: 0, last: 0 });
  });

  test('sorting and filtering 20,000 rows is fast enough for typing', () => {
    const many = Array.from({ length: 20_000 }, (_, i) => row(i, { msp: ((i * 7919) % 1000) / 1000, elbo: -((i * 104729) % 5000), verdict: i % 50 === 0 ? 'out-of-distribution' : 'in-distribution' }));
    const t0 = performance.now();
    const sorted = sortRows(filterRows(many, { text: 'img/1', verdict: 'all', set: 'all' }), { column: 'elbo', descending: false });
    const b = barcodeOrder(many, 'msp');
    console.log(`# filter+sort of 20,000 rows and a barcode in ${(performance.now() - t0).toFixed(0)} ms`);
    assert.ok(sorted.every((r, i) => i === 0 || (sorted[i - 1].elbo ?? 0) <= (r.elbo ?? 0)));
    assert.equal(b.length, 20_000);
  });

  test('thumbnail URLs encode each path segment', () => {
    assert.equal(thumbnailUrl('https://file+.vscode-resource.vscode-cdn.net/data/set/', 'a b/c#1?.png'), 'https://file+.vscode-resource.vscode-cdn.net/data/set/a%20b/c%231%3F.png');
  });

  test('message guard', () => {
    assert.equal(isReportToHost({ type: 'ready' }), true);
    assert.equal(isReportToHost({ type: 'open', id: 3 }), true);
    assert.equal(isReportToHost({ type: 'open', id: '3' }), false);
    assert.equal(isReportToHost({ type: 'export', format: 'csv' }), true);
    assert.equal(isReportToHost({ type: 'export', format: 'xlsx' }), false);
    assert.equal(isReportToHost(null), false);
  });

  test('formatDuration', () => {
    assert.equal(formatDuration(0), '0:00');
    assert.equal(formatDuration(75.4), '1:15');
    assert.equal(formatDuration(3725), '1:02:05');
  });
});

function result(path: string, over: Partial<ImageResult> = {}): ImageResult {
  return {
    path, prediction: 1, label: '1', msp: 0.9, entropy: 0.3, energy: -8, elbo: -90, reconstructionLogLik: -85, kl: 5, elboBitsPerDim: 0.1, logPxBound: null,
    complexityBits: 100, complexityScore: 3, pValue: 0.4, pValues: { elbo: 0.4, complexity: 0.5, confidence: 0.7 }, firedBy: [], verdict: 'in-distribution', error: null, ...over,
  };
}

const pair: PairInfo = {
  name: 'mnist', manifestPath: '/m/ood-pair.json', backend: 'onnx', provider: 'cpu', calibrated: true, calibrationCount: 1000, calibrationSource: 'held-out',
  labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'], input: { width: 28, height: 28, channels: 1 }, alpha: 0.01, rule: 'both',
};

describe('report data and exports', () => {
  // Reference (in-distribution): high MSP, high ELBO. Scored folder: mostly low — with one overlap.
  const ref = Array.from({ length: 50 }, (_, i) => result(`/ref/${i}.png`, { msp: 0.9 + i / 1000, entropy: 0.1 + i / 1000, energy: -10 - i / 10, elbo: -90 + i / 10, pValues: { elbo: 0.3 + i / 200, complexity: 0.5, confidence: 0.6 }, verdict: i === 0 ? 'out-of-distribution' : 'in-distribution' }));
  const tgt = Array.from({ length: 40 }, (_, i) => result(`/data/set/sub/${i}.png`, { msp: 0.5 + i / 100, entropy: 1 - i / 100, energy: -5 - i / 10, elbo: -200 + i * 2.5, pValues: { elbo: i / 100, complexity: 0.2, confidence: 0.4 }, verdict: i < 30 ? 'out-of-distribution' : 'in-distribution' }));
  const stored: StoredReport = {
    version: 1, id: 'r1', createdAt: '2025-01-01T00:00:00.000Z', folder: '/data/set', referenceFolder: '/ref', pair, total: 95, cancelled: true, seconds: 3, cached: 10,
    results: [...tgt, result('/data/set/broken.png', { verdict: 'error', error: 'cannot decode', prediction: null, label: null, msp: null, entropy: null, energy: null, elbo: null, pValue: null, pValues: { elbo: null, complexity: null, confidence: null } }), ...ref],
    sets: [...tgt.map(() => 'target' as const), 'target', ...ref.map(() => 'reference' as const)],
  };

  test('rows, relative paths, cancelled marker', () => {
    const d = buildReportData(stored);
    assert.equal(d.rows.length, 91);
    assert.equal(d.rows[0].rel, 'sub/0.png');
    assert.equal(d.rows[41].rel, '0.png');
    assert.equal(d.rows[41].set, 'reference');
    assert.equal(d.cancelled, true);
    assert.equal(d.done, 91);
    assert.equal(d.total, 95);
    assert.equal(relativePath('/a/b', '/elsewhere/x.png'), '/elsewhere/x.png');
  });

  test('comparison uses the detectors with their own direction', () => {
    const d = buildReportData(stored);
    const c = d.comparison!;
    assert.equal(c.inCount, 50);
    assert.equal(c.oodCount, 40, 'the error row is left out');
    const ids = c.detectors.map((m) => m.id);
    assert.deepEqual(ids, ['msp', 'entropy', 'energy', 'elbo', 'complexity', 'combined']);
    const elbo = c.detectors.find((m) => m.id === 'elbo')!;
    const direct = detectionMetrics(ref.map((r) => -r.elbo!), tgt.map((r) => -r.elbo!));
    assert.equal(elbo.auroc, direct.auroc);
    assert.equal(elbo.fprAt95Tpr, direct.fprAt95Tpr);
    assert.ok(elbo.auroc > 0.9, `ELBO separates the sets (AUROC ${elbo.auroc})`);
    const msp = c.detectors.find((m) => m.id === 'msp')!;
    assert.ok(msp.auroc > 0.9);
    assert.deepEqual(elbo.roc[0], { fpr: 0, tpr: 0 });
    assert.deepEqual(elbo.roc[elbo.roc.length - 1], { fpr: 1, tpr: 1 });
    assert.equal(c.falseAlarmRate, 1 / 50);
    assert.equal(c.detectionRate, 30 / 40);
  });

  test('no reference → no comparison', () => {
    const d = buildReportData({ ...stored, referenceFolder: null, results: tgt, sets: tgt.map(() => 'target' as const) });
    assert.equal(d.comparison, null);
  });

  test('CSV export: the CLI columns (+ set with a reference), every row', () => {
    const csv = exportCsv(stored);
    const records = parse(csv, { columns: true }) as Record<string, string>[];
    assert.deepEqual(Object.keys(records[0]), [...RESULT_COLUMNS, 'set']);
    assert.equal(records.length, 91);
    assert.equal(records[0].path, '/data/set/sub/0.png');
    assert.equal(records[40].error, 'cannot decode');
    assert.equal(records[90].set, 'reference');
    const plain = parse(exportCsv({ ...stored, referenceFolder: null }), { columns: true }) as Record<string, string>[];
    assert.deepEqual(Object.keys(plain[0]), [...RESULT_COLUMNS]);
  });

  test('JSON export: the CLI document, reference and comparison kept apart', () => {
    const doc = JSON.parse(exportJson(stored));
    assert.equal(doc.pair.name, 'mnist');
    assert.equal(doc.results.length, 41);
    assert.equal(doc.reference.length, 50);
    assert.equal(doc.summary.outOfDistribution, 30);
    assert.equal(doc.summary.errors, 1);
    assert.equal(doc.summary.cancelled, true);
    assert.ok(doc.comparison.detectors.every((m: Record<string, unknown>) => !('roc' in m)));
    assert.equal(doc.results[0].pValues.elbo, 0);
  });
});

describe('progress text', () => {
  test('count, rate, time left, cached', () => {
    let now = 0;
    const m = new RateMeter(5000, () => now);
    m.update(0);
    assert.equal(progressMessage(0, 1000, 0, m), '0 of 1,000');
    now = 2000;
    m.update(200);
    assert.equal(progressMessage(250, 1000, 50, m), '250 of 1,000 · 100 images/s · about 0:08 left · 50 from cache');
  });
});

describe('report HTML', () => {
  test('CSP: nonce-only scripts, no remote content, resources from the webview only', async () => {
    const { buildReportHtml, makeReportNonce, reportCsp } = await import('../../src/webviews/reportHtml');
    const nonce = makeReportNonce();
    const html = buildReportHtml({ cspSource: 'https://file+.vscode-resource.vscode-cdn.net', nonce, scriptUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview/report.js', styleUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/media/report.css', title: 'OOD: <b>x</b>' });
    const csp = reportCsp('https://file+.vscode-resource.vscode-cdn.net', nonce);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, new RegExp(`script-src 'nonce-${nonce.replace(/[+/=]/g, (c) => `\\${c}`)}'`));
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    const scripts = [...html.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
    assert.equal(scripts.length, 1);
    assert.ok(scripts[0].includes(`nonce="${nonce}"`));
    assert.ok(html.includes('OOD: &#60;b&#62;x&#60;/b&#62;'), 'the title is escaped');
    assert.throws(() => buildReportHtml({ cspSource: 'x', nonce: 'short', scriptUri: '', styleUri: '', title: '' }));
  });
});
