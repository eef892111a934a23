/**
 * A classifier and a VAE of different input sizes and channels (issue 14, item 1): a CIFAR-style classifier on
 * 32×32 RGB (NHWC, ImageNet mean/std) beside the ONNX-zoo VAE on 28×28 grey (NCHW, [0, 1]). Each model gets the
 * image decoded once and resized to its own size; what the model files declare is read from them; a manifest
 * value that contradicts a model file is refused with the field and the fix; every pipeline gives the same
 * answers; the reconstruction is at the VAE's size.
 */
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import sharp from 'sharp';
import { OodEngine, type ImageResult } from '../../../src/inference/engine';
import { pairImageSpecs, preparePairBatch } from '../../../src/inference/image/fastpath';
import { idxImages, readIdxFile } from '../../../src/inference/io/idx';
import { disposePair, loadPair, PairCheckError } from '../../../src/inference/pair/pair';
import { toModelImage } from '../../../src/inference/image/preprocess';
import { FIXTURES, MNIST_TEST_IMAGES, tempDir } from '../../helpers';
import { thirdPartyModels } from '../../thirdParty';
import { IMAGENET_MEAN, IMAGENET_STD } from '../../../training/third-party-models';

const LABELS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

describe('per-model input size and channels', () => {
  let dir: string;
  /** The manifest as a user would write it, `edit`ed; written into the pair folder. */
  let write: (edit?: (m: any) => void) => string;
  before(async () => {
    const models = await thirdPartyModels();
    dir = tempDir('per-model-');
    copyFileSync(models.cifar.classifier, join(dir, 'classifier.onnx'));
    copyFileSync(models.zoo.vae, join(dir, 'vae.onnx'));
    write = (edit = () => {}) => {
      const m = {
        name: 'cifar-and-zoo-vae',
        input: { width: 32, height: 32, channels: 3, layout: 'NHWC', background: '#000000' },
        classifier: { path: 'classifier.onnx', format: 'onnx', mean: IMAGENET_MEAN, std: IMAGENET_STD, outputKind: 'logits', labels: LABELS },
        vae: {
          path: 'vae.onnx', format: 'onnx', width: 28, height: 28, channels: 1, layout: 'NCHW', range: [0, 1],
          outputs: { reconstruction: 'recon_logits', mu: 'z_mean', logvar: 'z_log_var' }, reconstructionKind: 'logits', likelihood: { type: 'bernoulli' },
        },
      };
      edit(m);
      writeFileSync(join(dir, 'ood-pair.json'), JSON.stringify(m));
      return dir;
    };
  });

  async function refusal(edit: (m: any) => void): Promise<Error> {
    try {
      const pair = await loadPair(write(edit), { provider: 'cpu' });
      await disposePair(pair);
    } catch (err) {
      return err as Error;
    }
    return assert.fail('the pair loaded, but it should have been refused');
  }

  test('each model gets its own resolved input; the VAE does not inherit the classifier\'s RGB mean/std', async () => {
    const pair = await loadPair(write(), { provider: 'cpu' });
    try {
      const { classifier, vae } = pair.inputs;
      assert.deepEqual([classifier.width, classifier.height, classifier.channels, classifier.layout, classifier.mean], [32, 32, 3, 'NHWC', IMAGENET_MEAN]);
      assert.deepEqual([vae!.width, vae!.height, vae!.channels, vae!.layout, vae!.mean, vae!.std, vae!.range], [28, 28, 1, 'NCHW', undefined, undefined, [0, 1]]);
      assert.ok(pairImageSpecs(pair.inputs).vae, 'the VAE gets an image of its own');
    } finally {
      await disposePair(pair);
    }
  });

  test('sizes and channels left out of the manifest are read from the model files', async () => {
    const pair = await loadPair(write((m) => {
      delete m.input.width;
      delete m.input.height;
      delete m.input.channels;
      delete m.vae.width;
      delete m.vae.height;
      delete m.vae.channels;
    }), { provider: 'cpu' });
    try {
      assert.deepEqual([pair.inputs.classifier.width, pair.inputs.classifier.height, pair.inputs.classifier.channels], [32, 32, 3]);
      assert.deepEqual([pair.inputs.vae!.width, pair.inputs.vae!.height, pair.inputs.vae!.channels], [28, 28, 1]);
    } finally {
      await disposePair(pair);
    }
  });

  test('a manifest value that contradicts a model file is refused, naming the field and the fix', async () => {
    const size = await refusal((m) => ((m.vae.width = 32), (m.vae.height = 32)));
    assert.ok(size instanceof PairCheckError);
    assert.equal(size.field, 'vae.width/vae.height');
    assert.match(size.message, /vae\.onnx declares input "x" as \[\?, 1, 28, 28\] \(28×28 in NCHW\) but the manifest's vae is 32×32; set vae\.width to 28 and vae\.height to 28, or remove them \(the size is read from the model\)/);
    // The VAE inheriting the shared 32×32 RGB: the fix names both ways.
    const inherited = await refusal((m) => {
      delete m.vae.width;
      delete m.vae.height;
    });
    assert.match(inherited.message, /input\.width\/input\.height: .*vae\.onnx declares .*\(28×28 in NCHW\) but the manifest's input is 32×32; set input\.width to 28 and input\.height to 28, or vae\.width\/vae\.height to give the VAE its own size/);
    const channels = await refusal((m) => (m.vae.channels = 3));
    assert.match(channels.message, /vae\.channels: .*vae\.onnx declares input "x" as \[\?, 1, 28, 28\] \(1 channel in NCHW\) but vae\.channels is 3; set vae\.channels to 1, or remove it/);
    // Channels the classifier's own mean/std contradict: refused before the model is even opened.
    const grey = await refusal((m) => (m.classifier.channels = 1));
    assert.match(grey.message, /classifier\.mean: needs 1 value\(s\), one per channel \(classifier\.channels is 1\)/);
    // Shared ImageNet means (three) inherited by the grey VAE would be silently wrong: refused by the manifest check.
    const mean = await refusal((m) => ((m.input.mean = IMAGENET_MEAN), (m.input.std = IMAGENET_STD)));
    assert.match(mean.message, /vae\.mean: the vae takes 1 channel\(s\) but inherits input\.mean with 3 value\(s\); give vae\.mean with 1/);
  });

  test('one decode per image: each model\'s pixels equal decoding the file for that model alone', async () => {
    const pair = await loadPair(write(), { provider: 'cpu' });
    try {
      const specs = pairImageSpecs(pair.inputs);
      const idx = idxImages(readIdxFile(MNIST_TEST_IMAGES), MNIST_TEST_IMAGES);
      const digitPng = await sharp(Buffer.from(idx.image(3)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
      const hen = readFileSync(join(FIXTURES, 'hen.png'));
      const sources = [
        { width: 28, height: 28, channels: 1 as const, data: idx.image(0) }, // IDX pixels
        new Uint8Array(digitPng), // a small PNG (in-process decode, atlas resize)
        new Uint8Array(readFileSync(join(FIXTURES, 'cat.png'))), // a photo decoded in-process, resized per model
        new Uint8Array(hen), // 794×1123 RGBA: decoded once by sharp (alpha flattened), then both resizes
        new Uint8Array(await sharp(hen).flatten({ background: '#000000' }).jpeg({ quality: 90 }).toBuffer()), // the same as a JPEG
        new Error('unreadable'),
      ];
      const prepared = await preparePairBatch(sources, specs, 1e8);
      assert.match((prepared[5] as Error).message, /unreadable/);
      for (let i = 0; i < 5; i++) {
        const img = prepared[i];
        assert.ok(!(img instanceof Error), String(img));
        assert.deepEqual([img.width, img.height, img.channels, img.forVae?.width, img.forVae?.height, img.forVae?.channels], [32, 32, 3, 28, 28, 1]);
        const alone = async (spec: typeof specs.classifier) => (await toModelImage(sources[i] as never, spec)).pixels;
        const differences = async () => {
          const out: number[] = [];
          for (const [mine, theirs] of [[img.pixels, await alone(specs.classifier)], [img.forVae!.pixels, await alone(specs.vae!)]]) {
            let worst = 0;
            mine.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - theirs[k]))));
            out.push(worst);
          }
          return out;
        };
        const worst = await differences();
        console.log(`source ${i}: largest pixel difference from the per-model decode ${worst.join(', ')}`);
        // Lossless sources: the same pixels as decoding the file for each model, bit for bit. A JPEG decoded once
        // at full size (instead of shrunk on load by libjpeg per model) differs a little.
        assert.ok(i < 4 ? worst.every((w) => w === 0) : worst.every((w) => w <= 24), `source ${i}: ${worst.join(', ')}`);
      }
      // An IDX digit is already at the VAE's size: copied, not resampled.
      assert.deepEqual((prepared[0] as { forVae: { pixels: Uint8Array } }).forVae.pixels, Uint8Array.from(idx.image(0)));
    } finally {
      await disposePair(pair);
    }
  });

  test('every pipeline scores the same; the reconstruction and its details are at the VAE\'s size', async () => {
    write();
    const idx = idxImages(readIdxFile(MNIST_TEST_IMAGES), MNIST_TEST_IMAGES);
    const inputs = [
      ...Array.from({ length: 40 }, (_, i) => ({ path: `mnist#${i}`, source: { width: 28, height: 28, channels: 1 as const, data: idx.image(i) } })),
      { path: join(FIXTURES, 'cat.png') },
      { path: join(dir, 'missing.png') },
    ];
    const runs: Record<string, ImageResult[]> = {};
    for (const [name, options] of [
      ['in-process', { preprocessWorkers: 0, pipeline: 'overlapped' as const }],
      ['overlapped', { preprocessWorkers: 2, pipeline: 'overlapped' as const, batchSize: 8 }],
      ['sharded', { pipeline: 'sharded' as const, shards: 2, batchSize: 8 }],
    ] as const) {
      const engine = await OodEngine.create({ pair: dir, provider: 'cpu', ...options });
      try {
        if (name === 'sharded') assert.ok(await engine.startScoringShards(), engine.shardFailure ?? 'shards did not start');
        const results: ImageResult[] = [];
        await engine.scoreAll(inputs, (r) => void results.push(r));
        runs[name] = results;
        if (name === 'in-process') {
          assert.deepEqual(engine.info.input, { width: 32, height: 32, channels: 3 });
          assert.deepEqual(engine.info.vaeInput, { width: 28, height: 28, channels: 1 });
          const one = await engine.scoreOne(inputs[0]);
          const d = one.details!;
          assert.deepEqual([d.modelInput.width, d.modelInput.height, d.modelInput.channels, d.modelInput.pixels.length], [32, 32, 3, 32 * 32 * 3]);
          assert.deepEqual([d.vaeInput?.width, d.vaeInput?.height, d.vaeInput?.channels], [28, 28, 1]);
          assert.equal(d.reconstruction!.length, 28 * 28);
          // The VAE's bits per dimension are over its own 784 pixels.
          assert.ok(Math.abs(one.elboBitsPerDim! - -one.elbo! / (784 * Math.LN2)) < 1e-9);
        }
      } finally {
        await engine.dispose();
      }
    }
    const key = (r: ImageResult) => [r.path, r.prediction, r.elbo === null ? null : r.elbo.toFixed(3), r.complexityBits, r.error === null ? null : r.error.replace(/:.*/, '')];
    assert.deepEqual(runs.overlapped.map(key), runs['in-process'].map(key));
    assert.deepEqual(runs.sharded.map(key), runs['in-process'].map(key));
    const ok = runs['in-process'].filter((r) => r.verdict !== 'error');
    assert.equal(ok.length, 41);
    // The classifier reads the digits at 32×32 RGB; the VAE's ELBO is the zoo VAE's on the 28×28 digit.
    const labels = readIdxFile(MNIST_TEST_IMAGES.replace('images-idx3', 'labels-idx1')).data;
    assert.ok(ok.slice(0, 40).filter((r, i) => r.prediction === labels[i]).length >= 38);
  });
});
