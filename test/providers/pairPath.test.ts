/** The oodLens.pair setting: variables, relative paths, and what the picker writes back. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { insideWorkspace, PairSettingError, pairSettingValue, resolvePairSetting } from '../../src/providers/pairPath';

const ctx = { folders: [{ name: 'proj', path: '/w/proj' }, { name: 'data', path: '/w/data' }], home: '/home/me' };

test('variables, ~ and relative paths resolve to absolute paths', () => {
  assert.equal(resolvePairSetting('/pairs/cifar', ctx), '/pairs/cifar');
  assert.equal(resolvePairSetting('pairs/cifar/ood-pair.json', ctx), '/w/proj/pairs/cifar/ood-pair.json');
  assert.equal(resolvePairSetting('  ./pairs/../pairs/x ', ctx), '/w/proj/pairs/x');
  assert.equal(resolvePairSetting('${workspaceFolder}/pairs/x', ctx), '/w/proj/pairs/x');
  assert.equal(resolvePairSetting('${workspaceFolder:data}/pair', ctx), '/w/data/pair');
  assert.equal(resolvePairSetting('~/pairs/x', ctx), '/home/me/pairs/x');
  assert.equal(resolvePairSetting('${userHome}/p', ctx), '/home/me/p');
});

test('unusable values say why', () => {
  assert.throws(() => resolvePairSetting('${workspaceFolder:nope}/p', ctx), (e: Error) => e instanceof PairSettingError && /no workspace folder named "nope"/.test(e.message));
  assert.throws(() => resolvePairSetting('${env:HOME}/p', ctx), /unsupported variable/);
  assert.throws(() => resolvePairSetting('pairs/x', { folders: [], home: '/h' }), /relative path "pairs\/x" but no workspace folder/);
  assert.throws(() => resolvePairSetting('${workspaceFolder}/x', { folders: [], home: '/h' }), /no folder is open/);
});

test('the picker stores workspace-relative paths in workspace settings, absolute ones otherwise', () => {
  assert.equal(pairSettingValue('/w/proj/pairs/cifar', ctx, true), 'pairs/cifar');
  assert.equal(pairSettingValue('/w/proj', ctx, true), '.');
  assert.equal(pairSettingValue('/w/proj/pairs/cifar', ctx, false), '/w/proj/pairs/cifar');
  assert.equal(pairSettingValue('/elsewhere/pair', ctx, true), '/elsewhere/pair');
  assert.equal(pairSettingValue('/w/project2/pair', ctx, true), '/w/project2/pair');
  // What is written resolves back to the same place.
  assert.equal(resolvePairSetting(pairSettingValue('/w/proj/pairs/cifar', ctx, true), ctx), '/w/proj/pairs/cifar');
});

test('inside the workspace', () => {
  assert.ok(insideWorkspace('/w/data/x/ood-pair.json', ctx.folders));
  assert.ok(insideWorkspace('/w/proj', ctx.folders));
  assert.ok(!insideWorkspace('/w/projx/a', ctx.folders));
  assert.ok(!insideWorkspace('/tmp/a', ctx.folders));
});
