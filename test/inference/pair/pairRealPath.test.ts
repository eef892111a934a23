/**
 * Issue 22, found by reading the code: a pair's file paths were confined to the pair folder by their text
 * only, so a symbolic link inside the folder read a file outside it. They are now confined by real path
 * too (model files, calibration, fitted features and their data files, TensorFlow.js weights), while links
 * into the repository's git-annex or DVC object store (how those tools keep large files) still work.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { confinedPath, linkedOutside } from '../../../src/inference/io/boundedRead';
import { OodEngine } from '../../../src/inference/engine';
import { MNIST_PAIR, pairReady, tempDir } from '../../helpers';

const escaped = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A copy of the built-in pair at `root/<rel>` with `file` moved to `away` (absolute) and linked back. */
function pairWithLinkedFile(file: string, away: (root: string) => string, rel = 'pair'): { dir: string; target: string } {
  const root = tempDir('ood-lens-realpath-');
  const dir = join(root, rel);
  cpSync(MNIST_PAIR, dir, { recursive: true });
  const target = away(root);
  mkdirSync(join(target, '..'), { recursive: true });
  renameSync(join(dir, file), target);
  symlinkSync(target, join(dir, file));
  return { dir, target };
}

describe('pair files are confined by real path', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  test('a model file that is a symbolic link out of the pair folder is refused, naming the field and where it leads', async () => {
    const { dir, target } = pairWithLinkedFile('classifier.onnx', (root) => join(root, 'elsewhere', 'secret.onnx'));
    await assert.rejects(OodEngine.create({ pair: dir, provider: 'cpu' }), new RegExp(`classifier\\.path: "classifier\\.onnx" points outside the pair folder \\(a symbolic link in it leads to ${escaped(target)}\\)`));
  });

  test('the calibration and the fitted features\' data file: the same', async () => {
    const cal = pairWithLinkedFile('calibration.json', (root) => join(root, 'elsewhere', 'calibration.json'));
    await assert.rejects(OodEngine.create({ pair: cal.dir, provider: 'cpu' }), /calibration: "calibration\.json" points outside the pair folder \(a symbolic link in it leads to/);
    const knn = pairWithLinkedFile('features-knn.f16', (root) => join(root, 'elsewhere', 'bank.f16'));
    await assert.rejects(OodEngine.create({ pair: knn.dir, provider: 'cpu' }), new RegExp(`features-knn\\.f16: a symbolic link to ${escaped(knn.target)}, outside the pair folder`));
  });

  test('TensorFlow.js weights linked out of the model folder are refused', async () => {
    const { dir, target } = pairWithLinkedFile(join('tfjs', 'classifier', 'weights.bin'), (root) => join(root, 'elsewhere', 'weights.bin'));
    await assert.rejects(OodEngine.create({ pair: join(dir, 'ood-pair.tfjs.json'), provider: 'cpu' }), new RegExp(`weights path "weights\\.bin" is a symbolic link to ${escaped(target)}, outside the model folder`));
  });

  test('links inside the pair folder, and into the repository\'s git-annex or DVC store, still load', async () => {
    const inside = pairWithLinkedFile('classifier.onnx', (root) => join(root, 'pair', 'models', 'classifier.onnx'));
    const a = await OodEngine.create({ pair: inside.dir, provider: 'cpu' });
    await a.dispose();
    const annex = pairWithLinkedFile('classifier.onnx', (root) => join(root, '.git', 'annex', 'objects', 'Xy', 'SHA256E-s1--abc.onnx', 'SHA256E-s1--abc.onnx'), join('models', 'pair'));
    const b = await OodEngine.create({ pair: annex.dir, provider: 'cpu' });
    await b.dispose();
    const dvc = pairWithLinkedFile('vae.onnx', (root) => join(root, '.dvc', 'cache', 'files', 'md5', 'ab', 'cdef'));
    mkdirSync(join(dvc.dir, '..', '.git'), { recursive: true });
    const c = await OodEngine.create({ pair: dvc.dir, provider: 'cpu' });
    await c.dispose();
  });

  test('confinedPath: text and real path', () => {
    const root = tempDir('ood-lens-realpath-');
    mkdirSync(join(root, 'pair'));
    mkdirSync(join(root, 'out'));
    symlinkSync(join(root, 'out'), join(root, 'pair', 'link'));
    assert.equal(confinedPath(join(root, 'pair'), '../out/x.onnx'), null);
    assert.equal(confinedPath(join(root, 'pair'), 'link/x.onnx'), null, 'a file not yet there, under a linked folder');
    assert.equal(linkedOutside(join(root, 'pair'), join(root, 'pair', 'link', 'x.onnx')), join(root, 'out', 'x.onnx'));
    assert.equal(confinedPath(join(root, 'pair'), 'sub/x.onnx'), join(root, 'pair', 'sub', 'x.onnx'));
  });
});
