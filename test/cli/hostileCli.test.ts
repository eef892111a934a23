/** Issue 15 on the command line: listing problems are error records with exit 2 (item 1), the --recursive hint (item 12), calibrate's minimum (item 3). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { MNIST_PAIR, MNIST_TEST_IMAGES, pairReady, REPO, tempDir, writeIdxPngs } from '../helpers';

/** As root, permissions do not stop reads: the CLI then runs as `nobody` so that chmod 000 means something. */
const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};

function cli(args: string[], user = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'src', 'cli', 'main.ts'), ...args], { cwd: REPO, encoding: 'utf8', timeout: 180_000, ...user });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('ood-lens CLI on hostile folders', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  let root: string;
  before(async () => {
    root = tempDir();
    chmodSync(root, 0o755);
    await writeIdxPngs(MNIST_TEST_IMAGES, [0], join(root, 'tree'), 'a');
    await writeIdxPngs(MNIST_TEST_IMAGES, [1], join(root, 'tree', 'm-locked'), 'b');
    await writeIdxPngs(MNIST_TEST_IMAGES, [2], join(root, 'tree', 'z-open'), 'c');
    chmodSync(join(root, 'tree', 'm-locked'), 0o000);
    await writeIdxPngs(MNIST_TEST_IMAGES, [3, 4], join(root, 'only-subfolders', 'digits'), 'd');
  });

  test('an unreadable subfolder is an error record; the folders after it are still scored; exit 2', () => {
    const r = cli(['score', '-r', join(root, 'tree'), '--format', 'json'], asUser);
    assert.equal(r.code, 2, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual(doc.results.map((x: { path: string }) => x.path.slice(root.length)), ['/tree/a-00000.png', '/tree/m-locked', '/tree/z-open/c-00002.png']);
    assert.deepEqual(doc.results.map((x: { verdict: string }) => x.verdict), ['in-distribution', 'error', 'in-distribution']);
    assert.equal(doc.results[1].error, 'cannot list this folder: permission denied; its images were not scored');
    assert.equal(doc.summary.errors, 1);
  });

  test('an unreadable folder given as the argument is an error record and exit 2, not "0 images" and exit 0', () => {
    const r = cli(['score', join(root, 'tree', 'm-locked')], asUser);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stdout, /ERROR .*m-locked: cannot list this folder: permission denied/);
    assert.match(r.stdout, /1 images · 0 in-distribution · 0 out-of-distribution · 1 errors/);
  });

  test('a folder with only subfolders, without --recursive, says to add it', () => {
    const r = cli(['score', join(root, 'only-subfolders')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /0 images/);
    assert.match(r.stderr, /only-subfolders has no images at its top level but 1 subfolder; add --recursive \(-r\)/);
    assert.doesNotMatch(cli(['score', join(root, 'tree')]).stderr, /add --recursive/);
  });

  test('calibrate refuses a set too small for the rule to ever reject, naming the minimum', () => {
    const pair = join(tempDir(), 'pair');
    cpSync(MNIST_PAIR, pair, { recursive: true });
    const before = readFileSync(join(pair, 'calibration.json'));
    const r = cli(['calibrate', MNIST_TEST_IMAGES, '--pair', pair, '--limit', '60', '--rule', 'all']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /only 60 images could be scored: the calibration has 60 scores, too few to ever flag an image under rule all at α = 0\.01: .*at least 222/);
    assert.deepEqual(readFileSync(join(pair, 'calibration.json')), before);
    const outside = cli(['calibrate', MNIST_TEST_IMAGES, '--pair', pair, '--limit', '300', '--out', join(tempDir(), 'cal.json')]);
    assert.equal(outside.code, 1);
    assert.match(outside.stderr, /--out must be a file inside the pair folder/);
  });
});
