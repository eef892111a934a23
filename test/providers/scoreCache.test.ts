/**
 * Score cache: round trip through the file, keys by content + pair identity, the path index, the LRU bound,
 * a corrupt file discarded (and logged) rather than thrown, and atomic writes that never leave a partial file.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ImageResult } from '../../src/inference/engine';
import { hashFile, ScoreCache, sha256Hex, writeFileAtomicAsync } from '../../src/providers/scoreCache';

function result(path: string, over: Partial<ImageResult> = {}): ImageResult {
  return {
    path,
    prediction: 7,
    label: '7',
    msp: 0.987654321,
    entropy: 0.05,
    energy: -12.5,
    elbo: -88.25,
    reconstructionLogLik: -80,
    kl: 8.25,
    elboBitsPerDim: 0.124,
    logPxBound: null,
    complexityBits: 1234,
    complexityScore: 10.5,
    pValue: 0.42,
    pValues: { elbo: 0.42, complexity: 0.6, confidence: 0.3 },
    firedBy: [],
    verdict: 'in-distribution',
    error: null,
    ...over,
  };
}

describe('ScoreCache', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'oodlens-cache-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const img = (name: string, content: string) => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };

  test('round trip through the file, by content and by path', async () => {
    const file = join(dir, 'rt', 'cache.json');
    const a = img('a.png', 'AAAA');
    const b = img('b.png', 'BBBB');
    const c1 = await ScoreCache.open(file, { maxEntries: 100, saveDelayMs: 0 });
    c1.setIdentity('pair-1');
    assert.equal((await c1.lookup(a))?.score, undefined);
    await c1.put(a, result(a));
    await c1.put(b, result(b, { verdict: 'out-of-distribution', pValue: 0.001, firedBy: ['elbo', 'complexity'] }));
    await c1.put(img('e.png', 'EEEE'), result('e', { verdict: 'error', error: 'bad', prediction: null }));
    assert.equal(c1.size, 2, 'errors are not cached');
    await c1.flush();
    assert.ok(existsSync(file));

    const c2 = await ScoreCache.open(file, { maxEntries: 100, saveDelayMs: 0 });
    c2.setIdentity('pair-1');
    assert.equal(c2.size, 2);
    const { path: _p, ...expected } = result(a);
    assert.deepEqual((await c2.lookup(a))?.score, expected);
    assert.equal(c2.peekPath(b)?.verdict, 'out-of-distribution');
    assert.deepEqual(c2.peekPath(b)?.firedBy, ['elbo', 'complexity']);
    assert.deepEqual(c2.pathsWithVerdict('out-of-distribution'), [b]);

    // Same bytes under another name: found by content.
    const copy = img('copy-of-a.png', 'AAAA');
    assert.equal((await c2.lookup(copy))?.score?.elbo, -88.25);
    // Another pair: nothing applies.
    c2.setIdentity('pair-2');
    assert.equal((await c2.lookup(a))?.score, undefined);
    assert.equal(c2.peekPath(b), undefined);
    c2.setIdentity('pair-1');
    // The file changes: its old score no longer applies.
    writeFileSync(a, 'AAAA-changed');
    utimesSync(a, new Date(), new Date(Date.now() + 5000));
    assert.equal((await c2.lookup(a))?.score, undefined);
  });

  test('keys are content hash + pair identity', async () => {
    const c = await ScoreCache.open(join(dir, 'k', 'cache.json'), { maxEntries: 10, saveDelayMs: 0 });
    c.setIdentity('x');
    const p = img('k.png', 'KKK');
    assert.equal(await hashFile(p), sha256Hex('KKK'));
    assert.equal(c.keyFor(sha256Hex('KKK')), `${sha256Hex('KKK')}:${sha256Hex('x').slice(0, 16)}`);
  });

  test('LRU bound: least recently used entries go first', async () => {
    const file = join(dir, 'lru', 'cache.json');
    const c = await ScoreCache.open(file, { maxEntries: 3, saveDelayMs: 0 });
    c.setIdentity('p');
    const paths = ['l1', 'l2', 'l3', 'l4'].map((n) => img(`${n}.png`, n));
    for (const p of paths.slice(0, 3)) await c.put(p, result(p));
    assert.ok((await c.lookup(paths[0]))?.score, 'touch l1: now most recent');
    await c.put(paths[3], result(paths[3]));
    assert.equal(c.size, 3);
    assert.equal((await c.lookup(paths[1]))?.score, undefined, 'l2 was least recently used');
    assert.ok((await c.lookup(paths[0]))?.score);
    assert.ok((await c.lookup(paths[3]))?.score);
    await c.flush();
    const reopened = await ScoreCache.open(file, { maxEntries: 2, saveDelayMs: 0 });
    reopened.setIdentity('p');
    assert.equal(reopened.size, 2, 'a smaller bound applies on load');
    reopened.setMaxEntries(1);
    assert.equal(reopened.size, 1);
  });

  test('a corrupt cache file is discarded and rebuilt, with a log line', async () => {
    for (const [name, content] of [
      ['truncated', '{"version":1,"fields":["prediction"'],
      ['garbage', '\u0000\u0001not json'],
      ['wrong-version', JSON.stringify({ version: 99, fields: [], entries: [], paths: [] })],
      ['bad-entry', JSON.stringify({ version: 1, fields: JSON.parse(readFileSync(join(dir, 'rt', 'cache.json'), 'utf8')).fields, entries: [['k', [1, 2]]], paths: [] })],
    ] as const) {
      const file = join(dir, `corrupt-${name}.json`);
      writeFileSync(file, content);
      const logs: string[] = [];
      const c = await ScoreCache.open(file, { maxEntries: 10, saveDelayMs: 0, log: (m) => logs.push(m) });
      assert.equal(c.size, 0, name);
      assert.ok(logs.some((l) => /corrupt/.test(l) && /discarded/.test(l)), `${name}: ${logs.join(' | ')}`);
      assert.equal(existsSync(file), false, 'the corrupt file is removed');
      c.setIdentity('p');
      const p = img(`after-${name}.png`, name);
      await c.put(p, result(p));
      await c.flush();
      const again = await ScoreCache.open(file, { maxEntries: 10, saveDelayMs: 0 });
      assert.equal(again.size, 1, 'rebuilt');
    }
  });

  test('clear empties the cache and the file', async () => {
    const file = join(dir, 'clear', 'cache.json');
    const c = await ScoreCache.open(file, { maxEntries: 10, saveDelayMs: 0 });
    c.setIdentity('p');
    const p = img('clear.png', 'clear');
    await c.put(p, result(p));
    const changes: unknown[] = [];
    c.onDidChange((x) => changes.push(x));
    await c.clear();
    assert.equal(c.size, 0);
    assert.deepEqual(changes, ['all']);
    assert.equal((await ScoreCache.open(file, { maxEntries: 10 })).size, 0);
  });

  test('debounced save writes by itself', async () => {
    const file = join(dir, 'debounce', 'cache.json');
    const c = await ScoreCache.open(file, { maxEntries: 10, saveDelayMs: 20 });
    c.setIdentity('p');
    const p = img('deb.png', 'deb');
    await c.put(p, result(p));
    await new Promise((r) => setTimeout(r, 100));
    await c.dispose();
    assert.equal((await ScoreCache.open(file, { maxEntries: 10 })).size, 1);
  });
});

describe('atomic writes', () => {
  test('writeFileAtomicAsync replaces whole files and leaves no temp file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oodlens-atomic-'));
    try {
      const file = join(dir, 'sub', 'out.json');
      await writeFileAtomicAsync(file, 'first');
      await Promise.all(Array.from({ length: 20 }, (_, i) => writeFileAtomicAsync(file, `{"writer":${i},"pad":"${'x'.repeat(100_000)}"}`)));
      const text = readFileSync(file, 'utf8');
      assert.doesNotThrow(() => JSON.parse(text), 'never a mix of two writers');
      assert.deepEqual(readdirSync(join(dir, 'sub')), ['out.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a failed write leaves the previous file intact and no partial file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oodlens-atomic-'));
    try {
      const file = join(dir, 'out.json');
      await writeFileAtomicAsync(file, 'old');
      // Writing a directory's path fails at rename (EISDIR/ENOTEMPTY): the temp file must be cleaned up.
      const target = join(dir, 'adir');
      await import('node:fs').then((fs) => fs.mkdirSync(join(target, 'child'), { recursive: true }));
      await assert.rejects(writeFileAtomicAsync(target, 'new'));
      assert.deepEqual(readdirSync(dir).sort(), ['adir', 'out.json']);
      assert.equal(readFileSync(file, 'utf8'), 'old');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
