import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { type ImageResult, OodEngine, type ScoreInput } from '../../src/inference/engine';
import { idxImages, readIdxFile } from '../../src/inference/io/idx';
import { FASHION_PAIR, FASHION_TEST_IMAGES, MNIST_PAIR, MNIST_TEST_IMAGES, pairReady } from '../helpers';

const inputs: ScoreInput[] = [];
for (const [path, n] of [[MNIST_TEST_IMAGES, 150], [FASHION_TEST_IMAGES, 100]] as const) {
  const images = idxImages(readIdxFile(path));
  for (let i = 0; i < n; i++) inputs.push({ path: `${path}#${i}`, source: { width: 28, height: 28, channels: 1, data: images.image(i) } });
}

/** Scores every input under the pair's own verdict rule (`pair`: its detector list, KNN included). */
async function collect(pair: string) {
  const engine = await OodEngine.create({ pair, provider: 'cpu', batchSize: 50 });
  const results: ImageResult[] = [];
  await engine.scoreAll(inputs, (r) => void results.push(r), { withDetails: true });
  const { backend, shares, rule } = engine.info;
  await engine.dispose();
  return { results, backend, shares, rule };
}

for (const dir of [MNIST_PAIR, FASHION_PAIR]) {
  test(`the ${dir.split(/[\\/]/).pop()} pair as ONNX and as TensorFlow.js layers gives the same scores and verdicts under its default rule`, { skip: pairReady(dir) ? false : `${dir} is not trained yet` }, async () => {
    const onnx = await collect(dir);
    const tfjs = await collect(join(dir, 'ood-pair.tfjs.json'));
    assert.match(onnx.backend, /onnxruntime/);
    assert.match(tfjs.backend, /tensorflow\.js/);
    // Both run the same detector list, KNN with its share of α among them.
    assert.equal(tfjs.rule, 'pair');
    assert.deepEqual(tfjs.shares, onnx.shares);
    assert.ok((onnx.shares?.knn ?? 0) > 0, `the ONNX pair gives KNN no share: ${JSON.stringify(onnx.shares)}`);
    let maxSoftmax = 0;
    let maxElboRel = 0;
    let maxKnn = 0;
    let maxMahalanobisRel = 0;
    let maxPDiff = 0;
    let ood = 0;
    onnx.results.forEach((a, i) => {
      const b = tfjs.results[i];
      assert.equal(a.error, null);
      assert.equal(b.error, null);
      assert.equal(a.prediction, b.prediction);
      a.details!.probabilities.forEach((p, k) => (maxSoftmax = Math.max(maxSoftmax, Math.abs(p - b.details!.probabilities[k]))));
      maxElboRel = Math.max(maxElboRel, Math.abs(a.elbo! - b.elbo!) / Math.abs(a.elbo!));
      assert.equal(typeof a.knnDistance, 'number');
      assert.equal(typeof b.knnDistance, 'number');
      maxKnn = Math.max(maxKnn, Math.abs(a.knnDistance! - b.knnDistance!));
      maxMahalanobisRel = Math.max(maxMahalanobisRel, Math.abs(a.mahalanobis! - b.mahalanobis!) / Math.abs(a.mahalanobis!));
      // A p-value is a rank among the calibration scores: a difference of 1e-6 in a score may cross one of them.
      for (const [name, p] of Object.entries(a.pValues)) {
        const q = (b.pValues as Record<string, number | null>)[name];
        if (p === null || q === null) assert.equal(q, p, `${a.path}: ${name} p-value`);
        else maxPDiff = Math.max(maxPDiff, Math.abs(p - q));
      }
      assert.deepEqual(b.firedBy, a.firedBy, `${a.path}: fired by ${a.firedBy} (ONNX) vs ${b.firedBy} (TF.js)`);
      assert.equal(b.verdict, a.verdict);
      if (a.verdict === 'out-of-distribution') ood++;
    });
    console.log(
      `ONNX vs TF.js on ${inputs.length} images: max |Δ softmax| ${maxSoftmax.toExponential(2)}, max relative Δ ELBO ${maxElboRel.toExponential(2)}, ` +
        `max |Δ KNN distance| ${maxKnn.toExponential(2)}, max relative Δ Mahalanobis ${maxMahalanobisRel.toExponential(2)}, max |Δ p-value| ${maxPDiff.toExponential(2)}; ${ood} OOD verdicts in both`,
    );
    assert.ok(maxSoftmax <= 1e-4, `softmax differs by ${maxSoftmax}`);
    assert.ok(maxElboRel <= 1e-4, `ELBO differs by ${maxElboRel} (relative)`);
    assert.ok(maxKnn <= 1e-4, `KNN distance differs by ${maxKnn}`);
    assert.ok(maxMahalanobisRel <= 1e-4, `Mahalanobis distance differs by ${maxMahalanobisRel} (relative)`);
    assert.ok(maxPDiff <= 1e-3, `a p-value differs by ${maxPDiff} (more than a few calibration ranks)`);
    // Not a vacuous comparison: the far-OOD set is flagged (by one pair or the other), the in-distribution set mostly not.
    assert.ok(ood >= 50 && ood <= 200, `${ood} OOD verdicts of ${inputs.length}`);
  });
}
