/**
 * Score cache: round trip through the log, keys by content + pair identity, the path index, the LRU bound
 * (kept across reloads), incremental saves (appends only), compaction, torn or malformed records skipped,
 * a file with a bad header discarded (and logged) rather than thrown, two windows appending to one log, and
 * atomic writes that never leave a partial file.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ImageResult } from '../../src/inference/engine';
import { CACHE_VERSION, hashFile, ScoreCache, sha256Hex, writeFileAtomicAsync } from '../../src/providers/scoreCache';

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

  test('a cache file with a bad header is discarded and rebuilt, with a log line', async () => {
    const header = readFileSync(join(dir, 'rt', 'cache.json'), 'utf8').split('\n')[0];
    for (const [name, content] of [
      ['truncated', '{"version":1,"fields":["prediction"'],
      ['garbage', '\u0000\u0001not json'],
      ['old-json-format', JSON.stringify({ version: 2, fields: [], entries: [], paths: [] })],
      ['wrong-version', `${header.replace(`"version":${CACHE_VERSION}`, '"version":99')}\n`],
      ['other-fields', `${header.replace('"prediction",', '')}\n`],
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

  test('malformed records and a torn last line are skipped, the rest kept, and the log rewritten', async () => {
    const file = join(dir, 'torn', 'cache.jsonl');
    const c = await ScoreCache.open(file, { maxEntries: 100, saveDelayMs: 0 });
    c.setIdentity('p');
    const paths = ['t1', 't2', 't3'].map((n) => img(`${n}.png`, n));
    for (const p of paths) await c.put(p, result(p));
    await c.flush();
    const text = readFileSync(file, 'utf8');
    // A bad record in the middle and a save cut short at the end (half a line, no newline).
    const lines = text.trimEnd().split('\n');
    lines.splice(2, 0, '["s","k",[1,2]]', 'not json at all');
    writeFileSync(file, `${lines.join('\n')}\n${lines[lines.length - 1].slice(0, 25)}`);
    const logs: string[] = [];
    const again = await ScoreCache.open(file, { maxEntries: 100, saveDelayMs: 0, log: (m) => logs.push(m) });
    again.setIdentity('p');
    assert.equal(again.size, 3);
    for (const p of paths) assert.ok((await again.lookup(p))?.score, p);
    assert.equal(again.stats.skippedOnLoad, 3);
    assert.ok(logs.some((l) => /3 malformed records/.test(l)), logs.join(' | '));
    await again.flush();
    assert.equal(again.stats.compactions, 1, 'rewritten without the bad records');
    const clean = await ScoreCache.open(file, { maxEntries: 100, saveDelayMs: 0 });
    assert.equal(clean.stats.skippedOnLoad, 0);
    assert.equal(clean.size, 3);
  });

  test('saves append only what changed; the start of the log is never rewritten by a save', async () => {
    const file = join(dir, 'append', 'cache.jsonl');
    const c = await ScoreCache.open(file, { maxEntries: 10_000, saveDelayMs: 0 });
    c.setIdentity('p');
    for (let i = 0; i < 2000; i++) await c.put(`/virtual/${i}.png`, result(`/virtual/${i}.png`, { elbo: -i }), { key: c.keyFor(sha256Hex(`img${i}`)), size: i, mtimeMs: 1 });
    await c.flush();
    const before = readFileSync(file);
    for (let i = 2000; i < 2010; i++) await c.put(`/virtual/${i}.png`, result(`/virtual/${i}.png`, { elbo: -i }), { key: c.keyFor(sha256Hex(`img${i}`)), size: i, mtimeMs: 1 });
    await c.flush();
    const after = readFileSync(file);
    assert.equal(c.stats.lastAppended, 20, 'a score and a path record per new entry');
    assert.ok(after.subarray(0, before.length).equals(before), 'the log only grew at its end');
    assert.ok(after.length - before.length < 20 * 400, `appended ${after.length - before.length} bytes for 10 entries`);
    const reopened = await ScoreCache.open(file, { maxEntries: 10_000, saveDelayMs: 0 });
    reopened.setIdentity('p');
    assert.equal(reopened.size, 2010);
    assert.equal(reopened.peekPath('/virtual/2009.png')?.elbo, -2009);
  });

  test('uses are logged, so recency (and the LRU bound) survives a reload; compaction keeps the order', async () => {
    const file = join(dir, 'recency', 'cache.jsonl');
    const c = await ScoreCache.open(file, { maxEntries: 100, saveDelayMs: 0, compactFactor: 2 });
    c.setIdentity('p');
    const at = (i: number) => ({ key: c.keyFor(sha256Hex(`r${i}`)), size: i, mtimeMs: 1 });
    for (let i = 0; i < 3; i++) await c.put(`/r/${i}.png`, result(`/r/${i}.png`), at(i));
    await c.flush();
    assert.ok(c.get(at(0).key), 'r0 used: now the most recent');
    await c.flush();
    const reopened = await ScoreCache.open(file, { maxEntries: 2, saveDelayMs: 0 });
    reopened.setIdentity('p');
    assert.equal(reopened.size, 2);
    assert.ok(reopened.get(at(0).key), 'r0 kept: it was used after r1 and r2 were stored');
    assert.equal(reopened.get(at(1).key), undefined, 'r1 was least recently used');
    // Many uses: the log passes twice its live records plus 1,000 and is compacted, keeping the order.
    const big = await ScoreCache.open(join(dir, 'recency', 'big.jsonl'), { maxEntries: 1000, saveDelayMs: 0 });
    big.setIdentity('p');
    const bat = (i: number) => ({ key: big.keyFor(sha256Hex(`b${i}`)), size: i, mtimeMs: 1 });
    for (let i = 0; i < 500; i++) await big.put(`/b/${i}.png`, result(`/b/${i}.png`), bat(i));
    await big.flush();
    for (let round = 0; round < 6 && big.stats.compactions === 0; round++) {
      for (let i = 499; i >= 0; i--) big.get(bat(i).key);
      await big.flush();
    }
    assert.equal(big.stats.compactions, 1, `compacted (log ${big.stats.logRecords} records)`);
    assert.equal(big.stats.logRecords, 1000, 'one score and one path record per entry after compaction');
    const small = await ScoreCache.open(join(dir, 'recency', 'big.jsonl'), { maxEntries: 1, saveDelayMs: 0 });
    small.setIdentity('p');
    assert.ok(small.get(bat(0).key), 'the most recently used entry (b0) survives a bound of 1 after compaction');
  });

  test('two windows append to one log: both see everything after reopening', async () => {
    const file = join(dir, 'windows', 'cache.jsonl');
    const a = await ScoreCache.open(file, { maxEntries: 100, saveDelayMs: 0 });
    const b = await ScoreCache.open(file, { maxEntries: 100, saveDelayMs: 0 });
    a.setIdentity('p');
    b.setIdentity('p');
    await Promise.all([
      (async () => {
        for (let i = 0; i < 50; i++) {
          await a.put(`/a/${i}.png`, result(`/a/${i}.png`), { key: a.keyFor(sha256Hex(`a${i}`)), size: i, mtimeMs: 1 });
          if (i % 5 === 0) await a.flush();
        }
        await a.flush();
      })(),
      (async () => {
        for (let i = 0; i < 50; i++) {
          await b.put(`/b/${i}.png`, result(`/b/${i}.png`), { key: b.keyFor(sha256Hex(`b${i}`)), size: i, mtimeMs: 1 });
          if (i % 7 === 0) await b.flush();
        }
        await b.flush();
      })(),
    ]);
    const c = await ScoreCache.open(file, { maxEntries: 1000, saveDelayMs: 0 });
    c.setIdentity('p');
    assert.equal(c.stats.skippedOnLoad, 0, 'no interleaved half lines');
    assert.equal(c.size, 100);
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
