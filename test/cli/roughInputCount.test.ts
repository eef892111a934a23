import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { roughInputCount } from '../../src/cli/score';
import { tempDir } from '../helpers';

test('roughInputCount: a folder\'s top-level entries, a file or a missing path as one, up to the limit; a manifest is not counted', () => {
  const dir = tempDir();
  const folder = join(dir, 'images');
  mkdirSync(join(folder, 'sub'), { recursive: true });
  for (let i = 0; i < 30; i++) writeFileSync(join(folder, `${i}.png`), '');
  writeFileSync(join(folder, 'sub', 'deep.png'), '');
  const file = join(dir, 'one.png');
  writeFileSync(file, '');
  assert.equal(roughInputCount({ positionals: [folder] }), 31, '30 files and the subfolder, not what is in it');
  assert.equal(roughInputCount({ positionals: [folder, file, join(dir, 'missing.png')] }), 33);
  assert.equal(roughInputCount({ positionals: [folder, folder] }, 40), 40, 'stops at the limit');
  assert.equal(roughInputCount({ positionals: [], manifest: join(dir, 'list.csv') }), undefined);
});
