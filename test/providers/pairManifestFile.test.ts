/**
 * Issue 15 item 7 (Select Pair…): pair manifests are read asynchronously, regular files only, size checked
 * before reading, and workspace pair files never through a symbolic link out of the workspace.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parsePairManifest } from '../../src/inference/pair/manifest';
import { MAX_PAIR_MANIFEST_BYTES, missingPairFiles, PairFileError, readPairManifestText } from '../../src/providers/pairManifestFile';
import { MNIST_PAIR } from '../helpers';

describe('readPairManifestText', () => {
  let dir: string;
  let ws: string;
  let outside: string;
  const manifest = readFileSync(join(MNIST_PAIR, 'ood-pair.json'), 'utf8');
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'oodlens-pairfile-'));
    ws = join(dir, 'ws');
    outside = join(dir, 'outside');
    mkdirSync(join(ws, 'pair'), { recursive: true });
    mkdirSync(outside, { recursive: true });
    writeFileSync(join(ws, 'pair', 'ood-pair.json'), `\uFEFF${manifest}`);
    writeFileSync(join(outside, 'ood-pair.json'), manifest);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a workspace pair inside the workspace is read (byte-order mark dropped) and validates', async () => {
    const path = join(ws, 'pair', 'ood-pair.json');
    const text = await readPairManifestText(path, { roots: [ws] });
    assert.equal(text, manifest);
    assert.equal(parsePairManifest(text, path).name, JSON.parse(manifest).name);
  });

  test('a symbolic link out of the workspace is refused for workspace pairs, allowed for a browsed pair', async () => {
    mkdirSync(join(ws, 'linked'), { recursive: true });
    const link = join(ws, 'linked', 'ood-pair.json');
    symlinkSync(join(outside, 'ood-pair.json'), link);
    await assert.rejects(readPairManifestText(link, { roots: [ws] }), (err: unknown) => err instanceof PairFileError && /links to .*outside the workspace/.test(err.message) && err.message.includes(link));
    // A linked folder counts the same.
    symlinkSync(outside, join(ws, 'linked-folder'));
    await assert.rejects(readPairManifestText(join(ws, 'linked-folder', 'ood-pair.json'), { roots: [ws] }), /links to/);
    assert.equal(await readPairManifestText(link), manifest, 'without roots (Browse…) the user chose the file');
  });

  test('a file over the limit is refused from its size, before any read (a sparse 2 GiB file)', async () => {
    const big = join(ws, 'big', 'ood-pair.json');
    mkdirSync(join(ws, 'big'));
    writeFileSync(big, '');
    truncateSync(big, 2 * 1024 ** 3);
    const started = process.hrtime.bigint();
    await assert.rejects(readPairManifestText(big, { roots: [ws] }), (err: unknown) => err instanceof PairFileError && /is 2048\.0 MiB; a pair manifest may be at most 1\.0 MiB/.test(err.problem));
    assert.ok(Number(process.hrtime.bigint() - started) / 1e6 < 2000, 'refused without reading 2 GiB');
    const justOver = join(ws, 'big', 'over.json');
    writeFileSync(justOver, Buffer.alloc(MAX_PAIR_MANIFEST_BYTES + 1, 0x20));
    await assert.rejects(readPairManifestText(justOver), /at most 1\.0 MiB/);
  });

  test('a FIFO, a device and a folder are refused without opening them', async () => {
    const fifo = join(ws, 'fifo.json');
    execFileSync('mkfifo', [fifo]);
    await assert.rejects(readPairManifestText(fifo, { roots: [ws] }), /is not a regular file/);
    await assert.rejects(readPairManifestText('/dev/zero'), /is not a regular file/);
    await assert.rejects(readPairManifestText(join(ws, 'pair')), /is a folder/);
    await assert.rejects(readPairManifestText(join(ws, 'nope.json')), /no such file/);
  });

  test('missingPairFiles names the field and the file', async () => {
    const m = JSON.parse(manifest);
    assert.deepEqual(await missingPairFiles(MNIST_PAIR, m), []);
    m.classifier.path = 'gone.onnx';
    assert.deepEqual(await missingPairFiles(MNIST_PAIR, m), [`classifier.path: file not found: ${join(MNIST_PAIR, 'gone.onnx')}`]);
  });
});
