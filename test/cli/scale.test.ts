/**
 * Past one machine (issue 16) and output files (issue 15, item 5): --format jsonl, --shard, --resume, merge,
 * --manifest, and what an interrupted or failing run leaves on disk. Real CLI processes on the built-in pair
 * and real MNIST / FashionMNIST images.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { rmSync, chmodSync, closeSync, copyFileSync, openSync, readSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { expandInputs } from '../../src/inference/io/files';
import { ResultWriter } from '../../src/inference/datasets/output';
import { parseShard, shardOfKey } from '../../src/inference/datasets/shard';
import { FASHION_TEST_IMAGES, MNIST_PAIR, MNIST_TEST_IMAGES, pairReady, REPO, tempDir, writeIdxPngs } from '../helpers';

const CLI_ARGS = ['--import', 'tsx', join(REPO, 'src', 'cli', 'main.ts')];

function cli(args: string[], options: { env?: Record<string, string>; uid?: number } = {}) {
  const r = spawnSync(process.execPath, [...CLI_ARGS, ...args], { cwd: REPO, encoding: 'utf8', timeout: 300_000, env: { ...process.env, ...options.env }, uid: options.uid, gid: options.uid });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function cliAsync(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [...CLI_ARGS, ...args], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => res({ code, stderr }));
  });
}

/** The result lines of a jsonl file (its header dropped). */
function resultLines(path: string): string[] {
  const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
  assert.match(lines[0], /^\{"oodLensResults":1,/);
  return lines.slice(1);
}

function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const t0 = Date.now();
  return new Promise((res, rej) => {
    const tick = () => (cond() ? res() : Date.now() - t0 > ms ? rej(new Error('timed out')) : setTimeout(tick, 20));
    tick();
  });
}

/** Lines in a file (read in 1 MB pieces: a million result lines are more than one string can hold). */
function lineCount(path: string): number {
  if (!existsSync(path)) return 0;
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(1 << 20);
  let n = 0;
  try {
    for (let got = readSync(fd, buf); got > 0; got = readSync(fd, buf)) for (let k = buf.indexOf(10); k >= 0 && k < got; k = buf.indexOf(10, k + 1)) n++;
  } finally {
    closeSync(fd);
  }
  return n;
}

describe('--shard K/N', () => {
  test('shards are disjoint, cover every input and are balanced (each within ±10% of 1/N)', () => {
    // Names as datasets have them: regular, sequential, in class folders.
    const keys = Array.from({ length: 30_000 }, (_, i) => `class-${i % 17}/img-${String(i).padStart(6, '0')}.png`);
    for (const n of [2, 3, 4, 7, 16]) {
      const sizes = new Array(n).fill(0);
      for (const k of keys) sizes[shardOfKey(k, n)]++;
      assert.equal(sizes.reduce((a, b) => a + b, 0), keys.length);
      for (const size of sizes) assert.ok(Math.abs(size / keys.length - 1 / n) <= 0.1 / n, `N = ${n}: shard sizes ${sizes.join(', ')}`);
    }
  });

  test('the same split on another machine: keys are relative to the argument, whatever its mount point or listing order', async () => {
    const a = tempDir();
    const b = tempDir();
    for (const root of [a, b]) {
      mkdirSync(join(root, 'data', 'cats'), { recursive: true });
      mkdirSync(join(root, 'data', 'dogs'), { recursive: true });
    }
    const names = ['cats/1.png', 'cats/2.png', 'dogs/1.png', 'dogs/10.png', 'dogs/2.png'];
    // Created in opposite orders: directory order on disk differs, the listing and the keys do not.
    for (const n of names) writeFileSync(join(a, 'data', n), '');
    for (const n of [...names].reverse()) writeFileSync(join(b, 'data', n), '');
    const keysOf = async (root: string) => {
      const out: string[] = [];
      for await (const i of expandInputs([join(root, 'data')], { recursive: true })) out.push(i.key);
      return out;
    };
    assert.deepEqual(await keysOf(a), names);
    assert.deepEqual(await keysOf(b), names);
    assert.equal(shardOfKey('dogs/10.png', 5), shardOfKey('dogs/10.png', 5));
    assert.throws(() => parseShard('3/3'), /K runs from 0 to N-1/);
    assert.throws(() => parseShard('1of3'), /--shard must be K\/N/);
  });
});

describe('sharded runs, merge and resume', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  let dir: string;
  let folder: string;
  before(async () => {
    dir = tempDir();
    folder = join(dir, 'images');
    // 240 MNIST digits in three class folders and 60 FashionMNIST items nested deeper: a recursive listing.
    for (let c = 0; c < 3; c++) await writeIdxPngs(MNIST_TEST_IMAGES, Array.from({ length: 80 }, (_, i) => c * 80 + i), join(folder, `part-${c}`), 'mnist');
    await writeIdxPngs(FASHION_TEST_IMAGES, Array.from({ length: 60 }, (_, i) => i), join(folder, 'part-1', 'fashion'), 'fashion');
  });

  test('3 shard processes of one folder, merged, equal one run result for result', async () => {
    const one = join(dir, 'one.jsonl');
    const shards = [0, 1, 2].map((k) => join(dir, `shard-${k}.jsonl`));
    // The three shards run at the same time, as three nodes would.
    const [whole, ...parts] = await Promise.all([
      cliAsync(['score', folder, '-r', '--format', 'jsonl', '--out', one]),
      ...shards.map((out, k) => cliAsync(['score', folder, '-r', '--format', 'jsonl', '--shard', `${k}/3`, '--out', out])),
    ]);
    for (const r of [whole, ...parts]) assert.equal(r.code, 0, r.stderr);
    const counts = shards.map((s) => resultLines(s).length);
    assert.equal(counts.reduce((a, b) => a + b, 0), 300);
    for (const c of counts) assert.ok(c > 50, `shard sizes ${counts}`);
    // Disjoint.
    const keys = shards.flatMap((s) => resultLines(s).map((l) => JSON.parse(l).key as string));
    assert.equal(new Set(keys).size, 300);

    const merged = join(dir, 'merged.jsonl');
    const m = cli(['merge', shards[2], shards[0], shards[1], '--format', 'jsonl', '--out', merged]);
    assert.equal(m.code, 0, m.stderr);
    assert.deepEqual(resultLines(merged), resultLines(one));
    // The same summary line as the single run's (without its rate: a merge has no timing of its own).
    const counts1 = /^(\d+ images · .* errors)/m.exec(whole.stderr)?.[1];
    assert.ok(counts1?.startsWith('300 images · '), whole.stderr);
    assert.match(m.stderr, new RegExp(`^${counts1}\n`, 'm'));

    // As JSON: the same document as one run's, summary counts included.
    const single = cli(['score', folder, '-r', '--format', 'json']);
    const mergedJson = cli(['merge', ...shards, '--format', 'json']);
    const a = JSON.parse(single.stdout);
    const b = JSON.parse(mergedJson.stdout);
    assert.deepEqual(b.results, a.results);
    const { seconds: _s1, imagesPerSecond: _r1, ...countsA } = a.summary;
    const { seconds: _s2, imagesPerSecond: _r2, ...countsB } = b.summary;
    assert.deepEqual(countsB, countsA);

    // A missing shard is told; an input given twice is reported and kept once.
    const partial = cli(['merge', shards[0], shards[1], '--format', 'csv']);
    assert.match(partial.stderr, /shard 2\/3 missing/);
    const twice = cli(['merge', shards[0], shards[0], shards[1], shards[2], '--format', 'jsonl']);
    assert.equal(twice.code, 0, twice.stderr);
    assert.match(twice.stderr, new RegExp(`${counts[0]} inputs appear more than once`));
    assert.equal(twice.stdout.trim().split('\n').length - 1, 300);
  });

  test('merge refuses files from another calibration or α, naming the file', () => {
    const pair = join(dir, 'pair-copy');
    cpSync(MNIST_PAIR, pair, { recursive: true });
    const cal = JSON.parse(readFileSync(join(pair, 'calibration.json'), 'utf8'));
    cal.scores.elbo[0] -= 1; // another calibration of the same models
    writeFileSync(join(pair, 'calibration.json'), JSON.stringify(cal));
    const img = join(folder, 'part-0', 'mnist-00000.png');
    const base = join(dir, 'base.jsonl');
    const other = join(dir, 'other-calibration.jsonl');
    const alpha = join(dir, 'other-alpha.jsonl');
    assert.equal(cli(['score', img, '--format', 'jsonl', '--out', base]).code, 0);
    assert.equal(cli(['score', img, '--format', 'jsonl', '--out', other, '--pair', pair]).code, 0);
    assert.equal(cli(['score', img, '--format', 'jsonl', '--out', alpha, '--alpha', '0.05']).code, 0);
    const r1 = cli(['merge', base, other]);
    assert.equal(r1.code, 1);
    assert.match(r1.stderr, new RegExp(`${other.replace(/[.]/g, '\\.')} was scored with another calibration`));
    const r2 = cli(['merge', base, alpha]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /other-alpha\.jsonl was scored with another α/);
    // Resuming into a file of another calibration is refused too.
    const r3 = cli(['score', img, '--format', 'jsonl', '--out', other, '--resume']);
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /--resume: .*other-calibration\.jsonl was scored with another calibration/);
  });

  test('kill -9 mid-run, then --resume, equals one uninterrupted run', async () => {
    const reference = join(dir, 'reference.jsonl');
    const r = cli(['score', MNIST_TEST_IMAGES, '--format', 'jsonl', '--out', reference]);
    assert.equal(r.code, 0, r.stderr);
    const expected = resultLines(reference);
    assert.equal(expected.length, 10_000);

    const out = join(dir, 'killed.jsonl');
    const child = spawn(process.execPath, [...CLI_ARGS, 'score', MNIST_TEST_IMAGES, '--format', 'jsonl', '--out', out], { cwd: REPO, stdio: 'ignore' });
    // Killed at a moment drawn at random between the first results and the last few thousand.
    const at = 200 + Math.floor(Math.random() * 5000);
    await waitFor(() => lineCount(out) > at, 240_000);
    child.kill('SIGKILL');
    await new Promise((res) => child.on('exit', res));
    const before = resultLines(out).length;
    assert.ok(before < 10_000, `killed after ${before} results`);

    const resumed = cli(['score', MNIST_TEST_IMAGES, '--format', 'jsonl', '--out', out, '--resume']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming .*killed\.jsonl: \d+ results kept/);
    assert.match(resumed.stderr, /10000 images · /);
    assert.deepEqual(resultLines(out), expected, `killed after ${before} lines (drawn: ${at})`);
  });

  test('--resume drops a torn last line and scores that input again', () => {
    const reference = join(dir, 'reference.jsonl');
    const torn = join(dir, 'torn.jsonl');
    copyFileSync(reference, torn);
    const text = readFileSync(reference, 'utf8');
    // Cut inside the 9,950th result line.
    let offset = 0;
    for (let i = 0; i < 9_950; i++) offset = text.indexOf('\n', offset) + 1;
    truncateSync(torn, Buffer.byteLength(text.slice(0, offset + 40)));
    const r = cli(['score', MNIST_TEST_IMAGES, '--format', 'jsonl', '--out', torn, '--resume']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /9949 results kept, a torn last line dropped/);
    assert.equal(readFileSync(torn, 'utf8'), text);
    assert.deepEqual(resultLines(torn), resultLines(reference));
  });

  test('--shard combines with --resume', () => {
    const out = join(dir, 'shard-resume.jsonl');
    const full = join(dir, 'shard-full.jsonl');
    assert.equal(cli(['score', folder, '-r', '--format', 'jsonl', '--shard', '1/3', '--out', full]).code, 0);
    const lines = readFileSync(full, 'utf8').split('\n').filter(Boolean);
    writeFileSync(out, lines.slice(0, 1 + Math.floor((lines.length - 1) / 2)).join('\n') + '\n');
    const r = cli(['score', folder, '-r', '--format', 'jsonl', '--shard', '1/3', '--out', out, '--resume']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(resultLines(out), resultLines(full));
    const wrong = cli(['score', folder, '-r', '--format', 'jsonl', '--shard', '2/3', '--out', out, '--resume']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /holds shard 1\/3, not 2\/3/);
  });
});

describe('score --manifest', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  test('paths relative to the manifest, the label column and the possible-label-error flag in the results', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'imgs'));
    for (const n of ['mnist-test-00000.png', 'mnist-test-00001.png', 'fashion-test-00000.png']) copyFileSync(join(REPO, 'samples', n), join(dir, 'imgs', n));
    // mnist-test-00000 is a 7 (MSP 1.00) labelled 3: a possible label error; 00001 is a 2 labelled 2.
    writeFileSync(join(dir, 'train.csv'), 'image_path,label\nimgs/mnist-test-00000.png,3\nimgs/mnist-test-00001.png,2\nimgs/fashion-test-00000.png,5\nimgs/missing.png,1\nhttps://example.com/x.png,4\n');
    const r = cli(['score', '--manifest', join(dir, 'train.csv'), '--format', 'jsonl']);
    assert.equal(r.code, 2, r.stderr);
    const rows = r.stdout.trim().split('\n').slice(1).map((l) => JSON.parse(l));
    assert.deepEqual(rows.map((x) => x.key), ['imgs/mnist-test-00000.png', 'imgs/mnist-test-00001.png', 'imgs/fashion-test-00000.png', 'imgs/missing.png', 'https://example.com/x.png']);
    assert.deepEqual(rows.map((x) => x.givenLabel), ['3', '2', '5', '1', '4']);
    assert.deepEqual(rows.map((x) => x.possibleLabelError), [true, false, false, false, false]);
    assert.deepEqual(rows.map((x) => x.verdict), ['in-distribution', 'in-distribution', 'out-of-distribution', 'error', 'error']);
    assert.equal(rows[0].path, join(dir, 'imgs', 'mnist-test-00000.png'));
    assert.match(rows[3].error, /file not found/);
    assert.match(rows[4].error, /train\.csv, line 6: remote URL/);
    const csv = cli(['score', '--manifest', join(dir, 'train.csv'), '--format', 'csv']);
    const header = csv.stdout.split('\n')[0];
    assert.match(header, /,givenLabel,possibleLabelError$/);
    assert.match(csv.stdout.split('\n')[1], /,3,true$/);
    const table = cli(['score', '--manifest', join(dir, 'train.csv')]);
    assert.match(table.stdout, /mnist-test-00000\.png {2}\(possible label error: labelled 3\)/);
  });

  test('a 1,000,000-row manifest streams with bounded memory (peak RSS ≤ 500 MB, no growth from 100,000 rows)', () => {
    const dir = tempDir();
    // One row in 100 names a real image (hard links to the samples), the others remote URLs, which are error
    // records without a model run: 10,000 images scored, a million rows read, matched and written.
    const samples = readdirSync(join(REPO, 'samples')).filter((n) => n.endsWith('.png'));
    mkdirSync(join(dir, 'imgs'));
    samples.forEach((n) => copyFileSync(join(REPO, 'samples', n), join(dir, 'imgs', n)));
    const write = (name: string, rows: number) => {
      const parts = ['path,label\n'];
      for (let i = 0; i < rows; i++) parts.push(i % 100 === 0 ? `imgs/${samples[(i / 100) % samples.length]},${i % 10}\n` : `https://example.com/${i}.png,${i % 10}\n`);
      writeFileSync(join(dir, name), parts.join(''));
    };
    // Compared with 100,000 rows rather than 10,000: a run of 10,000 rows ends before V8's heap reaches its
    // steady size (263 MB against 408 MB for a million, measured under tsx), while memory that grew with the
    // rows would show between 100,000 and 1,000,000 (64 MB over 900,000 rows is 75 bytes a row).
    write('small.csv', 100_000);
    write('large.csv', 1_000_000);
    const peak = (name: string) => {
      const file = join(dir, `${name}.peak`);
      const r = spawnSync(process.execPath, ['--require', join(__dirname, 'peakRss.cjs'), ...CLI_ARGS, 'score', '--manifest', join(dir, name), '--format', 'csv', '--out', join(dir, `${name}.out.csv`)], {
        cwd: REPO, encoding: 'utf8', timeout: 600_000, env: { ...process.env, OOD_LENS_PEAK_RSS_FILE: file },
      });
      assert.equal(r.status, 2, r.stderr);
      const lines = lineCount(join(dir, `${name}.out.csv`)) - 1;
      rmSync(join(dir, `${name}.out.csv`));
      return { bytes: Number(readFileSync(file, 'utf8')), lines };
    };
    const small = peak('small.csv');
    const large = peak('large.csv');
    console.log(`# peak RSS (VmHWM): 100,000 rows ${(small.bytes / 2 ** 20).toFixed(0)} MB, 1,000,000 rows ${(large.bytes / 2 ** 20).toFixed(0)} MB`);
    assert.equal(small.lines, 100_000);
    assert.equal(large.lines, 1_000_000);
    assert.ok(large.bytes <= 500 * 2 ** 20, `peak RSS ${(large.bytes / 2 ** 20).toFixed(0)} MB`);
    assert.ok(large.bytes <= small.bytes + 64 * 2 ** 20, `1,000,000 rows: ${(large.bytes / 2 ** 20).toFixed(0)} MB against ${(small.bytes / 2 ** 20).toFixed(0)} MB for 100,000`);
  });
});

describe('output files (issue 15, item 5)', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    test(`${signal} during score --out F leaves the previous F intact and no temp file`, async () => {
      const dir = tempDir();
      const out = join(dir, 'results.csv');
      const previous = 'path,verdict\nprevious,complete\n';
      writeFileSync(out, previous);
      const child = spawn(process.execPath, [...CLI_ARGS, 'score', MNIST_TEST_IMAGES, '--format', 'csv', '--out', out], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      // Interrupted once the temp file holds results.
      await waitFor(() => readdirSync(dir).some((n) => n.endsWith('.tmp') && statSync(join(dir, n)).size > 100_000), 240_000);
      child.kill(signal);
      const code = await new Promise<number | null>((res) => child.on('exit', res));
      assert.equal(code, signal === 'SIGINT' ? 130 : 143, stderr);
      assert.equal(readFileSync(out, 'utf8'), previous);
      assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
      assert.match(stderr, /interrupted after \d+ images; .*results\.csv was not written \(any previous file is unchanged\)/);
    });
  }

  test('stale F.PID.tmp files of dead processes (kill -9) are removed by the next run; a live one is left', () => {
    const dir = tempDir();
    const out = join(dir, 'r.json');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const stale = join(dir, `r.json.${dead.stdout}.tmp`);
    const live = join(dir, `r.json.${process.pid}.tmp`);
    writeFileSync(stale, '{"partial');
    writeFileSync(live, '{"partial');
    const r = cli(['score', join(REPO, 'samples', 'mnist-test-00000.png'), '--format', 'json', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(stale), false);
    assert.equal(existsSync(live), true);
    assert.equal(JSON.parse(readFileSync(out, 'utf8')).results.length, 1);
  });

  test('--out into a missing folder or a read-only folder: one line naming the path, exit 1, no stack trace', () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const missing = join(dir, 'no-such-folder', 'out.csv');
    const r = cli(['score', join(REPO, 'samples'), '--out', missing]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `ood-lens: cannot write ${missing}: the folder ${join(dir, 'no-such-folder')} does not exist\n`);
    const ro = join(dir, 'read-only');
    mkdirSync(ro, { mode: 0o555 });
    chmodSync(ro, 0o555);
    // root writes anywhere: run the CLI as nobody then (the repository and the temp folder are readable to all).
    const asUser = process.getuid?.() === 0 ? { uid: 65534 } : {};
    const target = join(ro, 'out.jsonl');
    const r2 = cli(['score', join(REPO, 'samples'), '--format', 'jsonl', '--out', target], asUser);
    assert.equal(r2.code, 1, r2.stderr);
    assert.equal(r2.stderr, `ood-lens: cannot write ${target}: permission denied (the folder ${ro} is not writable)\n`);
    const r3 = cli(['score', join(REPO, 'samples'), '--out', dir]);
    assert.equal(r3.code, 1);
    assert.equal(r3.stderr, `ood-lens: cannot write ${dir}: it is a folder\n`);
  });

  test('a file is fsynced before it is renamed over F', async () => {
    const fs = require('node:fs') as typeof import('node:fs');
    const calls: string[] = [];
    const orig = { fsyncSync: fs.fsyncSync, renameSync: fs.renameSync };
    fs.fsyncSync = (fd: number) => {
      calls.push(`fsync ${fd}`);
      return orig.fsyncSync(fd);
    };
    fs.renameSync = (a: import('node:fs').PathLike, b: import('node:fs').PathLike) => {
      calls.push('rename');
      return orig.renameSync(a, b);
    };
    try {
      const dir = tempDir();
      const info = { name: 'x', manifestPath: '', backend: 'b', provider: 'cpu', calibrated: true, calibrationCount: 1, calibrationSource: null, labels: [], input: { width: 1, height: 1, channels: 1 }, alpha: 0.01, rule: 'all' as const };
      const w = new ResultWriter('csv', info, join(dir, 'o.csv'));
      await w.end({ count: 0, scored: 0, errors: 0, inDistribution: 0, outOfDistribution: 0, uncalibrated: 0, alpha: 0.01, rule: 'all', seconds: 0, imagesPerSecond: 0 });
      // the file's fsync, the rename, then the folder's fsync
      assert.equal(calls[0].startsWith('fsync'), true, calls.join(', '));
      assert.equal(calls[1], 'rename', calls.join(', '));
      assert.ok(existsSync(join(dir, 'o.csv')));
    } finally {
      Object.assign(fs, orig);
    }
  });
});
