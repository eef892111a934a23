import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startInputListing } from '../../src/cli/score';
import { tempDir } from '../helpers';

const options = (positionals: string[], manifest?: string) => ({ positionals, manifest, recursive: false, format: 'csv' as const, resume: false, failOnOod: false });

test('startInputListing lists the folder when called (before the pair loads), in chunks, every input once and in order', async () => {
  const folder = join(tempDir(), 'images');
  mkdirSync(folder);
  for (let i = 0; i < 2500; i++) writeFileSync(join(folder, `${String(i).padStart(4, '0')}.png`), '');
  const listing = startInputListing(options([folder]));
  // Listed already: a file added while the pair would be loading is not among them.
  await new Promise((resolve) => setTimeout(resolve, 300));
  writeFileSync(join(folder, '9999.png'), '');
  const seen: string[] = [];
  let chunks = 0;
  for await (const chunk of listing.chunks) {
    chunks++;
    for (const p of chunk) {
      assert.equal(p.origin.seq, seen.length);
      seen.push(p.input.path);
    }
  }
  assert.ok(chunks >= 2, `${chunks} chunks`);
  assert.equal(seen.length, 2500);
  assert.equal(seen[0], join(folder, '0000.png'));
  assert.equal(seen[2499], join(folder, '2499.png'));
});

test('startInputListing: a missing manifest is reported where the chunks are read, not as an unhandled rejection; abandon closes it', async () => {
  const missing = join(tempDir(), 'missing.csv');
  const listing = startInputListing(options([], missing));
  await new Promise((resolve) => setTimeout(resolve, 50));
  await assert.rejects(async () => {
    for await (const chunk of listing.chunks) void chunk;
  }, new RegExp(missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  listing.abandon();
  const unused = startInputListing(options([tempDir()]));
  unused.abandon();
});
