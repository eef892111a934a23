import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

// `fit` and `reproduce` are bundles of their own, loaded by cli.js when their command runs (cli.js is parsed on every
// start). The bundled CLI must still reach them, and a usage mistake made in one of them must still read as one.
test('the bundled CLI loads fit and reproduce from their own bundles; their usage errors print the usage', { timeout: 180_000 }, () => {
  const build = spawnSync(process.execPath, [join(REPO, 'scripts', 'build.mjs')], { cwd: REPO, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stderr);
  const bin = join(REPO, 'bin', 'ood-lens.js');
  const cliText = readFileSync(join(REPO, 'dist', 'cli.js'), 'utf8');
  assert.ok(!cliText.includes('vega-lite'), 'cli.js still holds vega-lite (reproduce\'s figures)');
  assert.ok(cliText.includes('./cli-fit.js') && cliText.includes('./cli-reproduce.js'));
  const fitHelp = spawnSync(process.execPath, [bin, 'fit', '--help'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(fitHelp.status, 0, fitHelp.stderr);
  assert.match(fitHelp.stdout, /^ood-lens fit — a pair from your own classifier/);
  const fitMistake = spawnSync(process.execPath, [bin, 'fit', '--classifier', 'model.onnx'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(fitMistake.status, 1);
  assert.match(fitMistake.stderr, /^ood-lens: fit needs --data <folder \| idx \| manifest>.*\n\nood-lens — is your image classifier answering/s);
  const reproduce = spawnSync(process.execPath, [bin, 'reproduce', '--nonsense'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(reproduce.status, 1);
  assert.match(reproduce.stderr, /Unknown option '--nonsense'/);
});
