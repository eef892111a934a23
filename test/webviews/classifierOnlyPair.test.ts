/**
 * Issue 25: panels fit the pair. Real scoring with the built-in classifier-only pair (ood-pair.classifier-only
 * .json: confidence 0.1 and KNN 0.9 of α, no VAE) of MNIST and FashionMNIST test images: the folder report
 * draws the KNN test and nothing of the ELBO, and names the test that fired; the built-in VAE pair keeps its
 * ELBO. The preview page and the shared α/blind-test sentences on real figures.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type ImageResult, OodEngine, type ScoreInput } from '../../src/inference/engine';
import { idxImages, readIdxFile } from '../../src/inference/io/idx';
import { blindConfidenceWarning, firingThreshold, sharesSentence } from '../../src/shared/fitReport';
import { reportScoreKeys, verdictWithTests } from '../../src/shared/reportModel';
import { buildPreviewHtml, previewScale } from '../../src/webviews/previewHtml';
import { buildReportData, type StoredReport } from '../../src/webviews/reportData';
import { FASHION_TEST_IMAGES, MNIST_PAIR, MNIST_TEST_IMAGES, pairReady } from '../helpers';

function inputs(path: string, n: number): ScoreInput[] {
  const images = idxImages(readIdxFile(path));
  return Array.from({ length: n }, (_, k) => ({ path: `${path}#${k}`, source: { width: 28, height: 28, channels: 1 as const, data: images.image(k) } }));
}

async function report(pair: string): Promise<{ stored: StoredReport; results: ImageResult[] }> {
  const engine = await OodEngine.create({ pair, provider: 'cpu' });
  try {
    const results: ImageResult[] = [];
    await engine.scoreAll([...inputs(MNIST_TEST_IMAGES, 20), ...inputs(FASHION_TEST_IMAGES, 20)], (r) => void results.push(r));
    for (const r of results) delete r.details;
    const stored: StoredReport = { version: 1, id: 'r', createdAt: '2026-12-06T12:00:00Z', folder: '/data/mixed', referenceFolder: null, pair: engine.info, total: results.length, cancelled: false, seconds: 1, cached: 0, results, sets: results.map(() => 'target' as const) };
    return { stored, results };
  } finally {
    await engine.dispose();
  }
}

describe('issue 25: the report fits the pair', { skip: !pairReady(MNIST_PAIR) && 'the built-in pair is not built' }, () => {
  test('a classifier-only pair: MSP and KNN barcodes/histograms/columns, no ELBO; OOD rows name the test that fired', async () => {
    const { stored, results } = await report(join(MNIST_PAIR, 'ood-pair.classifier-only.json'));
    const data = buildReportData(stored);
    assert.deepEqual(reportScoreKeys(data), ['msp', 'knn']);
    assert.ok(data.rows.every((r) => r.elbo === null) && data.rows.every((r) => typeof r.knn === 'number'));
    assert.match(data.title, /— pair mnist/);
    const flagged = data.rows.filter((r) => r.verdict === 'out-of-distribution');
    assert.ok(flagged.length >= 15, `only ${flagged.length} of 20 FashionMNIST images flagged`);
    for (const r of flagged) {
      const text = verdictWithTests('Out-of-distribution', r);
      assert.match(text, /^Out-of-distribution \((KNN|confidence)(, (KNN|confidence))?\)$/);
      assert.deepEqual(r.firedBy, results[r.id].firedBy);
    }
    assert.ok(flagged.some((r) => r.firedBy?.includes('knn')), 'the KNN test decided none of the verdicts');
    assert.equal(verdictWithTests('In-distribution', data.rows.find((r) => r.verdict === 'in-distribution')!), 'In-distribution');
  });

  test('the VAE pair keeps its ELBO (and gets its KNN test too)', async () => {
    const { stored } = await report(MNIST_PAIR);
    const keys = reportScoreKeys(buildReportData(stored));
    assert.ok(keys.includes('msp') && keys.includes('elbo'), `keys ${keys}`);
  });
});

describe('issue 25: α shares and a test that cannot fire', () => {
  test('shares are said once, with each deciding test', () => {
    assert.equal(
      sharesSentence([{ score: 'msp', share: 0.5 }, { score: 'knn', share: 0.5 }, { score: 'mahalanobis', share: 0 }], 0.01),
      'The verdict: an image is out-of-distribution when any test fires. Each test has a share of α = 0.01: confidence 0.5 · KNN distance 0.5 (it fires at p < share × α).',
    );
  });

  test('two classes: the MSP never drops below 0.5, so a threshold near it is flagged; ten classes are not', () => {
    // Top-class probabilities of a confident two-class model on 225 calibration images: all above 0.5.
    const msp = Array.from({ length: 225 }, (_, i) => 0.502 + 0.498 * (i / 224) ** 0.3).sort((a, b) => a - b);
    const t = firingThreshold(msp, 0.5 * 0.01, 'low');
    assert.ok(t !== null && t < 0.55, `threshold ${t}`);
    assert.match(blindConfidenceWarning(t, 0.5, 2)!, /^The confidence test can hardly fire on this model: with 2 classes the top-class probability is never below 0\.5, and the test fires only below 0\.5\d\d/);
    assert.match(blindConfidenceWarning(t, 0.5, 2)!, /\(the lowest 1% of the range it can take\)/);
    // The text-line pair of the e2e fixture: its lowest calibration MSP is 0.552 (10% of [0.5, 1]): flagged.
    assert.match(blindConfidenceWarning(0.552, 0.5, 2)!, /fires only below 0\.552 \(the lowest 10% of the range/);
    assert.equal(blindConfidenceWarning(t, 0.5, 10), null, 'ten classes: 0.55 is half way from the 0.1 floor');
    assert.equal(blindConfidenceWarning(0.65, 0.5, 2), null, 'two classes, fires below 0.65 (30% of the range): it can fire');
    assert.equal(blindConfidenceWarning(t, 0, 2), null, 'a test without a share is not part of the verdict');
    // A share too small for the calibration (fit's probe-chosen shares can give one): the test never fires at all.
    assert.match(blindConfidenceWarning(null, 0.06, 2, { count: 225, alpha: 0.01 })!, /^The confidence test cannot fire on this pair: its share of α \(0\.06\) needs at least 1,666 calibration images and the pair has 225\./);
    assert.equal(blindConfidenceWarning(null, 0.06, 2), null, 'without the calibration size nothing is said');
  });
});

describe('issue 25: the preview page', () => {
  const preview = { image: '/w/lines/line-0000.png', source: { width: 192, height: 48 }, modelInputPng: 'iVBORw0KGgo=', width: 192, height: 48, channels: 3 as const, tensorRange: [-0.83, 0.86] as [number, number], probabilities: [0.97, 0.03], prediction: 0, label: '0°', msp: 0.97 };

  test('one image as the model sees it, scaled up sharp, the scaling in model-card words, the prediction; text escaped', () => {
    const html = buildPreviewHtml({ cspSource: 'https://x', nonce: 'abcdefghijklmnopqrstuvwxyz012345', styleUri: 'https://x/preview.css', title: 'Create Pair preview: <m>', modelName: 'text-lines.onnx', scalingText: '(x/255 − 0.5)/0.5', sizeWarning: null, labels: ['0°', '180°'] }, preview);
    assert.match(html, /<img id="model-input" src="data:image\/png;base64,iVBORw0KGgo=" width="384" height="96"/);
    assert.match(html, /Model input 192×48 \(width × height\), RGB, from line-0000\.png \(192×48\); scaled \(x\/255 − 0\.5\)\/0\.5: values from -0\.83 to 0\.86/);
    assert.match(html, /Predicted 0° \(97\.0%\)/);
    assert.match(html, /<td>180°<\/td><td>3\.0%<\/td>/);
    assert.ok(!html.includes('<m>') && html.includes('&lt;m&gt;'));
    assert.ok(!html.includes('size-warning'));
    assert.ok(!/<script/.test(html), 'a static page: no script');
    assert.equal(previewScale(32, 32), 10);
    assert.equal(previewScale(48, 192), 1);
  });
});
