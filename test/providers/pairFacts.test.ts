/** Issue 25: what Select Pair… says about each pair (pairFacts.ts), from real manifests. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { configuredPairName, pairFactsLine } from '../../src/providers/pairFacts';

const MNIST = join(__dirname, '..', '..', 'models', 'mnist');

describe('pair facts in Select Pair…', () => {
  test('the built-in pair: its model, size, scaling and tests; no fit record, so the date falls back', () => {
    const manifest = JSON.parse(readFileSync(join(MNIST, 'ood-pair.json'), 'utf8'));
    const line = pairFactsLine(manifest, new Date('2026-01-02T03:04:05Z'));
    assert.match(line, /^classifier\.onnx \(10 classes\) · 32×32 grey · x\/255 · tests /);
    assert.match(line, /held-out false alarms not recorded · 2026-01-02$/);
  });

  test('a fitted classifier-only pair: the scaling as the model card says it, shares, false alarms, the fit date', () => {
    const manifest = {
      name: 'text-lines',
      input: { width: 192, height: 48, channels: 3, layout: 'NCHW' },
      classifier: { path: 'classifier.onnx', format: 'onnx', labels: ['0°', '180°'], range: [0, 1], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
      detectors: [{ test: 'confidence', share: 0.5 }, { test: 'knn', share: 0.5, k: 1 }, { test: 'mahalanobis', share: 0 }],
      fit: { alpha: 0.01, heldOutFalseAlarmRate: 0.02, createdAt: '2026-12-06T12:00:00Z' },
    };
    assert.equal(pairFactsLine(manifest), 'classifier.onnx (2 classes: 0°, 180°) · 192×48 RGB · (x/255 − 0.5)/0.5 · tests confidence 0.5, KNN 0.5 · held-out false alarms 2.0% at α = 0.01 · 2026-12-06');
  });

  test('a manifest that is not an object still gives a line (nothing thrown)', () => {
    assert.equal(pairFactsLine(null), 'x/255 · test confidence · held-out false alarms not recorded');
  });

  test('the status bar names the configured pair before it loads', () => {
    assert.equal(configuredPairName(undefined), 'mnist');
    assert.equal(configuredPairName('/w/pairs/text-lines'), 'text-lines');
    assert.equal(configuredPairName('/w/pairs/text-lines/ood-pair.json'), 'text-lines');
    assert.equal(configuredPairName('C:\\w\\pairs\\lines\\'), 'lines');
  });
});
