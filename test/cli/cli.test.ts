import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { parse } from 'csv-parse/sync';
import { RESULT_COLUMNS } from '../../src/inference/datasets/output';
import { FASHION_TEST_IMAGES, MNIST_PAIR, MNIST_TEST_IMAGES, pairReady, REPO, tempDir, writeIdxPngs } from '../helpers';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'src', 'cli', 'main.ts'), ...args], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('ood-lens CLI', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  let dir: string;
  before(async () => {
    dir = tempDir();
    await writeIdxPngs(MNIST_TEST_IMAGES, [0, 1, 2], join(dir, 'digits'), 'mnist');
    await writeIdxPngs(FASHION_TEST_IMAGES, [0, 1], join(dir, 'digits', 'nested'), 'fashion');
  });

  test('scores a folder with the built-in pair: table, exit 0', () => {
    const r = cli('score', join(dir, 'digits'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pair: mnist \(onnxruntime-node, cpu\)/);
    assert.equal((r.stdout.match(/in-distribution +[0-9]/g) ?? []).length, 3);
    assert.match(r.stdout, /3 images · 3 in-distribution · 0 out-of-distribution/);
  });

  test('--recursive, JSON to a file, --fail-on-ood exits 3', () => {
    const out = join(dir, 'out.json');
    const r = cli('score', join(dir, 'digits'), '--recursive', '--format', 'json', '--out', out, '--fail-on-ood', '--provider', 'cpu');
    assert.equal(r.code, 3, r.stderr);
    const doc = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(doc.provider, 'cpu');
    assert.equal(doc.pair.name, 'mnist');
    assert.equal(doc.results.length, 5);
    for (const key of ['path', 'prediction', 'label', 'msp', 'entropy', 'energy', 'elbo', 'elboBitsPerDim', 'pValue', 'verdict', 'error']) assert.ok(key in doc.results[0], key);
    assert.equal(doc.summary.outOfDistribution, 2);
    assert.equal(doc.results.filter((x: { verdict: string }) => x.verdict === 'out-of-distribution').length, 2);
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp')), []);
  });

  test('broken files are error records, the rest is scored, exit 2; CSV has the same columns', () => {
    writeFileSync(join(dir, 'empty.png'), '');
    writeFileSync(join(dir, 'fake.jpg'), 'GIF89a but not really');
    const out = join(dir, 'out.csv');
    const r = cli('score', join(dir, 'empty.png'), join(dir, 'fake.jpg'), join(dir, 'nope.png'), join(dir, 'digits', 'mnist-00000.png'), '--format', 'csv', '--out', out);
    assert.equal(r.code, 2, r.stderr);
    const rows = parse(readFileSync(out, 'utf8'), { columns: true }) as Record<string, string>[];
    assert.deepEqual(Object.keys(rows[0]), [...RESULT_COLUMNS]);
    assert.deepEqual(rows.map((x) => x.verdict), ['error', 'error', 'error', 'in-distribution']);
    assert.match(rows[0].error, /empty/);
    assert.match(rows[2].error, /file not found/);
    assert.equal(rows[3].label, '7');
  });

  test('thousands of file arguments (a long command line) are all scored, not a crash in onnxruntime', () => {
    // 4,000 paths ≈ 116,000 characters of command line: onnxruntime's start-up telemetry ran std::regex over
    // it and overflowed the stack (a segfault) until ORT_DISABLE_TELEMETRY is set before it loads.
    const names = ['mnist-test-00000.png', 'mnist-test-00001.png', 'mnist-test-00002.png', 'mnist-test-00003.png', 'fashion-test-00000.png'];
    const paths = Array.from({ length: 4000 }, (_, i) => join('samples', names[i % names.length]));
    const out = join(dir, 'many.csv');
    const r = cli('score', ...paths, '--format', 'csv', '--out', out);
    assert.equal(r.code, 0, `exit ${r.code} ${r.stderr.slice(0, 500)}`);
    const rows = parse(readFileSync(out, 'utf8'), { columns: true }) as Record<string, string>[];
    assert.equal(rows.length, 4000);
    assert.deepEqual(rows.slice(0, 5).map((row) => row.verdict), ['in-distribution', 'in-distribution', 'in-distribution', 'in-distribution', 'out-of-distribution']);
    assert.equal(rows[3999].path, rows[4].path);
  });

  test('usage and manifest errors exit 1 with a message naming the problem', () => {
    assert.equal(cli('score').code, 1);
    const bad = cli('score', dir, '--format', 'xml');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--format must be table, json, csv, jsonl/);
    const pairDir = tempDir('pair-');
    writeFileSync(join(pairDir, 'ood-pair.json'), JSON.stringify({ name: 'x', input: { width: 32, height: 32, channels: 4, layout: 'NCHW' } }));
    const r = cli('score', dir, '--pair', pairDir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /input\.channels: must be one of 1, 3/);
    assert.match(r.stderr, /classifier: is required/);
  });

  test('calibrate writes calibration.json for a pair and points the manifest at it', () => {
    const pairDir = tempDir('pair-');
    for (const f of ['classifier.onnx', 'vae.onnx', 'vae-encoder.onnx', 'vae-decoder.onnx', 'features.json', 'features-knn.f16', 'features-mahalanobis.f32']) writeFileSync(join(pairDir, f), readFileSync(join(MNIST_PAIR, f)));
    const manifest = JSON.parse(readFileSync(join(MNIST_PAIR, 'ood-pair.json'), 'utf8'));
    delete manifest.calibration;
    writeFileSync(join(pairDir, 'ood-pair.json'), JSON.stringify(manifest));
    const uncal = cli('score', join(dir, 'digits'), '--pair', pairDir);
    assert.match(uncal.stdout, /UNCALIBRATED/);
    const r = cli('calibrate', MNIST_TEST_IMAGES, '--pair', pairDir, '--offset', '100', '--limit', '300');
    assert.equal(r.code, 0, r.stderr);
    const cal = JSON.parse(readFileSync(join(pairDir, 'calibration.json'), 'utf8'));
    assert.equal(cal.count, 300);
    assert.equal(cal.scores.elbo.length, 300);
    assert.equal(JSON.parse(readFileSync(join(pairDir, 'ood-pair.json'), 'utf8')).calibration, 'calibration.json');
    assert.match(cli('score', join(dir, 'digits'), '--pair', pairDir).stdout, /3 in-distribution/);
  });
});
