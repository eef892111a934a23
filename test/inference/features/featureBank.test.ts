/**
 * Issue 22, audit item 6: a pair's fitted feature bank is checked when the pair loads. A bank of NaN made the
 * KNN test drop out without a word (p(knn) null while verdicts were still given); an all-zero bank flagged
 * every image. Both, and their relatives, are now refused, naming the file and the fix.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { OodEngine } from '../../../src/inference/engine';
import { bankProblem, readFeatureFit } from '../../../src/inference/features/featureFit';
import { toFloat16Bytes } from '../../../src/inference/features/float16';
import { MNIST_PAIR, pairReady, tempDir } from '../../helpers';

/** A copy of the built-in pair with its KNN bank (20,000 × 128 float16) replaced by `bank`'s values. */
function pairWithBank(fill: (bank: Float32Array, dims: number) => void): string {
  const dir = join(tempDir('ood-lens-bank-'), 'pair');
  cpSync(MNIST_PAIR, dir, { recursive: true });
  const fit = readFeatureFit(join(dir, 'features.json'));
  const bank = new Float32Array(fit.bank!.length);
  fill(bank, fit.dims);
  writeFileSync(join(dir, 'features-knn.f16'), toFloat16Bytes(bank));
  return dir;
}

describe('feature banks are checked at load', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  test('the built-in pair\'s bank passes', () => {
    const fit = readFeatureFit(join(MNIST_PAIR, 'features.json'));
    assert.equal(bankProblem(fit.bank!, fit.dims), null);
  });

  const cases: [string, (bank: Float32Array, dims: number) => void, RegExp][] = [
    ['NaN everywhere', (b) => b.fill(NaN), /feature bank holds a value that is not a finite number \(NaN, row 1 of 20000\)/],
    ['one NaN', (b, d) => {
      for (let r = 0; r < b.length / d; r++) b[r * d + (r % d)] = 1;
      b[5 * d + 3] = NaN;
    }, /not a finite number \(NaN, row 6 of 20000\)/],
    ['all zeros', (b) => b.fill(0), /feature bank is degenerate: 20000 of its 20000 rows are all zeros/],
    ['every row the same', (b, d) => {
      for (let r = 0; r < b.length / d; r++) b[r * d] = 1;
    }, /is degenerate: its 20000 rows are \(nearly\) all the same vector/],
    ['rows not normalised', (b) => b.fill(0.5), /has a row of length 5\.66 \(row 1 of 20000\); its rows are L2-normalised features, of length 1/],
  ];
  for (const [name, fill, message] of cases) {
    test(`${name}: the pair is refused, naming the file and the fix`, async () => {
      const dir = pairWithBank(fill);
      await assert.rejects(OodEngine.create({ pair: dir, provider: 'cpu' }), (err: Error) => {
        assert.match(err.message, new RegExp(`${join(dir, 'features-knn.f16').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: the KNN detector's feature bank`));
        assert.match(err.message, message);
        assert.match(err.message, /fit the detectors again/);
        return true;
      });
    });
  }

  test('a Mahalanobis file with NaN or an all-zero whitening matrix is refused', async () => {
    for (const [fill, message] of [[NaN, /Mahalanobis detector's data holds a value that is not a finite number \(NaN at index 0\)/], [0, /whitening matrix is all zeros/]] as const) {
      const dir = join(tempDir('ood-lens-bank-'), 'pair');
      cpSync(MNIST_PAIR, dir, { recursive: true });
      const bytes = readFileSync(join(dir, 'features-mahalanobis.f32'));
      writeFileSync(join(dir, 'features-mahalanobis.f32'), new Uint8Array(new Float32Array(bytes.length / 4).fill(fill).buffer));
      await assert.rejects(OodEngine.create({ pair: dir, provider: 'cpu' }), message);
    }
  });
});
