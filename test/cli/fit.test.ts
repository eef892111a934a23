/**
 * `ood-lens fit` → `ood-lens score` with models shaped the way other projects ship them: each pair must score
 * at the accuracy its classifier has when fed correctly, and its VAE must see what it was trained on.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { loadModel } from '../../src/inference/pair/pair';
import { idxImages, readIdxFile } from '../../src/inference/io/idx';
import { halfPixelBilinear } from '../halfPixelBilinear';
import { FASHION_TEST_IMAGES, tempDir } from '../helpers';
import { cli, thirdPartyModels, writeMnistIdx } from '../thirdParty';
import sharp from 'sharp';
import { accuracyFedByHand, IMAGENET_MEAN, IMAGENET_STD, topOneAccuracy } from '../../training/third-party-models';

type Models = Awaited<ReturnType<typeof thirdPartyModels>>;
const FIT_IMAGES = 1000; // MNIST test 0–999: fit's data
const SCORE_FROM = 9000; // MNIST test 9000–9399: scored afterwards, never seen by fit
const SCORE_IMAGES = 400;

/**
 * Accuracy of the CIFAR-style classifier fed correctly, by hand: each 28×28 digit resized to 32×32 RGB by sharp
 * on its own with the given kernel (fit's default: bilinear), normalised with ImageNet's mean/std, NHWC.
 */
/** Grey pixels as RGB (each value three times), as sharp's sRGB conversion of a grey image gives them. */
function greyAsRgb(grey: Uint8Array): Uint8Array {
  const rgb = new Uint8Array(grey.length * 3);
  for (let q = 0; q < grey.length; q++) rgb[3 * q] = rgb[3 * q + 1] = rgb[3 * q + 2] = grey[q];
  return rgb;
}

async function cifarAccuracyFedCorrectly(path: string, images: string, labels: Uint8Array, kernel: 'half-pixel bilinear' | 'linear' | 'lanczos3' = 'half-pixel bilinear'): Promise<number> {
  const runner = await loadModel(path, 'onnx', { provider: 'cpu' });
  try {
    const idx = idxImages(readIdxFile(images), images);
    const data = new Float32Array(idx.count * 32 * 32 * 3);
    for (let i = 0; i < idx.count; i++) {
      // fit's default enlarges in onnxruntime: torchvision's half-pixel bilinear, written out by hand here.
      const grey = { width: 28, height: 28, channels: 1 as const, data: idx.image(i) };
      const px = kernel === 'half-pixel bilinear' ? greyAsRgb(halfPixelBilinear(grey, 32, 32).rounded) : await sharp(Buffer.from(idx.image(i)), { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('srgb').resize({ width: 32, height: 32, fit: 'fill', kernel }).raw().toBuffer();
      for (let q = 0; q < 32 * 32; q++) for (let c = 0; c < 3; c++) data[i * 3072 + q * 3 + c] = (px[q * 3 + c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
    }
    const out = (await runner.run({ pixel_values: { data, dims: [idx.count, 32, 32, 3] } })).logits.data;
    return topOneAccuracy(out, labels, idx.count);
  } finally {
    await runner.dispose();
  }
}

interface Scored {
  accuracy: number;
  results: { prediction: number; label: string; elbo: number | null; kl: number | null; verdict: string }[];
}

function scoreWithCli(pairDir: string, images: string, labels: Uint8Array): Scored {
  const r = cli('score', images, '--pair', pairDir, '--format', 'json');
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.results.length, labels.length);
  const correct = doc.results.filter((x: { prediction: number }, i: number) => x.prediction === labels[i]).length;
  return { accuracy: correct / labels.length, results: doc.results };
}

describe('bring your own model: fit → score', () => {
  let models: Models;
  let work: string;
  let fitData: string;
  let scoreData: { images: string; labels: Uint8Array };
  before(async () => {
    models = await thirdPartyModels();
    work = tempDir('fit-');
    fitData = writeMnistIdx(join(work, 'data'), 'fit', 0, FIT_IMAGES).images;
    scoreData = writeMnistIdx(join(work, 'data'), 'later', SCORE_FROM, SCORE_IMAGES);
  });

  test('ONNX-zoo style (static batch 1, raw 0–255, odd names) + Bernoulli VAE on [0, 1]', async () => {
    const out = join(work, 'zoo');
    const r = cli('fit', '--classifier', models.zoo.classifier, '--vae', models.zoo.vae, '--range', '0,255', '--data', fitData, '--out', out);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    // What it read and decided, on stdout; progress on stderr.
    assert.match(r.stdout, /takes "Input3" \[1, 1, 28, 28\]: 28×28, grey, NCHW, static batch 1/);
    assert.match(r.stdout, /output "Plus214_Output_0": 10 classes .*logits/);
    assert.match(r.stdout, /reconstruction "recon_logits" \(logits\), mu "z_mean", logvar "z_log_var"/);
    assert.match(r.stdout, /fit 450, calibration 450, held-out check 100/);
    assert.match(r.stdout, /detectors \(share of α\): elbo 0\.2, complexity 0\.2, confidence 0\.1, knn 0\.5, mahalanobis 0/);
    assert.match(r.stdout, /fitted KNN and Mahalanobis on 450 images \(128 features from .*Mahalanobis class means from the data's labels\)/);
    assert.match(r.stdout, /held-out false alarms at α = 0\.01: \d+ of 100 check images/);
    assert.match(r.stderr, /fit: fitting detectors 450 of 450 images/);
    assert.match(r.stderr, /fit: scoring 550 of 550 images/);
    const manifest = JSON.parse(readFileSync(join(out, 'ood-pair.json'), 'utf8'));
    assert.deepEqual(manifest.classifier.range, [0, 255]);
    assert.deepEqual(manifest.vae.range, [0, 1]);
    assert.deepEqual(manifest.fit.parts, { fit: 450, calibration: 450, check: 100 });
    assert.equal(manifest.features.fit, 'features.json');
    assert.ok(existsSync(join(out, 'features-knn.f16')));
    const split = JSON.parse(readFileSync(join(out, 'split.json'), 'utf8'));
    assert.equal(split.parts.calibration.length, 450);
    assert.equal(new Set([...split.parts.fit, ...split.parts.calibration, ...split.parts.check]).size, 1000);
    assert.ok(existsSync(join(out, 'classifier.onnx')) && existsSync(join(out, 'vae.onnx')) && existsSync(join(out, 'calibration.json')));

    const reference = await accuracyFedByHand(models.zoo.classifier, 'onnx', 'NCHW', (v) => v, scoreData.images, scoreData.labels);
    const scored = scoreWithCli(out, scoreData.images, scoreData.labels);
    assert.ok(reference > 0.97, `reference accuracy ${reference}`);
    assert.equal(scored.accuracy, reference);
    // In-distribution digits are mostly in-distribution (α = 0.01 per image).
    assert.ok(scored.results.filter((x) => x.verdict === 'out-of-distribution').length <= 0.05 * SCORE_IMAGES);
  });

  test('torchvision style: NHWC with mean/std + a split Gaussian VAE on [0, 1] that gets no mean/std', async () => {
    const out = join(work, 'torchvision');
    const t = models.torchvision;
    const r = cli('fit', '--classifier', t.classifier, '--mean', '0.1307', '--std', '0.3081', '--encoder', t.encoder, '--decoder', t.decoder, '--likelihood', 'gaussian', '--sigma', '0.1', '--data', fitData, '--out', out);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /takes "input\.1" \[\?, 28, 28, 1\]: 28×28, grey, NHWC, any batch/);
    assert.match(r.stdout, /then \(x − 0\.1307\) \/ 0\.3081/);
    assert.match(r.stdout, /mu "mean", logvar "log_var" \(16-d\)/);
    assert.match(r.stdout, /VAE input scaling: pixels 0\.\.255 → \[0, 1\]; gaussian likelihood/);
    const manifest = JSON.parse(readFileSync(join(out, 'ood-pair.json'), 'utf8'));
    assert.deepEqual([manifest.classifier.mean, manifest.classifier.std, manifest.vae.mean, manifest.vae.std], [[0.1307], [0.3081], undefined, undefined]);
    assert.equal(manifest.vae.layout, 'NHWC');
    const reference = await accuracyFedByHand(t.classifier, 'onnx', 'NHWC', (v) => (v / 255 - 0.1307) / 0.3081, scoreData.images, scoreData.labels);
    const scored = scoreWithCli(out, scoreData.images, scoreData.labels);
    assert.equal(scored.accuracy, reference);
    assert.ok(scored.accuracy > 0.97);
    assert.ok(scored.results.filter((x) => x.verdict === 'out-of-distribution').length <= 0.05 * SCORE_IMAGES);
  });

  test('TF.js Sequential classifier (softmax output: probabilities read from the model) + TF.js VAE with outputs "decoder, encoder, encoder"', async () => {
    const out = join(work, 'tfjs');
    const r = cli('fit', '--classifier', models.tfjsSequential.classifier, '--vae', models.tfjsSubmodels.vae, '--data', fitData, '--out', out);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /takes "pad_input" \[\?, 28, 28, 1\]/);
    assert.match(r.stdout, /output "probabilities": 10 classes .*probabilities \(every row in \[0, 1\] and summing to 1/);
    assert.match(r.stdout, /reconstruction "decoder" \(logits\), mu "encoder\/mu", logvar "encoder\/logvar"/);
    // No --features: the input of the last Dense layer ("logits" reads "fc1"), as ONNX models use their last Gemm's.
    assert.match(r.stdout, /KNN and Mahalanobis on the classifier's features \(layer "fc1", the input of its last Dense layer\)/);
    const reference = await accuracyFedByHand(models.tfjsSequential.classifier, 'tfjs-layers', 'NHWC', (v) => v / 255, scoreData.images, scoreData.labels);
    const scored = scoreWithCli(out, scoreData.images, scoreData.labels);
    assert.equal(scored.accuracy, reference);
    assert.ok(scored.accuracy > 0.97);
    // The sub-model VAE is the ONNX-zoo VAE's weights: the same KL per image proves mu and logvar were not swapped
    // or taken twice (logvar read as mu gave a wrong KL before).
    const zoo = scoreWithCli(join(work, 'zoo'), scoreData.images, scoreData.labels);
    for (let i = 0; i < 20; i++) assert.ok(Math.abs(scored.results[i].kl! - zoo.results[i].kl!) < 0.05, `image ${i}: KL ${scored.results[i].kl} vs ${zoo.results[i].kl}`);
  });

  test('TF.js classifier with --features LAYER: KNN and Mahalanobis fitted on that layer, scored at its own accuracy', async () => {
    const out = join(work, 'tfjs-features');
    const classifier = models.tfjsSequential.classifier;
    const r = cli('fit', '--classifier', classifier, '--features', 'fc1', '--no-vae', '--data', fitData, '--out', out);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /no VAE: a classifier-only pair \(--no-vae\)/);
    assert.match(r.stdout, /detectors \(share of α\): confidence 0\.5, knn 0\.5, mahalanobis 0 — KNN and Mahalanobis on the classifier's features \(layer "fc1"\)/);
    assert.match(r.stdout, /fitted KNN and Mahalanobis on 450 images \(128 features from "fc1"; Mahalanobis class means from the data's labels\)/);
    const manifest = JSON.parse(readFileSync(join(out, 'ood-pair.json'), 'utf8'));
    assert.deepEqual(manifest.features, { layer: 'fc1', fit: 'features.json' });
    assert.deepEqual(manifest.detectors.map((d: { test: string }) => d.test), ['confidence', 'knn', 'mahalanobis', 'layers', 'fisher']);
    const fitted = JSON.parse(readFileSync(join(out, 'features.json'), 'utf8'));
    assert.deepEqual([fitted.tensor, fitted.dims, fitted.knn.count, fitted.mahalanobis.classes], ['fc1', 128, 450, 10]);

    const reference = await accuracyFedByHand(classifier, 'tfjs-layers', 'NHWC', (v) => v / 255, scoreData.images, scoreData.labels);
    const scored = scoreWithCli(out, scoreData.images, scoreData.labels);
    assert.equal(scored.accuracy, reference);
    assert.ok(scored.accuracy > 0.97);
    const doc = JSON.parse(cli('score', scoreData.images, '--pair', out, '--format', 'json').stdout);
    assert.ok(doc.results.every((x: { knnDistance: unknown; mahalanobis: unknown }) => typeof x.knnDistance === 'number' && typeof x.mahalanobis === 'number'));
    assert.ok(doc.results.filter((x: { verdict: string }) => x.verdict === 'out-of-distribution').length <= 0.05 * SCORE_IMAGES);

    // The bank holds this layer's features of the fit part: a fit image is its own nearest neighbour (distance 0
    // up to float16 rounding), a calibration image is not.
    const split = JSON.parse(readFileSync(join(out, 'split.json'), 'utf8'));
    const one = (part: 'fit' | 'calibration') => {
      const dir = join(work, `tfjs-features-${part}`);
      const index = Number((split.parts[part][0] as string).split('#').pop()); // "<fit's IDX file>#k"
      const single = writeMnistIdx(dir, part, index, 1); // fit's data is MNIST test 0–999, so image k is test image k
      const res = JSON.parse(cli('score', single.images, '--pair', out, '--format', 'json').stdout).results[0];
      return res.knnDistance as number;
    };
    const [fitDistance, calibrationDistance] = [one('fit'), one('calibration')];
    assert.ok(fitDistance < 0.01, `a fit image's KNN distance is ${fitDistance}`);
    assert.ok(calibrationDistance > 0.05, `a calibration image's KNN distance is ${calibrationDistance}`);
  });

  test('TF.js --features with a layer the model does not have is refused, naming the flag and the layers', () => {
    const r = cli('fit', '--classifier', models.tfjsSequential.classifier, '--features', 'penultimate', '--data', fitData, '--out', join(work, 'tfjs-wrong-layer'));
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.stderr, /--features: .*model\.json has no layer named "penultimate"; its layers: .*conv1, .*fc1, logits/);
    assert.equal(existsSync(join(work, 'tfjs-wrong-layer', 'ood-pair.json')), false);
  });

  test('CIFAR-style classifier (32×32 RGB, NHWC, ImageNet mean/std) + a VAE on 28×28 grey: each model at its own size', async () => {
    const out = join(work, 'cifar');
    const r = cli('fit', '--classifier', models.cifar.classifier, '--mean', IMAGENET_MEAN.join(','), '--std', IMAGENET_STD.join(','), '--vae', models.zoo.vae, '--data', fitData, '--out', out);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /takes "pixel_values" \[\?, 32, 32, 3\]: 32×32, RGB, NHWC, any batch/);
    assert.match(r.stdout, /VAE image: .*vae-bernoulli\.onnx takes 28×28 grey, the classifier 32×32 RGB: each image is decoded once and resized for each model/);
    // The data's own size (IDX 28×28) differs from the classifier's: said, and resized like any image.
    assert.match(r.stdout, /data: IDX images of 28×28 grey; each is resized to each model's input \(32×32 and 28×28\)/);
    const manifest = JSON.parse(readFileSync(join(out, 'ood-pair.json'), 'utf8'));
    // The resize kernel is recorded even at fit's default (a manifest without one means lanczos3).
    // So is what enlarges the 28×28 digits: onnxruntime (torchvision's half-pixel bilinear) with the linear kernel.
    assert.deepEqual(manifest.input, { width: 32, height: 32, channels: 3, layout: 'NHWC', resizeKernel: 'linear', enlargeWith: 'onnxruntime' });
    assert.match(r.stdout, /images are resized to 32×32 with the linear kernel \(the default, bilinear as torchvision's Resize; --resize-kernel picks another\); smaller images are enlarged by onnxruntime/);
    assert.deepEqual([manifest.classifier.mean, manifest.classifier.std], [IMAGENET_MEAN, IMAGENET_STD]);
    assert.deepEqual([manifest.vae.width, manifest.vae.height, manifest.vae.channels, manifest.vae.layout, manifest.vae.mean], [28, 28, 1, 'NCHW', undefined]);
    const reference = await cifarAccuracyFedCorrectly(models.cifar.classifier, scoreData.images, scoreData.labels);
    const scored = scoreWithCli(out, scoreData.images, scoreData.labels);
    assert.ok(reference > 0.97, `reference accuracy ${reference}`);
    assert.equal(scored.accuracy, reference);
    assert.ok(scored.results.filter((x) => x.verdict === 'out-of-distribution').length <= 0.05 * SCORE_IMAGES);
    // The VAE saw the 28×28 digit itself: the same ELBO as in the ONNX-zoo pair, whose classifier is 28×28 too.
    const zoo = scoreWithCli(join(work, 'zoo'), scoreData.images, scoreData.labels);
    for (let i = 0; i < 20; i++) assert.ok(Math.abs(scored.results[i].elbo! - zoo.results[i].elbo!) < 1e-3, `image ${i}: ELBO ${scored.results[i].elbo} vs ${zoo.results[i].elbo}`);

    // A manifest value that contradicts the model file is refused when the pair loads, with the field and the fix.
    const badKernel = cli('fit', '--classifier', models.cifar.classifier, '--resize-kernel', 'bilinear', '--data', fitData, '--out', join(work, 'cifar-bad-kernel'));
    assert.equal(badKernel.code, 1, badKernel.stderr);
    assert.match(badKernel.stderr, /--resize-kernel must be one of nearest, linear, cubic, mitchell, lanczos2, lanczos3 \(got "bilinear"\)/);

    const wrong = join(work, 'cifar-wrong');
    cpSync(out, wrong, { recursive: true });
    writeFileSync(join(wrong, 'ood-pair.json'), JSON.stringify({ ...manifest, vae: { ...manifest.vae, width: 32, height: 32 } }));
    const refused = cli('score', scoreData.images, '--pair', wrong);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /vae\.width\/vae\.height: .*declares input "x" as \[\?, 1, 28, 28\] \(28×28 in NCHW\) but the manifest's vae is 32×32; set vae\.width to 28 and vae\.height to 28, or remove them/);
  });

  test('a classifier-only pair (no VAE) calibrates the confidence test and scores', async () => {
    const out = join(work, 'classifier-only');
    const r = cli('fit', '--classifier', models.zoo.classifier, '--range', '0,255', '--no-vae', '--data', fitData, '--out', out, '--labels', 'zero,one,two,three,four,five,six,seven,eight,nine');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /no VAE: a classifier-only pair \(--no-vae\)/);
    assert.match(r.stdout, /detectors \(share of α\): confidence 0\.25, energy 0\.25, knn 0\.5, mahalanobis 0/);
    const manifest = JSON.parse(readFileSync(join(out, 'ood-pair.json'), 'utf8'));
    assert.equal(manifest.vae, undefined);
    const doc = JSON.parse(cli('score', scoreData.images, '--pair', out, '--format', 'json').stdout);
    assert.equal(doc.results[0].label, ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'][scoreData.labels[0]]);
    assert.equal(doc.results[0].elbo, null);
    assert.ok(doc.results.every((x: { verdict: string }) => x.verdict === 'in-distribution' || x.verdict === 'out-of-distribution'));
  });

  test('a raw 0–255 model fitted without --range is refused before anything is written, naming --range 0,255', () => {
    const out = join(work, 'wrong-range');
    const r = cli('fit', '--classifier', models.zoo.classifier, '--data', fitData, '--out', out);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /pixels 0\.\.255 → \[0, 1\]/);
    assert.match(r.stderr, /far better fed another way: --range 0,255 gives 9\d\.\d% against \d+\.\d% with --range 0,1 .*Pass --range 0,255/);
    assert.equal(existsSync(out), false);
  });

  test('no VAE given: fit trains one on the fit part (the default), info shows its record, scores carry ELBO and a reconstruction', async () => {
    const out = join(work, 'trained-vae');
    const r = cli('fit', '--classifier', models.zoo.classifier, '--range', '0,255', '--vae-epochs', '2', '--seed', '3', '--data', fitData, '--out', out);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /VAE: none given, so fit trains one on the fit part \(--no-vae: a classifier-only pair\): an MLP on 28×28 grey images/);
    assert.match(r.stdout, /training the VAE on 450 fit-part images \(405 to train, the rest to measure its held-out ELBO\), 2 epochs \(--vae-epochs\)/);
    assert.match(r.stdout, /tests chosen on 700 synthetic probes made from fit-part images .* never an OOD set:\n {2}elbo: (share [\d.]+|not used) — probe AUROC/);
    // Progress on stderr: epoch, loss and the time left.
    assert.match(r.stderr, /fit: training VAE: epoch 2 of 2, loss [\d.]+ nats, 100%, about 0 s left/);
    const info = JSON.parse(cli('info', '--pair', out).stdout);
    assert.match(info.vaeTraining, /^VAE trained by fit on 405 images: 2 epochs in \d+ s/);
    // Every single test is also judged on the benign-shift probes; the fisher line combines them and has no rate of its own.
    const singles = info.testChoice.filter((l: string) => !l.startsWith('fisher:'));
    assert.ok(singles.length >= 5 && singles.every((l: string) => /^\w+: (share [\d.]+|not used) — probe AUROC .*, flags \d+\.\d% of benign-shift probes/.test(l)), JSON.stringify(info.testChoice));
    assert.ok(info.testChoice.some((l: string) => /^fisher: (share [\d.]+|not used) — probe AUROC /.test(l)), JSON.stringify(info.testChoice));
    const manifest = JSON.parse(readFileSync(join(out, 'ood-pair.json'), 'utf8'));
    assert.deepEqual([manifest.vae.path, manifest.vae.likelihood, manifest.vae.training.seed], ['vae.onnx', { type: 'bernoulli' }, 3]);
    const doc = JSON.parse(cli('score', scoreData.images, '--pair', out, '--format', 'json').stdout);
    assert.ok(doc.results.every((x: { elbo: number | null; complexityScore: number | null }) => Number.isFinite(x.elbo) && Number.isFinite(x.complexityScore)));
    assert.ok(doc.results.filter((x: { verdict: string }) => x.verdict === 'out-of-distribution').length <= 0.05 * SCORE_IMAGES);
    // eval names every test fit did not use, with fit's reason.
    const evaluated = cli('eval', '--pair', out, '--in', scoreData.images, '--ood', FASHION_TEST_IMAGES, '--limit', '200');
    assert.equal(evaluated.code, 0, evaluated.stderr);
    for (const [test, why] of Object.entries(info.notUsed ?? {})) assert.ok(evaluated.stdout.includes(`not used by this pair's verdict (fit's choice, from in-distribution data only): ${why}`), `${test}: ${evaluated.stdout}`);
    for (const [test, why] of Object.entries(info.shareCut ?? {})) assert.ok(evaluated.stdout.includes(`a smaller share (fit's choice, from in-distribution data only): ${why}`), `${test}: ${evaluated.stdout}`);
  });
});

