/**
 * The docs links (walkthrough "How to make a pair", pair errors): `oodLens.openDocs` finds the README in the
 * extension folder whatever its case — vsce stores README.md as readme.md in the VSIX, so an installed
 * extension on a case-sensitive file system has only readme.md — and opens it at the section's heading.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { installVscodeStub } from '../providers/vscodeStub';

installVscodeStub();
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { findReadme, headingLine } = require('../../src/services/docs') as typeof import('../../src/services/docs');

const REPO = resolve(__dirname, '..', '..');

describe('findReadme', () => {
  const dirs: string[] = [];
  const folder = (...files: string[]) => {
    const d = mkdtempSync(join(tmpdir(), 'ood-docs-'));
    dirs.push(d);
    for (const f of files) writeFileSync(join(d, f), '# x\n');
    return d;
  };
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  test('finds readme.md as an installed VSIX has it', () => {
    const d = folder('package.json', 'readme.md', 'changelog.md');
    assert.equal(findReadme(d), join(d, 'readme.md'));
  });

  test('finds README.md as a clone has it', () => {
    assert.equal(findReadme(REPO), join(REPO, 'README.md'));
  });

  test('undefined when there is none (not a file that merely starts with readme)', () => {
    assert.equal(findReadme(folder('package.json', 'readme.md.bak', 'README.txt')), undefined);
  });
});

describe('headingLine', () => {
  test('the README has the "Bring your own model" section the walkthrough links to', () => {
    const text = readFileSync(join(REPO, 'README.md'), 'utf8');
    const line = headingLine(text, ['Bring your own model', 'Pairs']);
    assert.equal(text.split('\n')[line], '## Bring your own model');
  });

  test('falls back to the next heading, then to the top', () => {
    const md = '# Title\n\ntext\n\n### Pairs\n\nmore\n';
    assert.equal(headingLine(md, ['Bring your own model', 'Pairs']), 4);
    assert.equal(headingLine(md, ['Nothing like it']), 0);
  });
});
