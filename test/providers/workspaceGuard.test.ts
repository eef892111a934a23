/**
 * Issue 15 item 11: in Restricted Mode, folder scoring (and the Inspect commands) read a file only when it is
 * inside the workspace both as written and after following symbolic links — like dataset manifests.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { walkImages } from '../../src/inference/io/files';
import { OUTSIDE_WORKSPACE_REASON, outsideWorkspace } from '../../src/providers/workspaceGuard';

let dir: string;
let ws: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'oodlens-guard-'));
  ws = join(dir, 'ws');
  mkdirSync(join(ws, 'images', 'sub'), { recursive: true });
  mkdirSync(join(dir, 'outside'), { recursive: true });
  writeFileSync(join(dir, 'outside', 'secret.png'), 'not really a png');
  writeFileSync(join(ws, 'images', 'a.png'), 'a');
  symlinkSync(join(dir, 'outside', 'secret.png'), join(ws, 'images', 'link-out.png'));
  symlinkSync(join(ws, 'images', 'a.png'), join(ws, 'images', 'sub', 'link-in.png'));
  symlinkSync(join(dir, 'outside'), join(ws, 'images', 'outside-folder'));
  symlinkSync(join(dir, 'outside', 'gone.png'), join(ws, 'images', 'dangling.png'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('the files folder scoring lists: links out of the workspace are refused, the rest allowed', async () => {
  const listed: string[] = [];
  for await (const f of walkImages(join(ws, 'images'), true)) if (!f.error) listed.push(f.path);
  const verdicts = Object.fromEntries(await Promise.all(listed.map(async (p) => [p.slice(ws.length + 1), await outsideWorkspace(p, [ws])] as const)));
  assert.equal(verdicts['images/a.png'], null);
  assert.equal(verdicts['images/sub/link-in.png'], null, 'a link inside the workspace is fine');
  assert.match(verdicts['images/link-out.png'] ?? '', new RegExp(`^links to ${join(dir, 'outside', 'secret.png')}, outside the workspace`));
  // A dangling link has nothing to read: judged as written (the reader then says "not found").
  assert.equal(verdicts['images/dangling.png'], null);
});

test('paths outside as written, and through a linked folder', async () => {
  assert.equal(await outsideWorkspace(join(dir, 'outside', 'secret.png'), [ws]), OUTSIDE_WORKSPACE_REASON);
  assert.equal(await outsideWorkspace(join(ws, '..', 'outside', 'secret.png'), [ws]), OUTSIDE_WORKSPACE_REASON);
  assert.match((await outsideWorkspace(join(ws, 'images', 'outside-folder', 'secret.png'), [ws])) ?? '', /^links to /);
  assert.equal(await outsideWorkspace(join(ws, 'images'), []), OUTSIDE_WORKSPACE_REASON, 'no workspace folder: nothing is inside');
});

test('a workspace folder that is itself reached through a link is compared by real paths', async () => {
  const alias = join(dir, 'ws-alias');
  symlinkSync(ws, alias);
  assert.equal(await outsideWorkspace(join(alias, 'images', 'a.png'), [alias]), null);
  assert.match((await outsideWorkspace(join(alias, 'images', 'link-out.png'), [alias])) ?? '', /^links to /);
});
