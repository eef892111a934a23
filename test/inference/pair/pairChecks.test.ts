/**
 * Loading checks the whole pair before any image, against what the model files declare and what they output
 * on probe images; every mistake users made with their own models (issue 14, "Why") gets a message naming
 * the field and the fix.
 */
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { before, describe, test } from 'node:test';
import { loadPair, disposePair, PairCheckError } from '../../../src/inference/pair/pair';
import { loadTfjs, distinctOutputNames } from '../../../src/inference/backends/tfjs';
import { StaticBatchRunner } from '../../../src/inference/backends/staticBatch';
import type { FloatTensor, ModelRunner } from '../../../src/inference/backends/types';
import { ManifestError } from '../../../src/inference/pair/manifest';
import { MNIST_PAIR, tempDir } from '../../helpers';
import { thirdPartyModels } from '../../thirdParty';

type Models = Awaited<ReturnType<typeof thirdPartyModels>>;
const LABELS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** A pair folder holding copies of `files` (model paths) and the manifest. */
function pairDir(manifest: object, files: string[]): string {
  const dir = tempDir('pair-check-');
  for (const f of files) {
    if (basename(f) === 'model.json') cpSync(dirname(f), join(dir, basename(dirname(f))), { recursive: true });
    else copyFileSync(f, join(dir, basename(f)));
  }
  writeFileSync(join(dir, 'ood-pair.json'), JSON.stringify(manifest));
  return dir;
}

async function loadError(dir: string): Promise<Error> {
  try {
    const pair = await loadPair(dir, { provider: 'cpu' });
    await disposePair(pair);
  } catch (err) {
    return err as Error;
  }
  assert.fail(`${dir} loaded, but it should have been refused`);
}

describe('the pair is checked when it loads, with the field and the fix', () => {
  let m: Models;
  const zooManifest = (edit: (x: any) => void = () => {}) => {
    const x = {
      name: 'zoo',
      input: { width: 28, height: 28, channels: 1, layout: 'NCHW' },
      classifier: { path: 'mnist-zoo.onnx', format: 'onnx', range: [0, 255], outputKind: 'logits', labels: LABELS },
      vae: { path: 'vae-bernoulli.onnx', format: 'onnx', outputs: { reconstruction: 'recon_logits', mu: 'z_mean', logvar: 'z_log_var' }, reconstructionKind: 'logits', likelihood: { type: 'bernoulli' } },
    };
    edit(x);
    return x;
  };
  before(async () => {
    m = await thirdPartyModels();
  });

  test('a correct third-party pair loads: static batch read from the model, names filled in', async () => {
    const pair = await loadPair(pairDir(zooManifest(), [m.zoo.classifier, m.zoo.vae]), { provider: 'cpu' });
    try {
      assert.deepEqual(pair.staticBatch, { classifier: 1, vae: undefined });
      assert.equal(pair.names.classifierInput, 'Input3');
      assert.equal(pair.names.classifierOutput, 'Plus214_Output_0');
      assert.deepEqual(pair.scaling.classifier.range, [0, 255]);
      assert.deepEqual(pair.scaling.vae.range, [0, 1]);
    } finally {
      await disposePair(pair);
    }
  });

  test('issue 22 adapters in a manifest: flat layout, uint8 input, constants; a uint8 input scaled otherwise is refused by field', async () => {
    const flat = (edit: (x: any) => void = () => {}) => {
      const x = { name: 'mlp', input: { width: 28, height: 28, channels: 1, layout: 'flat' }, classifier: { path: 'mlp-uint8-temperature.onnx', format: 'onnx', range: [0, 255], outputKind: 'logits', labels: LABELS, constants: { temperature: 1 } } };
      edit(x);
      return x;
    };
    const pair = await loadPair(pairDir(flat(), [m.flatUint8.classifier]), { provider: 'cpu' });
    try {
      assert.equal(pair.names.classifierInput, 'pixels');
      assert.deepEqual(pair.classifier.inputs.map((t) => t.name), ['pixels']);
    } finally {
      await disposePair(pair);
    }
    const scaled = await loadError(pairDir(flat((x) => (x.classifier.range = [0, 1])), [m.flatUint8.classifier]));
    assert.ok(scaled instanceof PairCheckError);
    assert.equal(scaled.field, 'classifier.range');
    assert.match(scaled.message, /of type uint8: it takes the 8-bit pixels, so its range must be \[0, 255\]/);
    const noFlat = await loadError(pairDir(flat((x) => (x.input.layout = 'NCHW')), [m.flatUint8.classifier]));
    assert.ok(noFlat instanceof PairCheckError);
    assert.equal(noFlat.field, 'classifier.layout');
    assert.match(noFlat.message, /a flat vector per image; set classifier\.layout to "flat"/);
    const noConstant = await loadError(pairDir(flat((x) => (x.classifier.constants = { tau: 1 })), [m.flatUint8.classifier]));
    assert.match(noConstant.message, /has no input named "tau" to fix to a constant/);
  });

  test('a classifier whose output depends on its batch (BatchNorm in training mode) is refused at load, naming the cause', async () => {
    const manifest = { name: 'bn', input: { width: 28, height: 28, channels: 1, layout: 'NCHW' }, classifier: { path: 'classifier-train-mode-bn.onnx', format: 'onnx', outputKind: 'logits', labels: LABELS } };
    const err = await loadError(pairDir(manifest, [m.batchDependent.classifier]));
    assert.ok(err instanceof PairCheckError);
    assert.equal(err.field, 'classifier');
    assert.match(err.message, /answers a probe image differently alone than inside a batch of 2 .*BatchNorm or Dropout layer left in training mode/);
  });

  test('outputKind "probabilities" on a logits model', async () => {
    const err = await loadError(pairDir(zooManifest((x) => (x.classifier.outputKind = 'probabilities')), [m.zoo.classifier, m.zoo.vae]));
    assert.ok(err instanceof PairCheckError);
    assert.equal(err.field, 'classifier.outputKind');
    assert.match(err.message, /classifier\.outputKind: is "probabilities" but "Plus214_Output_0" does not hold probabilities \(on probe images its values run from -?[\d.]+ to [\d.]+ and rows sum to .*\); set "logits"/);
  });

  test('outputKind "logits" on a model that ends in softmax', async () => {
    const manifest = { name: 's', input: { width: 28, height: 28, channels: 1, layout: 'NHWC' }, classifier: { path: 'tfjs-sequential/model.json', format: 'tfjs-layers', outputKind: 'logits', labels: LABELS } };
    const err = await loadError(pairDir(manifest, [m.tfjsSequential.classifier]));
    assert.match(err.message, /classifier\.outputKind: is "logits" but "probabilities" already holds probabilities .*; set "probabilities"/);
  });

  test('label count against the outputs, before any image', async () => {
    const err = await loadError(pairDir(zooManifest((x) => (x.classifier.labels = LABELS.slice(0, 9))), [m.zoo.classifier, m.zoo.vae]));
    assert.match(err.message, /classifier\.labels: lists 9 labels but "Plus214_Output_0" of .*mnist-zoo\.onnx gives 10 values per image; list 10 labels, in output order/);
  });

  test('size, channels and layout against what the model declares', async () => {
    const size = await loadError(pairDir(zooManifest((x) => ((x.input.width = 32), (x.input.height = 32))), [m.zoo.classifier, m.zoo.vae]));
    assert.match(size.message, /input\.width\/input\.height: .*declares input "Input3" as \[1, 1, 28, 28\] \(28×28 in NCHW\) but the manifest's input is 32×32; set input\.width to 28 and input\.height to 28/);
    const channels = await loadError(pairDir(zooManifest((x) => (x.input.channels = 3)), [m.zoo.classifier, m.zoo.vae]));
    assert.match(channels.message, /input\.channels: .*\(1 channel in NCHW\) but input\.channels is 3; set input\.channels to 1/);
    const manifest = { name: 't', input: { width: 28, height: 28, channels: 1, layout: 'NCHW' }, classifier: { path: 'classifier-nhwc.onnx', format: 'onnx', mean: [0.1307], std: [0.3081], outputKind: 'logits', labels: LABELS } };
    const layout = await loadError(pairDir(manifest, [m.torchvision.classifier]));
    assert.match(layout.message, /classifier\.layout: .*declares input "input\.1" as \[\?, 28, 28, 1\], which is NHWC, but the manifest feeds it NCHW; set classifier\.layout to "NHWC"/);
  });

  test('a split VAE whose encoder/decoder layout differs from the VAE\'s is refused, not ignored', () => {
    const manifest = { name: 't', input: { width: 28, height: 28, channels: 1, layout: 'NHWC' }, classifier: { path: 'c.onnx', format: 'onnx', outputKind: 'logits', labels: LABELS }, vae: { reconstructionKind: 'mean', likelihood: { type: 'gaussian', sigma: 0.1 }, encoder: { path: 'e.onnx', format: 'onnx', layout: 'NCHW', outputs: { mu: 'mean', logvar: 'log_var' } }, decoder: { path: 'd.onnx', format: 'onnx', output: 'x_hat' } } };
    const dir = pairDir(manifest, []);
    assert.throws(() => require('../../../src/inference/pair/manifest').loadPairManifest(dir), (err: ManifestError) => err.problems.some((p) => /^vae\.encoder\.layout: is NCHW but the VAE's layout is NHWC; .*set vae\.layout to "NCHW"/.test(p)));
  });

  test('TF.js sub-model outputs "decoder, encoder, encoder": distinct names, the repeated name refused as ambiguous', async () => {
    assert.deepEqual(distinctOutputNames(['decoder', 'encoder', 'encoder'], [undefined, 'mu', 'logvar']), ['decoder', 'encoder/mu', 'encoder/logvar']);
    assert.deepEqual(distinctOutputNames(['a', 'b', 'b'], [undefined, undefined, undefined]), ['a', 'b:1', 'b:2']);
    const runner = await loadTfjs(m.tfjsSubmodels.vae, 'tfjs-layers', { provider: 'cpu' });
    assert.deepEqual(runner.outputs.map((o) => o.name), ['decoder', 'encoder/mu', 'encoder/logvar']);
    await runner.dispose();
    const manifest = (outputs: object) => ({ name: 'v', input: { width: 28, height: 28, channels: 1, layout: 'NHWC' }, classifier: { path: 'tfjs-sequential/model.json', format: 'tfjs-layers', outputKind: 'probabilities', labels: LABELS }, vae: { path: 'tfjs-submodels/model.json', format: 'tfjs-layers', outputs, reconstructionKind: 'logits', likelihood: { type: 'bernoulli' } } });
    const same = pairDir(manifest({ reconstruction: 'decoder', mu: 'encoder', logvar: 'encoder' }), [m.tfjsSequential.classifier, m.tfjsSubmodels.vae]);
    const sameErr = await loadError(same);
    assert.match(sameErr.message, /vae\.outputs\.logvar: "encoder" is also vae\.outputs\.mu; each output needs its own tensor \(for TF\.js sub-model outputs use the names OOD Lens lists, e.g\. "encoder\/mu"\)/);
    const old = await loadError(pairDir(manifest({ reconstruction: 'decoder', mu: 'encoder', logvar: 'encoder/logvar' }), [m.tfjsSequential.classifier, m.tfjsSubmodels.vae]));
    assert.match(old.message, /vae\.outputs\.mu: .*has no output named "encoder"; it has "decoder" \[\?, 28, 28, 1\], "encoder\/mu" \[\?, 16\], "encoder\/logvar" \[\?, 16\]/);
    const pair = await loadPair(pairDir(manifest({ reconstruction: 'decoder', mu: 'encoder/mu', logvar: 'encoder/logvar' }), [m.tfjsSequential.classifier, m.tfjsSubmodels.vae]), { provider: 'cpu' });
    await disposePair(pair);
  });

  test('TF.js Sequential models load with their input, whichever way Keras wrote the input shape', async () => {
    const source = JSON.parse(readFileSync(m.tfjsSequential.classifier, 'utf8'));
    const variant = (edit: (topology: any) => void) => {
      const dir = tempDir('seq-');
      const json = structuredClone(source);
      edit(json.modelTopology);
      writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
      copyFileSync(join(dirname(m.tfjsSequential.classifier), 'weights.bin'), join(dir, 'weights.bin'));
      return join(dir, 'model.json');
    };
    const plain = await loadTfjs(m.tfjsSequential.classifier, 'tfjs-layers', { provider: 'cpu' });
    assert.deepEqual(plain.inputs.map((i) => [i.name, i.shape]), [['pad_input', [null, 28, 28, 1]]]);
    assert.deepEqual(plain.outputs.map((o) => o.name), ['probabilities']);
    await plain.dispose();
    // Keras 2: the shape on the model (build_input_shape), none on the first layer.
    const keras2 = variant((t) => {
      t.config.build_input_shape = t.config.layers[0].config.batch_input_shape;
      delete t.config.layers[0].config.batch_input_shape;
    });
    const k2 = await loadTfjs(keras2, 'tfjs-layers', { provider: 'cpu' });
    assert.deepEqual(k2.inputs[0].shape, [null, 28, 28, 1]);
    await k2.dispose();
    // No shape anywhere: refused with how to save it.
    const none = variant((t) => delete t.config.layers[0].config.batch_input_shape);
    await assert.rejects(loadTfjs(none, 'tfjs-layers', { provider: 'cpu' }), /declares no input shape .*save it with an input shape/);
  });

  test('a static batch runs any batch: chunks of its size, the last padded, outputs joined in order', async () => {
    const calls: number[][] = [];
    // A model with batch 4 that returns each row's first value and the row index within the call.
    const fixed: ModelRunner = {
      source: 'fixed.onnx',
      backend: 'test',
      provider: 'cpu',
      inputs: [{ name: 'x', shape: [4, 3], dtype: 'float32' }],
      outputs: [{ name: 'y', shape: [4, 1], dtype: 'float32' }],
      async run(feeds: Record<string, FloatTensor>) {
        const x = feeds.x;
        assert.deepEqual(x.dims, [4, 3]);
        calls.push(Array.from(x.data.filter((_, i) => i % 3 === 0)));
        return { y: { data: Float32Array.from({ length: 4 }, (_, i) => x.data[i * 3] * 10), dims: [4, 1] } };
      },
      async dispose() {},
    };
    const runner = new StaticBatchRunner(fixed, 4);
    assert.deepEqual(runner.inputs[0].shape, [null, 3]);
    const data = Float32Array.from({ length: 9 * 3 }, (_, i) => Math.floor(i / 3) + 1);
    const out = await runner.run({ x: { data, dims: [9, 3] } });
    assert.deepEqual(out.y.dims, [9, 1]);
    assert.deepEqual(Array.from(out.y.data), [10, 20, 30, 40, 50, 60, 70, 80, 90]);
    assert.deepEqual(calls, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 0, 0, 0]]);
  });

  test('a missing calibration file is named with the command that creates it', async () => {
    const dir = pairDir(zooManifest((x) => (x.calibration = 'calibration.json')), [m.zoo.classifier, m.zoo.vae]);
    const err = await loadError(dir);
    assert.match(err.message, /calibration: file not found: .*calibration\.json \(create it with `ood-lens calibrate --pair .* <held-out in-distribution images>`, or remove the field to run uncalibrated\)/);
    // calibrate and fit may load it before the file exists.
    const pair = await loadPair(dir, { provider: 'cpu', calibrationMayBeMissing: true });
    assert.equal(pair.calibration, undefined);
    await disposePair(pair);
  });

  test('a split VAE beside a single-file one is opened only when scoring runs it (posterior samples)', async () => {
    // The built-in pair has vae.onnx and vae-encoder/decoder.onnx, as every pair fit trains a VAE for.
    const dir = tempDir('pair-split-');
    cpSync(MNIST_PAIR, dir, { recursive: true });
    const atMean = await loadPair(dir, { provider: 'cpu' });
    assert.ok(atMean.vae, 'the single-file VAE');
    assert.equal(atMean.encoder, undefined, 'no encoder session at the posterior mean');
    assert.equal(atMean.decoder, undefined, 'no decoder session at the posterior mean');
    const meanInput = atMean.inputs.vae;
    await disposePair(atMean);
    const manifestPath = join(dir, 'ood-pair.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    manifest.vae.samples = 4;
    writeFileSync(manifestPath, JSON.stringify(manifest));
    const sampled = await loadPair(dir, { provider: 'cpu', calibrationMayBeMissing: true });
    assert.ok(sampled.encoder && sampled.decoder, 'posterior samples run the encoder and the decoder');
    assert.deepEqual(sampled.inputs.vae, meanInput, "the VAE's input is the same either way");
    await disposePair(sampled);
  });
});
