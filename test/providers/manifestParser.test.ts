/**
 * The editor's manifest parsing in its worker: the same rows as the engine's reader gives in-process, read
 * from disk or from text, in compact form; cancellable; and the host's event loop keeps running meanwhile.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { parseManifest, rowAtLine } from '../../src/inference/datasets/datasetManifest';
import { ManifestParser } from '../../src/providers/manifestParser';
import { tempDir } from '../helpers';

const parser = new ManifestParser(join(__dirname, '..', 'worker', 'tsxWorker.mjs'), { workerData: { entry: join(__dirname, '..', '..', 'src', 'worker', 'manifestWorker.ts') } });
after(() => parser.dispose());

describe('manifest parsing in the manifest worker', () => {
  const dir = tempDir();
  const lines = ['image,label'];
  for (let i = 0; i < 50_000; i++) lines.push(i === 777 ? 'https://example.com/remote.png,3' : i % 5000 === 0 ? `"imgs/${i}, copy.png",${i % 10}` : `imgs/${i}.png,${i % 10}`);
  const text = lines.join('\r\n') + '\r\n';
  const file = join(dir, 'train.csv');
  writeFileSync(file, text);
  const options = { format: 'csv' as const, baseDir: dir, roots: [dir], restricted: false };

  test('rows from the file and from the text equal the in-process parse, field for field', async () => {
    const expected = await parseManifest(text, options);
    for (const source of [{ path: file }, { text }]) {
      const m = await parser.parse({ ...options, ...source });
      assert.equal(m.isManifest, true);
      assert.equal(m.pathColumn, 'image');
      assert.equal(m.labelColumn, 'label');
      assert.equal(m.rows.length, expected.rows.length);
      assert.equal(m.problemCount, expected.problemCount);
      assert.equal(m.lineCount, expected.lineCount);
      assert.deepEqual([...m.rows], expected.rows);
      assert.match(m.rows.at(777).problem!, /remote URL/);
      for (const line of [1, 778, 779, 5000, 9300, 40_001]) assert.deepEqual(m.rows.rowAtLine(line), rowAtLine(expected.rows, line), `line ${line}`);
      assert.equal(m.rows.rowAtLine(40_001)?.rawPath, 'imgs/40000, copy.png');
      assert.equal(m.rows.at(9).path, resolve(dir, 'imgs/9.png'));
    }
  });

  test('the host keeps running while a large manifest is parsed, and a parse can be cancelled', async () => {
    let longest = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 5);
    const m = await parser.parse({ ...options, path: file });
    clearInterval(timer);
    assert.equal(m.rows.length, 50_000);
    console.log(`# 50,000-row CSV parsed in the worker; longest pause of the calling thread ${longest.toFixed(0)} ms`);
    const ac = new AbortController();
    const p = parser.parse({ ...options, text, signal: ac.signal });
    ac.abort();
    await assert.rejects(p, { name: 'AbortError' });
    // The worker still answers after a cancel.
    assert.equal((await parser.parse({ ...options, text: 'path\na.png\n' })).rows.length, 1);
  });
});
