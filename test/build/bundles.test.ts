import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO } from '../helpers';

// Bundling can break a module at load time (a UMD package whose inner requires esbuild cannot follow
// left the extension unable to activate once): build, then load every bundle as its host would.
test('esbuild bundles build and load (extension with a stub vscode module)', { timeout: 180_000 }, () => {
  const build = spawnSync(process.execPath, [join(REPO, 'scripts', 'build.mjs')], { cwd: REPO, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stderr);
  const script = `
    const Module = require('module');
    const load = Module._load;
    const stub = new Proxy(function () {}, { get: (t, k) => (k === 'then' ? undefined : stub), apply: () => stub, construct: () => stub });
    Module._load = function (request, ...rest) { return request === 'vscode' ? stub : load.call(this, request, ...rest); };
    const out = {};
    for (const name of ['extension', 'worker', 'cli', 'preprocessWorker']) {
      const m = require(${JSON.stringify(join(REPO, 'dist'))} + '/' + name + '.js');
      out[name] = Object.keys(m);
    }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: REPO, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const exported = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.ok(exported.extension.includes('activate') && exported.extension.includes('deactivate'), JSON.stringify(exported));
  assert.ok(exported.cli.includes('main'));
});
