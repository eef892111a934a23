/** Issue 15 item 12: installing prints no npm config warning, and onnxruntime-node's CUDA download stays off. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers';

test('npm reads the project config without an "Unknown project config" warning', () => {
  const r = spawnSync('npm', ['config', 'get', 'registry'], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /Unknown project config/);
});

test('onnxruntime-node\'s install script (a CUDA download from outside the registry) is denied in allowScripts', () => {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  assert.equal(pkg.allowScripts?.['onnxruntime-node'], false);
});

test('every dependency install script is reviewed in allowScripts (else npm install ends with a warning)', () => {
  const r = spawnSync('npm', ['install-scripts', 'ls'], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0 && /Unknown command|not a known command/i.test(r.stderr + r.stdout)) return; // npm without allowScripts
  assert.match(r.stdout + r.stderr, /No packages with unreviewed install scripts/);
});
