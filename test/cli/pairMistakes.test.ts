/** The CLI side of the mistakes users made with their own pairs (issue 14, "Why"): each gets a clear message. */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { tempDir } from '../helpers';
import { cli, thirdPartyModels, writeMnistIdx } from '../thirdParty';

describe('pair mistakes on the command line', () => {
  let pair: string;
  let data: string;
  before(async () => {
    const m = await thirdPartyModels();
    pair = tempDir('zoo-pair-');
    copyFileSync(m.zoo.classifier, join(pair, 'mnist-zoo.onnx'));
    copyFileSync(m.zoo.vae, join(pair, 'vae-bernoulli.onnx'));
    // As in the README example: the manifest names calibration.json before it exists.
    writeFileSync(
      join(pair, 'ood-pair.json'),
      JSON.stringify({
        name: 'zoo',
        input: { width: 28, height: 28, channels: 1, layout: 'NCHW' },
        classifier: { path: 'mnist-zoo.onnx', format: 'onnx', range: [0, 255], outputKind: 'logits', labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] },
        vae: { path: 'vae-bernoulli.onnx', format: 'onnx', outputs: { reconstruction: 'recon_logits', mu: 'z_mean', logvar: 'z_log_var' }, reconstructionKind: 'logits', likelihood: { type: 'bernoulli' } },
        calibration: 'calibration.json',
      }),
    );
    data = writeMnistIdx(tempDir('zoo-data-'), 'cal', 0, 600).images;
  });

  test('calibrate creates the calibration file the manifest names (static batch 1, no --batch-size needed)', () => {
    const r = cli('calibrate', data, '--pair', pair);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`calibrated zoo on 600 images \\(0 could not be scored\\) → ${join(pair, 'calibration.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.equal(JSON.parse(readFileSync(join(pair, 'calibration.json'), 'utf8')).count, 600);
    assert.equal(JSON.parse(readFileSync(join(pair, 'ood-pair.json'), 'utf8')).calibration, 'calibration.json');
  });

  test('calibrate on images that cannot be scored says why, without the usage text', () => {
    const broken = tempDir('broken-');
    for (let i = 0; i < 3; i++) writeFileSync(join(broken, `x${i}.png`), 'not a png');
    const r = cli('calibrate', broken, '--pair', pair);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /only 0 of 3 images could be scored; calibration needs a few thousand\. Why: .*(corrupt|unsupported|not an image|format)/i);
    assert.doesNotMatch(r.stderr, /Usage:/);
  });

  test('eval with a set where nothing could be scored fails (exit 1) instead of printing 0 images', () => {
    const empty = tempDir('empty-');
    mkdirSync(join(empty, 'none'));
    const r = cli('eval', '--in', data, '--ood', join(empty, 'none'), '--pair', pair, '--limit', '50');
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /--ood .*none: no images found; nothing to evaluate/);
  });

  test('the usage text documents --batch-size and fit', () => {
    const r = cli('--help');
    assert.match(r.stdout, /--batch-size N +images per model run \(default: by input size, 64 for small images, 16 for 224×224 RGB\)\. Models with a fixed batch size need no flag/);
    assert.match(r.stdout, /ood-lens fit --classifier <model>/);
    const fit = cli('fit', '--help');
    assert.match(fit.stdout, /--range LO,HI\] \[--mean M\[,M,M\]\] \[--std S\[,S,S\]\] \[--labels a,b,…\]/);
  });

  test('fit refuses a folder that already holds a pair, and wrong flags by name', async () => {
    const m = await thirdPartyModels();
    const r = cli('fit', '--classifier', m.zoo.classifier, '--data', data, '--out', pair);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already holds a pair \(ood-pair\.json\); choose another --out folder or pass --force/);
    const badRange = cli('fit', '--classifier', m.zoo.classifier, '--data', data, '--out', tempDir('x-'), '--range', '255,0');
    assert.match(badRange.stderr, /--range: the first value must be below the second/);
    const gaussian = cli('fit', '--classifier', m.zoo.classifier, '--vae', m.zoo.vae, '--likelihood', 'gaussian', '--data', data, '--out', tempDir('x-'));
    assert.match(gaussian.stderr, /--likelihood gaussian needs --sigma/);
    const labels = cli('fit', '--classifier', m.zoo.classifier, '--range', '0,255', '--labels', 'a,b,c', '--data', data, '--out', tempDir('x-'));
    assert.match(labels.stderr, /--labels: 3 labels given but "Plus214_Output_0" gives 10 values per image; give 10 labels, in output order/);
  });
});

/**
 * Issue 22: each preprocessing mistake of the table is refused by fit before it writes anything, with a message
 * that names the fix (the exact flags); --force "reason" writes it anyway and the pair says so later.
 */
describe('fit refuses a misfed classifier, naming the fix', () => {
  let models: Awaited<ReturnType<typeof thirdPartyModels>>;
  let data: string;
  let work: string;
  before(async () => {
    models = await thirdPartyModels();
    work = tempDir('misfed-');
    data = writeMnistIdx(join(work, 'data'), 'fit', 0, 600).images;
  });
  const refused = (r: ReturnType<typeof cli>, out: string) => {
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /the classifier does not look fed right; nothing was written/);
    assert.equal(existsSync(out), false, 'nothing may be written');
  };

  test('a model that wants 0..255 fed 0..1: refused naming --range 0,255', () => {
    const out = join(work, 'zoo-unit');
    const r = cli('fit', '--classifier', models.zoo.classifier, '--data', data, '--out', out);
    refused(r, out);
    assert.match(r.stderr, /--range 0,255 gives 9\d\.\d% against 1?\d\.\d% with --range 0,1 \(300 labelled images\)\. Pass --range 0,255/);
  });

  test('normalised twice (--range -1,1 --mean 0.5 --std 0.5, typed with spaces): refused naming --range -1,1', () => {
    const out = join(work, 'signed-twice');
    const r = cli('fit', '--classifier', models.signed.classifier, '--output', 'logits', '--range', '-1,1', '--mean', '0.5', '--std', '0.5', '--data', data, '--out', out);
    refused(r, out);
    assert.match(r.stderr, /--range -1,1 gives 9\d\.\d% against \d+\.\d% with --range -1,1 --mean 0\.5 --std 0\.5 .*Pass --range -1,1$/m);
  });

  test('--range 0,255 on a [−1, 1] model: refused naming --range -1,1', () => {
    const out = join(work, 'signed-255');
    const r = cli('fit', '--classifier', models.signed.classifier, '--output', 'logits', '--range', '0,255', '--data', data, '--out', out);
    refused(r, out);
    assert.match(r.stderr, /--range -1,1 gives 9\d\.\d% against \d+\.\d% with --range 0,255 .*Pass --range -1,1$/m);
  });

  test('--output embedding (64 values; the labels are 0–9): refused naming --output logits', () => {
    const out = join(work, 'signed-embedding');
    const r = cli('fit', '--classifier', models.signed.classifier, '--output', 'embedding', '--range', '-1,1', '--data', data, '--out', out);
    refused(r, out);
    assert.match(r.stderr, /--output: the data's labels name 10 classes but output "embedding" gives 64 values per image.*pass --output logits \(10 values per image\)/);
  });

  test('fed right, the same model is accepted, and the check is stored in the pair', () => {
    const out = join(work, 'signed-right');
    const r = cli('fit', '--classifier', models.signed.classifier, '--output', 'logits', '--range=-1,1', '--data', data, '--out', out);
    assert.equal(r.code, 0, r.stderr);
    const check = JSON.parse(readFileSync(join(out, 'ood-pair.json'), 'utf8')).fit.check;
    assert.equal(check.problems.length, 0);
    assert.equal(check.trials[0].flags, '--range -1,1');
    assert.ok(check.accuracy > 0.95, String(check.accuracy));
    assert.ok(check.trials.some((t: { flags: string; accuracy: number }) => t.flags === '--range 0,255' && t.accuracy < 0.5));
    assert.equal(check.batchProbe.independent, true);
    const info = cli('info', '--pair', out);
    assert.equal(info.code, 0, info.stderr);
    assert.doesNotMatch(info.stderr, /warning/);
    assert.equal(JSON.parse(info.stdout).fitCheck.warning, null);
  });

  test('BatchNorm left in training mode (the output depends on the batch): refused naming the cause', () => {
    const out = join(work, 'train-mode');
    const r = cli('fit', '--classifier', models.batchDependent.classifier, '--data', data, '--out', out);
    refused(r, out);
    assert.match(r.stderr, /output for an image depends on the other images in its batch .*BatchNorm or Dropout layer left in training mode .*model\.eval\(\)/);
  });

  test('labels that match no class are an error naming --labels', () => {
    const dir = join(work, 'odd-labels');
    const { images } = writeMnistIdx(dir, 'odd', 0, 300);
    const labels = readFileSync(join(dir, 'odd-labels-idx1-ubyte'));
    labels[8] = 180; // the first image's label
    writeFileSync(join(dir, 'odd-labels-idx1-ubyte'), labels);
    const r = cli('fit', '--classifier', models.zoo.classifier, '--range', '0,255', '--data', images, '--out', join(work, 'odd-out'), '--alpha', '0.05');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--labels: the data's labels "180" \(1 image\) match no class of the classifier, whose output "Plus214_Output_0" gives 10 classes/);
  });

  test('without labels, a degenerate output (one class for most images) is refused with the likely fix', async () => {
    const dir = join(work, 'pngs');
    mkdirSync(dir);
    const { idxImages, readIdxFile } = await import('../../src/inference/io/idx');
    const idx = idxImages(readIdxFile(data), data);
    const sharp = (await import('sharp')).default;
    for (let i = 0; i < 200; i++) await sharp(Buffer.from(idx.image(i)), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(join(dir, `${String(i).padStart(3, '0')}.png`));
    const out = join(work, 'pngs-out');
    const r = cli('fit', '--classifier', models.zoo.classifier, '--data', dir, '--out', out, '--alpha', '0.05');
    refused(r, out);
    assert.match(r.stderr, /output looks degenerate with --range 0,1: it gives one class to \d+\.\d% of the check images\. Fed --range 0,255 it is not .*pass --range 0,255/);
  });

  test('--force "reason" writes a refused pair, stores the reason, and info and score warn', () => {
    const out = join(work, 'forced');
    const r = cli('fit', '--classifier', models.signed.classifier, '--output', 'logits', '--range', '0,255', '--data', data, '--out', out, '--force', 'testing the warning');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /written anyway \(--force "testing the warning"\) over: the classifier reads the check images far better/);
    const check = JSON.parse(readFileSync(join(out, 'ood-pair.json'), 'utf8')).fit.check;
    assert.equal(check.forced, 'testing the warning');
    assert.match(check.problems[0], /Pass --range -1,1/);
    const info = cli('info', '--pair', out);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stderr, /warning: this pair was written with --force \("testing the warning"\) over fit's feeding check: .*Pass --range -1,1/);
    assert.equal(JSON.parse(info.stdout).fitCheck.forced, 'testing the warning');
    const score = cli('score', data, '--pair', out, '--format', 'json');
    assert.equal(score.code, 0, score.stderr);
    assert.match(score.stderr, /warning: this pair was written with --force/);
    // A bare --force without a reason does not override the check.
    const bare = cli('fit', '--classifier', models.signed.classifier, '--output', 'logits', '--range', '0,255', '--data', data, '--out', join(work, 'bare-force'), '--force');
    assert.equal(bare.code, 1);
    assert.match(bare.stderr, /pass --force "why" to write the pair anyway/);
  });

  test('fit --help explains every option with an example', async () => {
    const r = cli('fit', '--help');
    assert.equal(r.code, 0);
    const source = readFileSync(join(__dirname, '..', '..', 'src', 'cli', 'fit.ts'), 'utf8');
    const block = source.slice(source.indexOf('const FIT_OPTIONS = {'), source.indexOf('} as const;', source.indexOf('const FIT_OPTIONS = {')));
    const names = [...block.matchAll(/^\s+'?([a-z-]+)'?: \{ type/gm)].map((m) => m[1]).filter((n) => n !== 'help' && n !== 'force-reason');
    assert.ok(names.length > 25, names.join(','));
    const explained = r.stdout.slice(r.stdout.indexOf('Models and data:'));
    for (const name of names) assert.match(explained, new RegExp(`--${name}\\b`), `--${name} is not explained`);
    assert.match(r.stdout, /--range -1,1/);
    assert.match(r.stdout, /Examples:\n  ood-lens fit --classifier/);
  });
});

/** Issue 22: what fit used to refuse (flat vectors, uint8 bytes, a second input) is fed through adapters. */
describe('fit adapters: --layout flat, uint8 inputs, --const', () => {
  let models: Awaited<ReturnType<typeof thirdPartyModels>>;
  let data: string;
  let later: { images: string; labels: Uint8Array };
  let work: string;
  before(async () => {
    models = await thirdPartyModels();
    work = tempDir('adapters-');
    data = writeMnistIdx(join(work, 'data'), 'fit', 0, 600).images;
    later = writeMnistIdx(join(work, 'data'), 'later', 9000, 200);
  });

  test('a flat [N, 784] uint8 model with a temperature input: each missing flag is named, then fit and score work', () => {
    const model = models.flatUint8.classifier;
    const out = join(work, 'mlp');
    const noConst = cli('fit', '--classifier', model, '--data', data, '--out', out);
    assert.equal(noConst.code, 1);
    assert.match(noConst.stderr, /the classifier has 2 inputs \("pixels" \[\?, 784\] uint8, "temperature" \[1\]\); .*--const temperature=VALUE/);
    const noFlat = cli('fit', '--classifier', model, '--const', 'temperature=1', '--data', data, '--out', out);
    assert.equal(noFlat.code, 1);
    assert.match(noFlat.stderr, /takes flat vectors; pass --layout flat --size WIDTHxHEIGHT/);
    const scaled = cli('fit', '--classifier', model, '--const', 'temperature=1', '--layout', 'flat', '--size', '28x28', '--range', '-1,1', '--data', data, '--out', out);
    assert.equal(scaled.code, 1);
    assert.match(scaled.stderr, /--range: the classifier's input "pixels" is uint8 and takes the 8-bit pixels 0\.\.255 as they are/);
    // --no-vae keeps this adapter test quick (no VAE training).
    const r = cli('fit', '--classifier', model, '--const', 'temperature=1', '--layout', 'flat', '--size', '28x28', '--no-vae', '--data', data, '--out', out, '--alpha', '0.05');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /classifier input "pixels" is uint8: fed the 8-bit pixels 0\.\.255/);
    const manifest = JSON.parse(readFileSync(join(out, 'ood-pair.json'), 'utf8'));
    assert.deepEqual([manifest.classifier.layout, manifest.classifier.range, manifest.classifier.constants], ['flat', [0, 255], { temperature: 1 }]);
    const score = cli('score', later.images, '--pair', out, '--format', 'json');
    assert.equal(score.code, 0, score.stderr);
    const results = JSON.parse(score.stdout).results as { prediction: number }[];
    const accuracy = results.filter((x, i) => x.prediction === later.labels[i]).length / results.length;
    assert.ok(accuracy > 0.97, String(accuracy));
  });

  test('flags, not manifest fields: --mean with three values on a grey model, a --const the model lacks', () => {
    const grey = cli('fit', '--classifier', models.zoo.classifier, '--range', '0,255', '--mean', '0.5,0.5,0.5', '--data', data, '--out', join(work, 'x'));
    assert.equal(grey.code, 1);
    assert.match(grey.stderr, /--mean: 3 values given but the classifier takes 1 channel \(grey\); give one value/);
    const wrongConst = cli('fit', '--classifier', models.zoo.classifier, '--range', '0,255', '--const', 'tau=2', '--data', data, '--out', join(work, 'y'));
    assert.equal(wrongConst.code, 1);
    assert.match(wrongConst.stderr, /--const: .*has no input named "tau" to fix to a constant \(inputs: "Input3"\)/);
    assert.doesNotMatch(grey.stderr + wrongConst.stderr, /classifier\.(mean|constants)|\.ood-lens-fit-/);
  });
});
