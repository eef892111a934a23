/**
 * Issue 22, the second hostile audit of result files: `merge` validates every field and escapes what it prints
 * (item 8), reads lines in linear time with a bounded length that is reported (item 9), refuses shards of
 * other inputs (item 10); `--resume` records each input's size and mtime and rescores changed or added files
 * with fresh, unique seq (items 3/4); an exclusive lock on --out (item 5).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { MAX_RESULT_LINE_BYTES, readResultLines } from '../../src/inference/datasets/resultsFile';
import { reportImageFolder } from '../../src/providers/workspaceGuard';
import { MNIST_TEST_IMAGES, pairReady, REPO, tempDir, writeIdxPngs } from '../helpers';

const CLI_ARGS = ['--import', 'tsx', join(REPO, 'src', 'cli', 'main.ts')];

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [...CLI_ARGS, ...args], { cwd: REPO, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean);
const records = (path: string) => lines(path).slice(1).map((l) => JSON.parse(l) as Record<string, unknown>);
const ESC = '\u001b';

describe('result files from elsewhere (issue 22, audit items 3-5, 8-10)', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  let dir: string;
  let base: string; // a real result file of 6 images
  before(async () => {
    dir = tempDir('ood-lens-results-audit-');
    await writeIdxPngs(MNIST_TEST_IMAGES, [0, 1, 2, 3, 4, 5], join(dir, 'imgs'), 'd');
    base = join(dir, 'base.jsonl');
    const r = cli(['score', join(dir, 'imgs'), '--format', 'jsonl', '--out', base]);
    assert.equal(r.code, 0, r.stderr);
  });

  /** `base` with its result line `k` (0-based, after the header) changed by `edit`. */
  function forged(name: string, edit: (r: Record<string, unknown>) => void, k = 0, editHeader?: (h: Record<string, unknown>) => void): string {
    const [head, ...rest] = lines(base);
    const h = JSON.parse(head);
    editHeader?.(h);
    const r = JSON.parse(rest[k]);
    edit(r);
    rest[k] = JSON.stringify(r);
    const path = join(dir, name);
    writeFileSync(path, [JSON.stringify(h), ...rest].join('\n') + '\n');
    return path;
  }

  test('merge refuses a forged verdict, naming file, line and field; no escape sequence reaches the terminal', () => {
    const file = forged('verdict.jsonl', (r) => (r.verdict = `${ESC}]0;pwned\u0007${ESC}[31min-distribution`), 2);
    const r = cli(['merge', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /verdict\.jsonl, line 4: not a valid result line: "verdict" must be one of in-distribution, out-of-distribution, uncalibrated, error/);
    assert.ok(!r.stdout.includes(ESC) && !r.stderr.includes(ESC));
  });

  test('merge --format csv on a firedBy that is not a list: refused naming the line, no crash', () => {
    const file = forged('firedby.jsonl', (r) => (r.firedBy = 'knn'));
    const r = cli(['merge', file, '--format', 'csv']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /firedby\.jsonl, line 2: not a valid result line: "firedBy" must be a list of test names/);
    assert.doesNotMatch(r.stderr, /is not a function/);
    const unknownTest = cli(['merge', forged('firedby2.jsonl', (r) => (r.firedBy = ['knn', 'rm -rf']))]);
    assert.match(unknownTest.stderr, /line 2: .*"firedBy" must be a list of test names/);
  });

  test('merge refuses p-values outside [0, 1], non-numbers and unknown fields', () => {
    const cases: [string, (r: Record<string, unknown>) => void, RegExp][] = [
      ['p5', (r) => (r.pValue = 5), /"pValue" must be in \[0, 1\] or null/],
      ['pknn', (r) => ((r.pValues as Record<string, unknown>).knn = -0.5), /"pValues\.knn" must be in \[0, 1\] or null/],
      ['elbo', (r) => (r.elbo = 'x'), /"elbo" must be a finite number or null/],
      ['seq', (r) => (r.seq = -1), /"seq" must be a whole number ≥ 0/],
      ['extra', (r) => (r.evil = 1), /unknown field "evil"/],
      ['label', (r) => (r.label = { a: 1 }), /"label" must be text or null/],
    ];
    for (const [name, edit, message] of cases) {
      const r = cli(['merge', forged(`${name}.jsonl`, edit)]);
      assert.equal(r.code, 1, name);
      assert.match(r.stderr, new RegExp(`${name}\\.jsonl, line 2: not a valid result line: ${message.source}`), name);
    }
  });

  test('merge escapes header text it prints (pair name, backend, provider)', () => {
    const file = forged('header.jsonl', () => {}, 0, (h) => {
      (h.pair as Record<string, unknown>).backend = `${ESC}[2J`;
      (h.pair as Record<string, unknown>).name = `${ESC}]0;x\u0007`;
    });
    const r = cli(['merge', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes(ESC));
    assert.match(r.stdout, /pair: \\x1b\]0;x\\x07 \(\\x1b\[2J, cpu\)/);
    const bad = cli(['merge', forged('header-alpha.jsonl', () => {}, 0, (h) => ((h.pair as Record<string, unknown>).alpha = 'a'))]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /header-alpha\.jsonl, line 1: not a valid result header: "pair\.alpha" must be a number in \(0, 1\)/);
  });

  test('merge refuses shards of different input folders, naming both; --same-inputs allows a moved copy', () => {
    cpSync(join(dir, 'imgs'), join(dir, 'imgs-b'), { recursive: true });
    const a = join(dir, 'a.jsonl');
    const b = join(dir, 'b.jsonl');
    assert.equal(cli(['score', join(dir, 'imgs'), '--format', 'jsonl', '--shard', '0/2', '--out', a]).code, 0);
    assert.equal(cli(['score', join(dir, 'imgs-b'), '--format', 'jsonl', '--shard', '1/2', '--out', b]).code, 0);
    const r = cli(['merge', a, b]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`b\\.jsonl was scored from ${join(dir, 'imgs-b')}, .*a\\.jsonl from ${join(dir, 'imgs')}: results of different inputs are not one run; add --same-inputs`));
    const moved = cli(['merge', a, b, '--same-inputs', '--format', 'jsonl']);
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal(moved.stdout.trim().split('\n').length, 7);
  });

  test('a torn last line is reported by merge, naming file and line', () => {
    const file = join(dir, 'torn.jsonl');
    writeFileSync(file, readFileSync(base, 'utf8') + '{"path":"/x.png","verd');
    const r = cli(['merge', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /torn\.jsonl, line 8 is incomplete \(no newline: a run killed while writing it\); left out/);
    assert.match(r.stdout, /6 images/);
  });

  test('a 64 MB line without a newline: refused at once naming file and line (linear read, bounded length)', async () => {
    const file = join(dir, 'long.jsonl');
    writeFileSync(file, `${lines(base)[0]}\n${lines(base)[1]}\n`);
    appendFileSync(file, Buffer.alloc(64 * 1024 * 1024, 0x61));
    const started = Date.now();
    await assert.rejects(async () => {
      for await (const _ of readResultLines(file)) void _;
    }, new RegExp(`long\\.jsonl, line 3: longer than ${MAX_RESULT_LINE_BYTES / 1048576} MiB, the limit for a line of a result file`));
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    const r = cli(['merge', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /long\.jsonl, line 3: longer than/);
  });

  test('the reader is linear: many short lines in pieces across chunk borders come back whole', async () => {
    const file = join(dir, 'many.jsonl');
    const [head, first] = lines(base);
    const rec = JSON.parse(first);
    const body: string[] = [];
    for (let i = 0; i < 20_000; i++) body.push(JSON.stringify({ ...rec, seq: i, key: `k${i}`, path: `/p/${'x'.repeat(i % 300)}.png` }));
    writeFileSync(file, `${head}\n${body.join('\n')}\n`);
    let n = 0;
    for await (const { line, record } of readResultLines(file)) {
      assert.equal(record.seq, n);
      assert.equal(line, n + 2);
      n++;
    }
    assert.equal(n, 20_000);
  });

  test('--resume after a file is added and another changed: both scored, fresh unique seqs, merge accepts the file', async () => {
    const folder = join(dir, 'resume-imgs');
    cpSync(join(dir, 'imgs'), folder, { recursive: true });
    const out = join(dir, 'resume.jsonl');
    assert.equal(cli(['score', folder, '--format', 'jsonl', '--out', out]).code, 0);
    const first = records(out);
    assert.ok(first.every((r) => typeof r.inputSize === 'number' && typeof r.inputMtimeMs === 'number'), 'each line records size and mtime');
    // Added between two files in name order (it takes the position of d-00001 in a fresh run), and d-00003
    // replaced by another digit's image, and d-00004 touched (same bytes, new mtime).
    await writeIdxPngs(MNIST_TEST_IMAGES, [7], folder, 'd-00000b');
    copyFileSync(join(dir, 'imgs', 'd-00001.png'), join(folder, 'd-00003.png'));
    utimesSync(join(folder, 'd-00004.png'), new Date(), new Date(Date.now() + 5000));
    const r = cli(['score', folder, '--format', 'jsonl', '--out', out, '--resume']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /resuming .*resume\.jsonl: 4 results kept, 2 of files changed or gone removed \(a changed file is scored again\)/);
    assert.match(r.stderr, /7 images · /);
    const after = records(out);
    const seqs = after.map((x) => x.seq as number);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), 'seqs unique and in order');
    assert.deepEqual(after.map((x) => x.key).sort(), ['d-00000.png', 'd-00000b-00007.png', 'd-00001.png', 'd-00002.png', 'd-00003.png', 'd-00004.png', 'd-00005.png']);
    const byKey = (rs: Record<string, unknown>[], k: string) => rs.find((x) => x.key === k)!;
    // The changed file's verdict is of its new content (the image of d-00001), not the old one.
    assert.equal(byKey(after, 'd-00003.png').label, byKey(first, 'd-00001.png').label);
    assert.notEqual(byKey(first, 'd-00003.png').label, byKey(first, 'd-00001.png').label);
    assert.ok((byKey(after, 'd-00000b-00007.png').seq as number) > 5, 'the added file gets a fresh seq');
    const m = cli(['merge', out, '--format', 'jsonl']);
    assert.equal(m.code, 0, m.stderr);
    assert.equal(m.stdout.trim().split('\n').length, 8);
    // Nothing changed since: everything kept, nothing scored again.
    const again = cli(['score', folder, '--format', 'jsonl', '--out', out, '--resume']);
    assert.match(again.stderr, /7 results kept\n/);
    assert.deepEqual(records(out), after);
  });

  test('two processes writing one --out: the second fails naming the file and the holder; the first keeps every result', async () => {
    const out = join(dir, 'locked.jsonl');
    const first = spawn(process.execPath, [...CLI_ARGS, 'score', MNIST_TEST_IMAGES, '--format', 'jsonl', '--out', out], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    let firstErr = '';
    first.stderr.on('data', (d) => (firstErr += d));
    const firstDone = new Promise<number | null>((res) => first.on('close', res));
    for (let t = 0; !existsSync(`${out}.lock`) && t < 600; t++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(existsSync(`${out}.lock`), 'the first process holds a lock');
    for (const format of ['jsonl', 'csv']) {
      const second = cli(['score', join(dir, 'imgs'), '--format', format, '--out', out]);
      assert.equal(second.code, 1, second.stderr);
      assert.match(second.stderr, new RegExp(`locked\\.jsonl is being written by another ood-lens process \\(PID ${first.pid}, since [^)]+\\); wait for it to finish or write to another file \\(if no ood-lens is running, remove .*locked\\.jsonl\\.lock\\)`));
    }
    const m = cli(['merge', base, '--out', out]);
    assert.equal(m.code, 1);
    assert.match(m.stderr, /is being written by another ood-lens process/);
    assert.equal(await firstDone, 0, firstErr);
    assert.equal(lines(out).length, 10_001, 'all 10,000 results and the header');
    assert.ok(!existsSync(`${out}.lock`), 'the lock is released');
  });

  test('a lock left by a process that no longer runs (kill -9) is taken over', () => {
    const out = join(dir, 'stale.jsonl');
    writeFileSync(`${out}.lock`, JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), since: '2026-01-01T00:00:00.000Z' }));
    const r = cli(['score', join(dir, 'imgs'), '--format', 'jsonl', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lines(out).length, 7);
    assert.ok(!existsSync(`${out}.lock`));
    // Another machine's lock (a shared file system) cannot be checked: it is respected.
    writeFileSync(`${out}.lock`, JSON.stringify({ pid: 4242, host: 'node-17', since: '2026-01-01T00:00:00.000Z' }));
    const other = cli(['score', join(dir, 'imgs'), '--format', 'jsonl', '--out', out]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /by another ood-lens process \(PID 4242 on node-17, since 2026-01-01T00:00:00\.000Z\)/);
  });

  test('Open Results in Restricted Mode: an image folder reached through a symbolic link out of the workspace is not opened', async () => {
    const ws = join(dir, 'ws');
    mkdirSync(ws, { recursive: true });
    symlinkSync(join(dir, 'imgs'), join(ws, 'linked'));
    const paths = ['d-00000.png', 'd-00001.png'].map((n) => join(ws, 'linked', n));
    const results = join(ws, 'r.jsonl');
    // Trusted: the images' folder; restricted: as written it is inside the workspace, but its real path is not.
    assert.equal(await reportImageFolder(paths, results, null), join(ws, 'linked'));
    assert.equal(await reportImageFolder(paths, results, [ws]), ws);
    mkdirSync(join(ws, 'real'));
    copyFileSync(join(dir, 'imgs', 'd-00000.png'), join(ws, 'real', 'd-00000.png'));
    assert.equal(await reportImageFolder([join(ws, 'real', 'd-00000.png')], results, [ws]), join(ws, 'real'));
  });
});

