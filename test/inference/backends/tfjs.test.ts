/**
 * The TensorFlow.js export of the default MNIST pair must answer like its ONNX original, run without
 * leaking tensors, and turn every broken model folder into a readable ModelError.
 *
 * Uses the pair in OOD_LENS_TEST_PAIR_DIR (default models/mnist), with its tfjs/ folder from
 * `npx tsx training/export-tfjs.ts <dir>`.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DATASETS, MNIST_LIKE_INPUT } from '../../../training/datasets';
import { idxImages, readIdxFile } from '../../../src/inference/io/idx';
import { toModelImage, toTensorData } from '../../../src/inference/image/preprocess';
import { loadOnnx } from '../../../src/inference/backends/onnx';
import { loadTfjs, tfjsRuntime } from '../../../src/inference/backends/tfjs';
import { type FloatTensor, ModelError, type ModelRunner } from '../../../src/inference/backends/types';

const repoRoot = resolve(__dirname, '../../..');
const pairDir = resolve(repoRoot, process.env.OOD_LENS_TEST_PAIR_DIR ?? 'models/mnist');
const REQUIRED = ['classifier.onnx', 'vae.onnx', 'tfjs/classifier/model.json', 'tfjs/classifier/weights.bin', 'tfjs/vae/model.json', 'tfjs/vae/weights.bin'];
const missing = REQUIRED.filter((f) => !existsSync(join(pairDir, f)));
const SKIP = missing.length ? `${relative(repoRoot, pairDir) || pairDir} not trained yet (missing ${missing.join(', ')})` : undefined;
const cpu = { provider: 'cpu' } as const;

/** Real MNIST test digits through the engine's own preprocessing, in both layouts. */
async function mnistBatch(count: number): Promise<{ nchw: FloatTensor; nhwc: FloatTensor }> {
  const images = idxImages(readIdxFile(DATASETS.mnist.test.images), 'MNIST t10k');
  const size = MNIST_LIKE_INPUT.width * MNIST_LIKE_INPUT.height;
  const nchw = new Float32Array(count * size);
  const nhwc = new Float32Array(count * size);
  for (let n = 0; n < count; n++) {
    const img = await toModelImage({ width: images.width, height: images.height, channels: 1, data: images.image(n * 997) }, MNIST_LIKE_INPUT);
    toTensorData(img, MNIST_LIKE_INPUT, 'NCHW', nchw, n * size);
    toTensorData(img, MNIST_LIKE_INPUT, 'NHWC', nhwc, n * size);
  }
  const { width: w, height: h } = MNIST_LIKE_INPUT;
  return { nchw: { data: nchw, dims: [count, 1, h, w] }, nhwc: { data: nhwc, dims: [count, h, w, 1] } };
}

function softmaxRows(t: FloatTensor): Float64Array {
  const [n, k] = t.dims;
  const out = new Float64Array(n * k);
  for (let i = 0; i < n; i++) {
    const row = t.data.subarray(i * k, (i + 1) * k);
    const max = Math.max(...row);
    let sum = 0;
    for (let j = 0; j < k; j++) sum += out[i * k + j] = Math.exp(row[j] - max);
    for (let j = 0; j < k; j++) out[i * k + j] /= sum;
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** NHWC → NCHW (the TF.js reconstruction is [N, 32, 32, 1], the ONNX one [N, 1, 32, 32]). */
function toNchw(t: FloatTensor): Float32Array {
  const [n, h, w, c] = t.dims;
  const out = new Float32Array(t.data.length);
  for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) out[(b * c + ch) * h * w + p] = t.data[(b * h * w + p) * c + ch];
  return out;
}

function isModelError(pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof ModelError, `expected a ModelError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('TensorFlow.js backend', { skip: SKIP }, () => {
  const runners: ModelRunner[] = [];
  let batch: { nchw: FloatTensor; nhwc: FloatTensor };
  before(async () => {
    batch = await mnistBatch(8);
  });
  after(async () => {
    for (const r of runners) await r.dispose();
  });
  const open = async <T extends ModelRunner>(p: Promise<T>): Promise<T> => {
    const r = await p;
    runners.push(r);
    return r;
  };

  test('describes the exported models', async () => {
    const clf = await open(loadTfjs(join(pairDir, 'tfjs/classifier'), 'tfjs-layers', cpu));
    assert.match(clf.backend, /^tensorflow\.js \(/);
    assert.equal(clf.provider, 'cpu');
    assert.deepEqual(clf.inputs, [{ name: 'image', shape: [null, 32, 32, 1], dtype: 'float32' }]);
    assert.deepEqual(clf.outputs, [{ name: 'logits', shape: [null, 10], dtype: 'float32' }]);
    // The model.json path itself works as well as its folder.
    const vae = await open(loadTfjs(join(pairDir, 'tfjs/vae/model.json'), 'tfjs-layers', cpu));
    assert.deepEqual(
      vae.outputs.map((o) => [o.name, o.shape]),
      [
        ['reconstruction_logits', [null, 32, 32, 1]],
        ['mu', [null, 16]],
        ['logvar', [null, 16]],
      ],
    );
  });

  test('classifier agrees with ONNX on real MNIST digits', async (t) => {
    const onnx = await open(loadOnnx(join(pairDir, 'classifier.onnx'), cpu));
    const tfjs = await open(loadTfjs(join(pairDir, 'tfjs/classifier'), 'tfjs-layers', cpu));
    const a = (await onnx.run({ image: batch.nchw })).logits;
    const b = (await tfjs.run({ image: batch.nhwc })).logits;
    assert.deepEqual(b.dims, a.dims);
    const diff = maxAbsDiff(softmaxRows(a), softmaxRows(b));
    const logits = maxAbsDiff(a.data, b.data);
    t.diagnostic(`max |ONNX − TF.js|: softmax ${diff.toExponential(2)}, logits ${logits.toExponential(2)}`);
    assert.ok(diff <= 1e-4, `softmax differs by ${diff}`);
    assert.ok(logits <= 1e-3, `logits differ by ${logits}`);
  });

  test('VAE agrees with ONNX on real MNIST digits', async (t) => {
    const onnx = await open(loadOnnx(join(pairDir, 'vae.onnx'), cpu));
    const tfjs = await open(loadTfjs(join(pairDir, 'tfjs/vae'), 'tfjs-layers', cpu));
    const a = await onnx.run({ image: batch.nchw });
    const b = await tfjs.run({ image: batch.nhwc });
    assert.deepEqual(b.reconstruction_logits.dims, [8, 32, 32, 1]);
    const recon = maxAbsDiff(a.reconstruction_logits.data, toNchw(b.reconstruction_logits));
    t.diagnostic(`max |ONNX − TF.js|: reconstruction logits ${recon.toExponential(2)}`);
    assert.ok(recon <= 1e-3, `reconstruction logits differ by ${recon}`);
    for (const name of ['mu', 'logvar']) {
      assert.deepEqual(b[name].dims, a[name].dims);
      const diff = maxAbsDiff(a[name].data, b[name].data);
      t.diagnostic(`max |ONNX − TF.js|: ${name} ${diff.toExponential(2)}`);
      assert.ok(diff <= 1e-3, `${name} differs by ${diff}`);
    }
  });

  test('frees every tensor it makes and honours outputNames', async () => {
    const { tf } = await tfjsRuntime('cpu');
    const vae = await open(loadTfjs(join(pairDir, 'tfjs/vae'), 'tfjs-layers', cpu));
    await vae.run({ image: batch.nhwc }); // warm-up: a backend may cache tensors once
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await vae.run({ image: batch.nhwc });
    const only = await vae.run({ image: batch.nhwc }, ['mu']);
    assert.deepEqual(Object.keys(only), ['mu']);
    await assert.rejects(vae.run({ image: batch.nhwc }, ['z']), isModelError(/no output named "z"/));
    assert.equal(tf.memory().numTensors, before, 'tensor count grew across runs');
    // Disposing the model frees its weights too.
    const extra = await loadTfjs(join(pairDir, 'tfjs/vae'), 'tfjs-layers', cpu);
    const withModel = tf.memory().numTensors;
    await extra.dispose();
    assert.ok(tf.memory().numTensors < withModel);
    await assert.rejects(extra.run({ image: batch.nhwc }), isModelError(/disposed/));
  });

  describe('broken model folders', () => {
    let tmp: string;
    const src = join(pairDir, 'tfjs/classifier');
    /** A copy of the exported classifier in its own folder, with model.json optionally rewritten. */
    const fixture = (name: string, edit?: (json: { weightsManifest: { paths: string[] }[] }) => void): string => {
      const dir = join(tmp, name);
      mkdirSync(dir, { recursive: true });
      copyFileSync(join(src, 'weights.bin'), join(dir, 'weights.bin'));
      const json = JSON.parse(readFileSync(join(src, 'model.json'), 'utf8'));
      edit?.(json);
      writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
      return dir;
    };
    before(() => {
      tmp = mkdtempSync(join(tmpdir(), 'ood-lens-tfjs-'));
    });
    after(() => rmSync(tmp, { recursive: true, force: true }));

    test('the intact copy loads (the fixtures are sound)', async () => {
      const r = await loadTfjs(fixture('intact'), 'tfjs-layers', cpu);
      await r.dispose();
    });

    test('missing model.json', async () => {
      const dir = join(tmp, 'empty');
      mkdirSync(dir);
      await assert.rejects(loadTfjs(dir, 'tfjs-layers', cpu), isModelError(/model\.json.*not found/));
    });

    test('corrupt model.json', async () => {
      const dir = fixture('corrupt');
      const text = readFileSync(join(dir, 'model.json'), 'utf8');
      writeFileSync(join(dir, 'model.json'), text.slice(0, text.length / 2));
      await assert.rejects(loadTfjs(dir, 'tfjs-layers', cpu), isModelError(/model\.json: is not valid JSON/));
    });

    test('truncated weights file', async () => {
      const dir = fixture('truncated');
      const bin = readFileSync(join(dir, 'weights.bin'));
      writeFileSync(join(dir, 'weights.bin'), bin.subarray(0, bin.length - 1000));
      await assert.rejects(loadTfjs(dir, 'tfjs-layers', cpu), isModelError(/weights\.bin: has \d+ bytes but model\.json declares \d+ bytes.*truncated/));
    });

    test('missing weights file', async () => {
      const dir = fixture('no-weights');
      rmSync(join(dir, 'weights.bin'));
      await assert.rejects(loadTfjs(dir, 'tfjs-layers', cpu), isModelError(/weights\.bin: weights file listed in model\.json not found/));
    });

    test('a weights path escaping the folder', async () => {
      // The escaping target exists (tmp/weights.bin), so only the path check can stop it.
      copyFileSync(join(src, 'weights.bin'), join(tmp, 'weights.bin'));
      for (const path of ['../weights.bin', '..%2Fweights.bin', join(tmp, 'weights.bin')]) {
        const dir = fixture('escape', (json) => (json.weightsManifest[0].paths = [path]));
        await assert.rejects(loadTfjs(dir, 'tfjs-layers', cpu), isModelError(/points outside the model folder/), path);
      }
    });

    test('layers model declared as a graph model', async () => {
      await assert.rejects(loadTfjs(fixture('format'), 'tfjs-graph', cpu), isModelError(/is a layers-model.*"tfjs-layers"/));
    });

    test('a feed of the wrong shape', async () => {
      const r = await open(loadTfjs(fixture('shape'), 'tfjs-layers', cpu));
      const nchw = { data: new Float32Array(32 * 32), dims: [1, 1, 32, 32] };
      await assert.rejects(r.run({ image: nchw }), isModelError(/input "image" expects shape \[\?, 32, 32, 1\]/));
      await assert.rejects(r.run({ pixels: nchw }), isModelError(/no input named "pixels"/));
      await assert.rejects(r.run({}), isModelError(/no feed for input "image"/));
    });
  });
});
