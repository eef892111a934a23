import assert from 'node:assert/strict';
import { copyFileSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { inverse, Matrix } from 'ml-matrix';
import { onnx } from 'onnx-proto';
import { type Calibration, decideTests } from '../../../src/inference/pair/calibration';
import { OodEngine } from '../../../src/inference/engine';
import { Float16Array } from '@petamoriken/float16';
import { fromFloat16Bytes, toFloat16Bytes } from '../../../src/inference/features/float16';
import { fitFeatureDetectors, saveFeatureFit } from '../../../src/inference/fit/fitFeatures';
import { KnnIndex, l2NormaliseRows, unitDistance } from '../../../src/inference/features/knnIndex';
import { fitMahalanobis, MahalanobisIndex, mahalanobisScores } from '../../../src/inference/features/mahalanobis';
import { exposePenultimate } from '../../../src/inference/features/onnxGraph';
import { idxImages, readIdxFile } from '../../../src/inference/io/idx';
import { parsePairManifest } from '../../../src/inference/pair/manifest';
import { MNIST_PAIR, MNIST_TEST_IMAGES, MNIST_TRAIN_IMAGES, pairReady, tempDir } from '../../helpers';

/** Deterministic pseudo-random numbers in [0, 1). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('KNN in onnxruntime (Gemm + TopK) finds the same k-th neighbour distances as a brute-force search', async () => {
  const rand = rng(1);
  const dims = 16;
  const bank = l2NormaliseRows(Float32Array.from({ length: 500 * dims }, () => rand() - 0.5), dims);
  const queries = l2NormaliseRows(Float32Array.from({ length: 37 * dims }, () => rand() - 0.5), dims);
  for (const k of [1, 3]) {
    const index = await KnnIndex.create(bank, dims, k, { provider: 'cpu' }, 'test bank');
    const got = await index.kthDistances(queries);
    await index.dispose();
    for (let q = 0; q < 37; q++) {
      const sims: number[] = [];
      for (let i = 0; i < 500; i++) {
        let s = 0;
        for (let j = 0; j < dims; j++) s += queries[q * dims + j] * bank[i * dims + j];
        sims.push(s);
      }
      sims.sort((a, b) => b - a);
      assert.ok(Math.abs(got[q] - unitDistance(sims[k - 1])) < 1e-4, `query ${q}, k = ${k}: ${got[q]} vs ${unitDistance(sims[k - 1])}`);
    }
  }
  await assert.rejects(KnnIndex.create(bank, dims, 501, { provider: 'cpu' }, 'test bank'), /k must be an integer from 1 to the 500 stored features/);
});

test('Mahalanobis scores equal min_c (f − μ_c)ᵀ Σ⁻¹ (f − μ_c) with the shared covariance', () => {
  const rand = rng(2);
  const dims = 5;
  const classes = 3;
  const n = 300;
  const labels = Int32Array.from({ length: n }, (_, i) => i % classes);
  const features = Float32Array.from({ length: n * dims }, (_, idx) => rand() + labels[Math.floor(idx / dims)] * (idx % dims === 0 ? 2 : 0));
  const model = fitMahalanobis(features, labels, dims, classes);
  // Reference: the textbook formula with ml-matrix's inverse.
  const means = Array.from({ length: classes }, (_, c) => {
    const rows = [...Array(n).keys()].filter((i) => labels[i] === c);
    return Array.from({ length: dims }, (_, j) => rows.reduce((a, i) => a + features[i * dims + j], 0) / rows.length);
  });
  const cov = Matrix.zeros(dims, dims);
  for (let i = 0; i < n; i++) {
    const d = Array.from({ length: dims }, (_, j) => features[i * dims + j] - means[labels[i]][j]);
    for (let a = 0; a < dims; a++) for (let b = 0; b < dims; b++) cov.set(a, b, cov.get(a, b) + (d[a] * d[b]) / n);
  }
  const precision = inverse(cov);
  const queries = Float32Array.from({ length: 4 * dims }, () => rand() * 3);
  const got = mahalanobisScores(model, queries);
  for (let q = 0; q < 4; q++) {
    const want = Math.min(
      ...means.map((mu) => {
        const d = Matrix.rowVector(Array.from({ length: dims }, (_, j) => queries[q * dims + j] - mu[j]));
        return d.mmul(precision).mmul(d.transpose()).get(0, 0);
      }),
    );
    assert.ok(Math.abs(got[q] - want) / want < 1e-3, `query ${q}: ${got[q]} vs ${want}`);
  }
});

test('the Mahalanobis whitening in onnxruntime (one Gemm a batch) gives the JS reference scores', async () => {
  const rand = rng(7);
  const dims = 64;
  const classes = 10;
  const n = 2000;
  const labels = Int32Array.from({ length: n }, (_, i) => i % classes);
  const features = Float32Array.from({ length: n * dims }, (_, idx) => rand() + labels[Math.floor(idx / dims)] * ((idx % dims) % 7 === 0 ? 0.5 : 0));
  const model = fitMahalanobis(features, labels, dims, classes);
  const queries = Float32Array.from({ length: 300 * dims }, () => rand() * 2);
  const index = await MahalanobisIndex.create(model, { provider: 'cpu' }, 'test');
  try {
    const got = await index.scores(queries);
    const want = mahalanobisScores(model, queries);
    assert.equal(got.length, 300);
    want.forEach((w, i) => assert.ok(Math.abs(got[i] - w) <= 1e-4 * w, `query ${i}: ${got[i]} vs ${w}`));
  } finally {
    await index.dispose();
  }
});

test('float16 feature banks round-trip within half precision, and a wrong size is refused', () => {
  const values = Float32Array.from([0, 1, -1, 0.333, 65504, 1e-3]);
  const back = fromFloat16Bytes(toFloat16Bytes(values), values.length, 'bank');
  values.forEach((v, i) => assert.ok(Math.abs(back[i] - v) <= Math.abs(v) * 1e-3 + 1e-6, `${v} → ${back[i]}`));
  assert.throws(() => fromFloat16Bytes(new Uint8Array(5), 3, 'bank.f16'), /bank\.f16: holds 5 bytes, expected 6/);
});

test('float16 banks decode every bit pattern as the float16 library does (subnormals, infinities, NaN, both zeros)', () => {
  const patterns = new Uint16Array(65536).map((_, i) => i);
  const bytes = new Uint8Array(patterns.length * 2);
  patterns.forEach((p, i) => {
    bytes[2 * i] = p & 0xff; // little-endian on disk
    bytes[2 * i + 1] = p >> 8;
  });
  const got = fromFloat16Bytes(bytes, patterns.length, 'all.f16');
  const want = new Float16Array(new Uint16Array(patterns).buffer);
  for (let i = 0; i < patterns.length; i++) {
    assert.ok(Object.is(got[i], want[i]) || (Number.isNaN(got[i]) && Number.isNaN(want[i])), `pattern 0x${i.toString(16)}: ${got[i]} vs ${want[i]}`);
  }
  assert.ok(Object.is(got[0x8000], -0) && got[0x7c00] === Infinity && got[0xfc00] === -Infinity && Number.isNaN(got[0x7e00]));
  assert.equal(got[0x0001], 2 ** -24); // the smallest subnormal
});

test('the penultimate features of an ONNX classifier are exposed by editing its graph: the input of its last Gemm', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  const path = join(MNIST_PAIR, 'classifier.onnx');
  const { bytes, name } = exposePenultimate(readFileSync(path), path);
  assert.equal(name, '/Relu_2_output_0');
  const model = onnx.ModelProto.decode(bytes);
  assert.deepEqual(model.graph!.output!.map((o) => o.name), ['logits', '/Relu_2_output_0']);
  // A graph with no linear layer has nothing to expose: the message says what to name instead.
  const noLinear = onnx.ModelProto.decode(readFileSync(path));
  noLinear.graph!.node = noLinear.graph!.node!.filter((n) => n.opType !== 'Gemm');
  assert.throws(() => exposePenultimate(onnx.ModelProto.encode(noLinear).finish(), 'x.onnx'), /x\.onnx: has no Gemm or MatMul layer .*features\.output/);
  assert.throws(() => exposePenultimate(new Uint8Array([1, 2, 3]), 'junk.onnx'), /junk\.onnx: not a loadable ONNX model/);
});

test('the verdict runs over the pair\'s detectors and shares: a share-0 test is reported but never fires', () => {
  const ramp = (n: number) => Array.from({ length: n }, (_, i) => i);
  const cal: Calibration = { version: 1, pair: 't', source: 't', count: 99, createdAt: '', scores: { elbo: ramp(99), msp: ramp(99).map((v) => v / 100), knn: ramp(99), mahalanobis: ramp(99) } };
  const shares = { elbo: 0.5, knn: 0.5, mahalanobis: 0 };
  // KNN distance above every held-out one: p = 1/100 < 0.5 · 0.05.
  const far = decideTests(cal, { elbo: -50, knn: 1000, mahalanobis: 1000 }, 0.05, 'pair', shares);
  assert.equal(far.verdict, 'out-of-distribution');
  assert.deepEqual(far.firedBy, ['knn']);
  assert.equal(far.pValues.knn, 0.01);
  assert.equal(far.pValues.mahalanobis, 0.01);
  assert.equal(far.pValue, 0.02);
  // Mahalanobis alone far: reported (p = 0.01) but it has no share, so the image is in-distribution.
  const mahaOnly = decideTests(cal, { elbo: -50, knn: 10, mahalanobis: 1000 }, 0.05, 'pair', shares);
  assert.equal(mahaOnly.verdict, 'in-distribution');
  assert.equal(mahaOnly.pValues.mahalanobis, 0.01);
  // `pair` without a detector list is `all`, so existing pairs keep their verdicts.
  const legacy = decideTests(cal, { elbo: 1000, complexity: null, confidence: -0.5 }, 0.05, 'pair', undefined);
  assert.equal(legacy.rule, 'elbo');
  assert.deepEqual(legacy.firedBy, ['elbo']);
});

test('the manifest\'s detector list is checked: each test once, shares summing to at most 1, feature tests need a fit', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  const base = JSON.parse(readFileSync(join(MNIST_PAIR, 'ood-pair.json'), 'utf8'));
  const withList = (detectors: unknown, withFeatures = true) => JSON.stringify({ ...base, detectors, features: withFeatures ? base.features : undefined });
  assert.throws(() => parsePairManifest(withList([{ test: 'knn', share: 0.6 }, { test: 'elbo', share: 0.6 }]), 'p.json'), /detectors: the shares of α sum to 1\.2/);
  assert.throws(() => parsePairManifest(withList([{ test: 'elbo', share: 0.5 }, { test: 'elbo', share: 0.1 }]), 'p.json'), /detectors\[1\]\.test: "elbo" is listed twice/);
  assert.throws(() => parsePairManifest(withList([{ test: 'knn', share: 1 }], false), 'p.json'), /detectors\[0\]: the knn detector needs fitted features \(features\.fit\)/);
  assert.throws(() => parsePairManifest(withList([{ test: 'elbo', share: 1, k: 3 }]), 'p.json'), /detectors\[0\]\.k: only the knn detector takes k/);
  assert.throws(() => parsePairManifest(withList([{ test: 'knn-ish', share: 1 }]), 'p.json'), /detectors\.0\.test: must be one of "elbo", "complexity", "confidence", "energy", "knn", "mahalanobis"/);
});

test('the built-in MNIST pair scores with KNN and Mahalanobis: a fit image is its own nearest neighbour, a FashionMNIST-like input is far', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, async () => {
  const engine = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', preprocessWorkers: 0 });
  try {
    assert.deepEqual(engine.detectors.map((d) => d.test), ['elbo', 'complexity', 'confidence', 'energy', 'knn', 'mahalanobis']);
    const train = idxImages(readIdxFile(MNIST_TRAIN_IMAGES));
    const testSet = idxImages(readIdxFile(MNIST_TEST_IMAGES));
    const raw = (data: Uint8Array) => ({ width: 28, height: 28, channels: 1 as const, data });
    const results: Awaited<ReturnType<OodEngine['scoreOne']>>[] = [];
    await engine.scoreAll(
      [
        { path: 'train#0', source: raw(train.image(0)) }, // fitted on: distance ≈ 0 (float16 rounding)
        { path: 'test#0', source: raw(testSet.image(0)) },
        { path: 'blank', source: raw(new Uint8Array(784)) },
      ],
      (r) => void results.push(r),
    );
    const [fitImage, testImage, blank] = results;
    assert.ok(fitImage.knnDistance! < 0.01, `fit image KNN distance ${fitImage.knnDistance}`);
    assert.ok(testImage.knnDistance! > fitImage.knnDistance!, 'a test digit is farther than a fit image');
    assert.ok(blank.knnDistance! > testImage.knnDistance!, 'a blank image is farther than a test digit');
    assert.ok(typeof testImage.pValues.knn === 'number' && typeof testImage.pValues.mahalanobis === 'number');
    assert.equal(engine.info.rule, 'pair');
    assert.deepEqual(engine.info.shares, { elbo: 0.2, complexity: 0.2, confidence: 0.1, knn: 0.5, mahalanobis: 0 });
  } finally {
    await engine.dispose();
  }
});

test('fitFeatureDetectors fits on a set, saves into the pair, and the pair then scores with them; an abort fits nothing', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, async () => {
  const dir = tempDir();
  for (const f of ['classifier.onnx', 'vae.onnx', 'vae-encoder.onnx', 'vae-decoder.onnx']) copyFileSync(join(MNIST_PAIR, f), join(dir, f));
  const manifest = JSON.parse(readFileSync(join(MNIST_PAIR, 'ood-pair.json'), 'utf8'));
  delete manifest.features;
  delete manifest.detectors;
  delete manifest.calibration;
  writeFileSync(join(dir, 'ood-pair.json'), JSON.stringify(manifest));
  const train = idxImages(readIdxFile(MNIST_TRAIN_IMAGES));
  const inputs = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ path: `train#${from + i}`, source: { width: 28, height: 28, channels: 1 as const, data: train.image(from + i) } }));
  const engine = await OodEngine.create({ pair: dir, provider: 'cpu', features: true, complexity: false, preprocessWorkers: 0, batchSize: 32 });
  let progress = 0;
  const controller = new AbortController();
  controller.abort();
  const aborted = await fitFeatureDetectors(engine, inputs(0, 64), { source: 'test', signal: controller.signal });
  assert.equal(aborted.cancelled, true);
  const { fit, skipped } = await fitFeatureDetectors(engine, [...inputs(0, 300), { path: 'missing.png' }], { source: 'MNIST train 0–299', onProgress: (d) => (progress = d) });
  await engine.dispose();
  assert.equal(progress, 301);
  assert.equal(skipped.length, 1);
  assert.match(skipped[0].message, /missing\.png|no such file|not found/);
  assert.equal(fit.count, 300);
  assert.equal(fit.dims, 128);
  saveFeatureFit(join(dir, 'ood-pair.json'), fit, [{ test: 'elbo', share: 0.5 }, { test: 'knn', share: 0.5 }]);
  const again = await OodEngine.create({ pair: dir, provider: 'cpu', preprocessWorkers: 0, complexity: false });
  try {
    const [r] = await again.scoreImages([{ width: 32, height: 32, channels: 1, pixels: padded(train.image(5)) }], ['train#5']);
    assert.ok(r.knnDistance! < 0.01, `a fit image is its own neighbour (distance ${r.knnDistance})`);
    assert.equal(r.verdict, 'uncalibrated');
  } finally {
    await again.dispose();
  }
});

/** A 28×28 digit in the pair's 32×32 field (2 px black border). */
function padded(digit: Uint8Array): Uint8Array {
  const out = new Uint8Array(32 * 32);
  for (let y = 0; y < 28; y++) out.set(digit.subarray(y * 28, (y + 1) * 28), (y + 2) * 32 + 2);
  return out;
}

test('a TensorFlow.js classifier gives its features from a named layer (features.layer), the same as the ONNX export\'s last Gemm input', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, async () => {
  const dir = tempDir();
  const tfjs = JSON.parse(readFileSync(join(MNIST_PAIR, 'ood-pair.tfjs.json'), 'utf8'));
  cpSync(join(MNIST_PAIR, 'tfjs', 'classifier'), join(dir, 'classifier'), { recursive: true });
  tfjs.classifier.path = 'classifier/model.json';
  delete tfjs.vae;
  delete tfjs.calibration;
  delete tfjs.detectors; // the fitted KNN/Mahalanobis of the built-in manifest need features.fit, which this copy drops
  tfjs.features = { layer: 'fc1' };
  writeFileSync(join(dir, 'ood-pair.json'), JSON.stringify(tfjs));
  const images = idxImages(readIdxFile(MNIST_TEST_IMAGES));
  const inputs = Array.from({ length: 40 }, (_, i) => ({ path: `t10k#${i}`, source: { width: 28, height: 28, channels: 1 as const, data: images.image(i) } }));
  const featuresOf = async (pair: string) => {
    const engine = await OodEngine.create({ pair, provider: 'cpu', features: true, complexity: false, preprocessWorkers: 0 });
    const rows: number[] = [];
    try {
      await engine.extractFeatures(inputs, (b) => void rows.push(...b.features));
    } finally {
      await engine.dispose();
    }
    return rows;
  };
  const fromTfjs = await featuresOf(dir);
  const fromOnnx = await featuresOf(MNIST_PAIR);
  assert.equal(fromTfjs.length, 40 * 128);
  assert.equal(fromOnnx.length, 40 * 128);
  const worst = Math.max(...fromTfjs.map((v, i) => Math.abs(v - fromOnnx[i])));
  assert.ok(worst < 1e-3, `largest difference ${worst}`);
  // A layer the model does not have is named with the ones it has.
  tfjs.features = { layer: 'fc9' };
  writeFileSync(join(dir, 'ood-pair.json'), JSON.stringify(tfjs));
  await assert.rejects(OodEngine.create({ pair: dir, provider: 'cpu', features: true, complexity: false, preprocessWorkers: 0 }), /has no layer named "fc9" \(layers: .*fc1.*\); fix features\.layer/);
});
