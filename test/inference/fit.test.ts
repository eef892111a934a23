/** The fit engine (src/inference/fit.ts) as the VS Code Create Pair flow calls it: progress, cancel, the split. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { FitError, type FitProgress, fitPair, seededPermutation, splitSizes } from '../../src/inference/fit';
import { tempDir } from '../helpers';
import { thirdPartyModels, writeMnistIdx } from '../thirdParty';

test('the split: seeded, a permutation, check part 10% up to 2,000, fit part only when a detector learns', () => {
  const p = seededPermutation(1000, 7);
  assert.equal(new Set(p).size, 1000);
  assert.deepEqual(seededPermutation(1000, 7), p);
  assert.notDeepEqual(seededPermutation(1000, 8), p);
  assert.deepEqual(splitSizes(1000, { needsFitPart: false }), { fit: 0, calibration: 900, check: 100 });
  assert.deepEqual(splitSizes(60000, { needsFitPart: false }), { fit: 0, calibration: 58000, check: 2000 });
  assert.deepEqual(splitSizes(1000, { needsFitPart: true }), { fit: 450, calibration: 450, check: 100 });
});

describe('fitPair', () => {
  let models: Awaited<ReturnType<typeof thirdPartyModels>>;
  let data: string;
  before(async () => {
    models = await thirdPartyModels();
    data = writeMnistIdx(tempDir('fit-data-'), 'd', 0, 800).images;
  });

  test('reports progress by phase, and a cancel leaves nothing behind', async () => {
    const out = tempDir('fit-cancel-');
    const controller = new AbortController();
    const phases: FitProgress['phase'][] = [];
    await assert.rejects(
      fitPair({
        classifier: models.zoo.classifier,
        data: [data],
        out,
        scaling: { range: [0, 255] },
        signal: controller.signal,
        onProgress: (p) => {
          if (phases.at(-1) !== p.phase) phases.push(p.phase);
          if (p.phase === 'fitting detectors') controller.abort();
        },
      }),
      (err: Error) => err instanceof FitError && /fit was cancelled; nothing was written/.test(err.message),
    );
    assert.deepEqual(phases, ['reading models', 'listing images', 'fitting detectors']);
    assert.deepEqual(readdirSync(out), []);
  });

  test('returns what it decided, the held-out figures and the scores for histograms', async () => {
    const out = tempDir('fit-ok-');
    const lines: string[] = [];
    const result = await fitPair({ classifier: models.tfjsSequential.classifier, data: [data], out, onDecision: (l) => lines.push(l) });
    assert.deepEqual(result.parts, { fit: 0, calibration: 720, check: 80 });
    assert.equal(result.manifest.classifier.outputKind, 'probabilities');
    assert.ok(result.heldOutAccuracy! > 0.95, String(result.heldOutAccuracy));
    assert.equal(result.heldOutFalseAlarmRate, result.checkOod / 80);
    // A TF.js classifier without --features: MSP alone (a softmax output has no energy).
    assert.deepEqual(result.heldOutScores.map((s) => [s.detector, s.direction, s.calibration.length, s.check.length]), [['confidence', 'high-is-ood', 720, 80]]);
    assert.deepEqual(result.manifest.detectors, [{ test: 'confidence', share: 1 }]);
    assert.deepEqual(lines, result.decisions);
    assert.ok(existsSync(join(out, 'classifier', 'model.json')) && existsSync(join(out, 'classifier', 'weights.bin')));
    assert.deepEqual(readdirSync(out).filter((f) => f.startsWith('.')), []);
  });
});
