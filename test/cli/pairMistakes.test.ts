/** The CLI side of the mistakes users made with their own pairs (issue 14, "Why"): each gets a clear message. */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
    assert.match(r.stdout, /--batch-size N +images per model run \(default 64\)\. Models with a fixed batch size need no flag/);
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
