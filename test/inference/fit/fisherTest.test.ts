/**
 * The `fisher` test (src/inference/fit/fisherTest.ts): fit adds Fisher's combination of the tests it chose, with
 * its own conformal calibration half. On a classifier-only FashionMNIST pair (the built-in classifier fitted as
 * a newcomer would, without a VAE) it separates MNIST better than every test it combines, it keeps its false
 * alarms at α on in-distribution images fit never saw, and a damaged reference is refused by name.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fitPair, type FitOptions } from '../../../src/inference/fit/fit';
import { FISHER_SHARE, withFisher } from '../../../src/inference/fit/fisherTest';
import { OodEngine } from '../../../src/inference/engine';
import { auroc } from '../../../src/inference/detectors/metrics';
import { resultOodScore } from '../../../src/inference/detectors/oodDetectors';
import { calibrationValues, fisherStatistic, readCalibration } from '../../../src/inference/pair/calibration';
import type { ImageResult } from '../../../src/inference/engineTypes';
import type { TestChoiceRecord } from '../../../src/inference/pair/manifest';
import type { TestName } from '../../../src/shared/rules';
import { spawnSync } from 'node:child_process';
import { FASHION_PAIR, FASHION_TEST_IMAGES, MNIST_TEST_IMAGES, REPO, tempDir, idxRawInputs, scoreAllInOrder } from '../../helpers';

/**
 * Fits the built-in FashionMNIST classifier (with `vae`'s options) on the first 4,000 FashionMNIST test images, then
 * scores 2,000 in-distribution images fit never saw (indices 5,000 on) and 1,000 MNIST digits.
 */
async function fitAndScoreAgainstMnist(prefix: string, vae: Pick<FitOptions, 'trainVae' | 'encoder' | 'decoder'>) {
  const out = join(tempDir(prefix), 'pair');
  await fitPair({ classifier: join(FASHION_PAIR, 'classifier.onnx'), data: [FASHION_TEST_IMAGES], limit: 4000, padding: 2, ...vae, out });
  const engine = await OodEngine.create({ pair: out, provider: 'cpu' });
  try {
    return { out, fashion: await scoreAllInOrder(engine, idxRawInputs(FASHION_TEST_IMAGES, 5000, 2000)), mnist: await scoreAllInOrder(engine, idxRawInputs(MNIST_TEST_IMAGES, 0, 1000)) };
  } finally {
    await engine.dispose();
  }
}

describe('fit adds the Fisher test to a classifier-only FashionMNIST pair', () => {
  let out: string;
  let fashion: ImageResult[];
  let mnist: ImageResult[];
  let members: TestName[];
  before(async () => {
    // The first 4,000 FashionMNIST test images: fit 1,800, calibration 1,800 (900 reference + 900 for T), check 400.
    ({ out, fashion, mnist } = await fitAndScoreAgainstMnist('fisher-pair-', { trainVae: false }));
    members = JSON.parse(readFileSync(join(out, 'calibration.json'), 'utf8')).fisherReference.tests;
  });

  test('the pair lists it with its share, its reference and calibration are the two disjoint halves of the calibration part', () => {
    const manifest = JSON.parse(readFileSync(join(out, 'ood-pair.json'), 'utf8'));
    const shares = Object.fromEntries(manifest.detectors.map((d: { test: string; share: number }) => [d.test, d.share]));
    assert.equal(shares.fisher, FISHER_SHARE);
    const total = Object.values(shares as Record<string, number>).reduce((a, b) => a + b, 0);
    assert.ok(total <= 1 + 1e-9 && total > 0.97, `shares sum to ${total}`);
    // Its members are exactly the tests the probes chose (share > 0), at least two of them.
    assert.ok(members.length >= 2);
    assert.deepEqual([...members].sort(), Object.keys(shares).filter((t) => t !== 'fisher' && shares[t] > 0).sort());
    const calibration = readCalibration(join(out, 'calibration.json'));
    assert.equal(calibration.count, 1800);
    assert.equal(calibration.scores.fisher!.length, 900);
    for (const t of members) assert.equal(calibration.fisherReference!.scores[calibrationValues(t, []).key]!.length, 900, t);
    const row = manifest.fit.testChoice.tests.find((t: { test: string }) => t.test === 'fisher');
    assert.ok(row.used && row.auroc > 0.9, JSON.stringify(row));
  });

  test('every result carries T and its p-value, and T is what its members\' p-values against the reference give', () => {
    const calibration = readCalibration(join(out, 'calibration.json'));
    for (const r of [...fashion.slice(0, 50), ...mnist.slice(0, 50)]) {
      assert.equal(typeof r.pValues.fisher, 'number');
      const expected = fisherStatistic(calibration.fisherReference, Object.fromEntries(members.map((t) => [t, resultOodScore(t, r)])));
      assert.ok(Math.abs(r.fisherScore! - expected!) < 1e-9, `${r.fisherScore} vs ${expected}`);
    }
  });

  test('against MNIST it beats every test it combines (AUROC on 2,000 + 1,000 images fit never saw)', () => {
    const a = (test: TestName) => auroc(fashion.map((r) => resultOodScore(test, r)!), mnist.map((r) => resultOodScore(test, r)!));
    const each = Object.fromEntries(members.map((t) => [t, a(t)]));
    const fisher = a('fisher');
    for (const [t, v] of Object.entries(each)) assert.ok(fisher > v, `fisher ${fisher.toFixed(4)} ≤ ${t} ${v.toFixed(4)}`);
    assert.ok(fisher >= 0.99, `fisher AUROC ${fisher}`);
  });

  test('its false alarms stay at its share of α, and the verdict\'s at α, on in-distribution images fit never saw', () => {
    const alpha = 0.01;
    // Binomial sd of 2,000 draws at 0.8% is 0.2 points: 3 sd above the share.
    const fisherAlarms = fashion.filter((r) => r.pValues.fisher! < FISHER_SHARE * alpha).length / fashion.length;
    assert.ok(fisherAlarms <= FISHER_SHARE * alpha + 0.006, `fisher alone flags ${(100 * fisherAlarms).toFixed(2)}%`);
    const verdict = fashion.filter((r) => r.verdict === 'out-of-distribution').length / fashion.length;
    assert.ok(verdict <= alpha + 0.007, `the verdict flags ${(100 * verdict).toFixed(2)}%`);
    // And it does its work: more than half the MNIST digits flagged (59.6% measured with this small pair; 14% when
    // the Fisher sum was unweighted and the classifier's confidence drowned the feature tests).
    const detected = mnist.filter((r) => r.verdict === 'out-of-distribution').length / mnist.length;
    assert.ok(detected >= 0.5, `the verdict flags ${(100 * detected).toFixed(1)}% of MNIST`);
  });

  test('ood-lens calibrate makes the fisher reference again (new halves, the same tests and weights), so its share is never silently lost', () => {
    const again = join(tempDir('fisher-recal-'), 'pair');
    cpSync(out, again, { recursive: true });
    const before = readCalibration(join(again, 'calibration.json')).fisherReference!;
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'src', 'cli', 'main.ts'), 'calibrate', FASHION_TEST_IMAGES, '--pair', again, '--offset', '8000', '--limit', '1000'], { cwd: REPO, encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const calibration = readCalibration(join(again, 'calibration.json'));
    assert.equal(calibration.count, 1000);
    assert.deepEqual(calibration.fisherReference!.tests, before.tests);
    calibration.fisherReference!.weights.forEach((w, i) => assert.ok(Math.abs(w - before.weights[i]) < 0.01, `${calibration.fisherReference!.tests[i]}: ${w} vs ${before.weights[i]}`));
    assert.equal(calibration.scores.fisher!.length, 500);
  });

  test('a damaged reference is refused, naming the field', async () => {
    const broken = join(tempDir('fisher-broken-'), 'pair');
    cpSync(out, broken, { recursive: true });
    const file = JSON.parse(readFileSync(join(broken, 'calibration.json'), 'utf8'));
    const key = Object.keys(file.fisherReference.scores)[0];
    file.fisherReference.scores[key] = [];
    writeFileSync(join(broken, 'calibration.json'), JSON.stringify(file));
    assert.throws(() => readCalibration(join(broken, 'calibration.json')), new RegExp(`fisherReference\\.scores\\.${key}: needs a non-empty list of finite numbers`));
  });
});

test('withFisher: T gets its share and the chosen shares are scaled into the rest; a T blind on the probes gets none and the choice stands', () => {
  const row = (test: TestName, share: number, used = true) => ({ test, auroc: 0.9, aurocByProbe: {}, caughtAt1Percent: 0.5, used, share });
  const choice: TestChoiceRecord = { method: 'm', probesPerKind: 20, tests: [row('knn', 0.6), row('layers', 0.4), row('confidence', 0, false)] };
  const added = withFisher(choice, row('fisher', 1));
  assert.deepEqual(added.tests.map((t) => [t.test, t.share]), [['knn', 0.12], ['layers', 0.08], ['confidence', 0], ['fisher', FISHER_SHARE]]);
  assert.match(added.method, /Fisher's method over the used tests \(knn, layers\)/);
  const blind = withFisher(choice, { ...row('fisher', 0, false), reason: 'nearly blind on the synthetic probes: AUROC 0.55' });
  assert.deepEqual(blind.tests.map((t) => [t.test, t.share]), [['knn', 0.6], ['layers', 0.4], ['confidence', 0], ['fisher', 0]]);
  assert.doesNotMatch(added.method, /vote once/);
  const withVae = withFisher({ ...choice, tests: [row('elbo', 0.3), row('complexity', 0.2), row('knn', 0.5)] }, row('fisher', 1));
  assert.match(withVae.method, /over the used tests \(elbo, complexity, knn\), weighted by their shares \(elbo and complexity read one model and vote once: min\(1, 2·min p\), the larger weight\)/);
});

describe('readings of one model vote once in T: the ELBO and S(x) of a pair with a VAE', () => {
  let out: string;
  let fashion: ImageResult[];
  let mnist: ImageResult[];
  before(async () => {
    // The built-in FashionMNIST classifier with its own VAE given (nothing trained), fitted on 4,000 test images.
    ({ out, fashion, mnist } = await fitAndScoreAgainstMnist('fisher-vae-pair-', { encoder: join(FASHION_PAIR, 'vae-encoder.onnx'), decoder: join(FASHION_PAIR, 'vae-decoder.onnx') }));
  });

  test('the reference groups them, and one vote separates MNIST better than the two voting apart', () => {
    const reference = readCalibration(join(out, 'calibration.json')).fisherReference!;
    assert.ok(reference.tests.includes('elbo') && reference.tests.includes('complexity'), `members: ${reference.tests.join(', ')}`);
    assert.deepEqual(reference.oneVote, [['elbo', 'complexity']]);
    const apart = { ...reference, oneVote: undefined };
    const t = (r: ImageResult, ref: typeof reference) => fisherStatistic(ref, Object.fromEntries(ref.tests.map((m) => [m, resultOodScore(m, r)])))!;
    for (const r of fashion.slice(0, 20)) assert.ok(Math.abs(r.fisherScore! - t(r, reference)) < 1e-9);
    const together = auroc(fashion.map((r) => t(r, reference)), mnist.map((r) => t(r, reference)));
    const separately = auroc(fashion.map((r) => t(r, apart)), mnist.map((r) => t(r, apart)));
    assert.ok(together > separately, `one vote ${together.toFixed(4)}, two votes ${separately.toFixed(4)}`);
  });
});

test('fisherStatistic: a oneVote group gives min(1, k·min p) with the largest of its weights; a damaged group is refused by name', () => {
  // Reference of 9 values each: an OOD score above all of them has p = 1/10, below all p = 1.
  const scores = { elbo: [1, 2, 3, 4, 5, 6, 7, 8, 9].map((v) => -v), complexity: [1, 2, 3, 4, 5, 6, 7, 8, 9], knn: [1, 2, 3, 4, 5, 6, 7, 8, 9] };
  const reference = { tests: ['elbo', 'complexity', 'knn'] as TestName[], weights: [0.5, 0.2, 0.3], scores };
  const image = { elbo: 100, complexity: 0, knn: 100 }; // elbo OOD score 100 (ELBO −100): p = 0.1; complexity p = 1; knn p = 0.1
  const apart = fisherStatistic(reference, image)!;
  assert.ok(Math.abs(apart - (0.5 + 0.3) * Math.log(10)) < 1e-12, String(apart));
  const together = fisherStatistic({ ...reference, oneVote: [['elbo', 'complexity']] }, image)!;
  assert.ok(Math.abs(together - (0.5 * -Math.log(0.2) + 0.3 * Math.log(10))) < 1e-12, String(together));
  const dir = tempDir('fisher-onevote-');
  const file = join(dir, 'calibration.json');
  const write = (oneVote: unknown) => writeFileSync(file, JSON.stringify({ version: 1, pair: 'p', source: 's', count: 9, createdAt: '', scores: { elbo: scores.elbo, fisher: [1] }, fisherReference: { ...reference, oneVote } }));
  write([['elbo', 'complexity']]);
  assert.deepEqual(readCalibration(file).fisherReference!.oneVote, [['elbo', 'complexity']]);
  for (const bad of [[['elbo']], [['elbo', 'energy']], [['elbo', 'complexity'], ['complexity', 'knn']], 'elbo']) {
    write(bad);
    assert.throws(() => readCalibration(file), /fisherReference\.oneVote: needs groups of two or more of its tests/, JSON.stringify(bad));
  }
});
