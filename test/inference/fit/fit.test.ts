/** The fit engine (src/inference/fit.ts) as the VS Code Create Pair flow calls it: progress, cancel, the split. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { defaultDetectors, FitError, type FitProgress, fitPair, seededPermutation, splitSizes, tooFewForAlpha } from '../../../src/inference/fit/fit';
import { tooSmallProblem } from '../../../src/inference/pair/calibrationCheck';
import { tempDir } from '../../helpers';
import { isStagingPath, removeStaleStaging, STAGING_PREFIX } from '../../../src/inference/fit/outFolder';
import { thirdPartyModels, writeMnistIdx } from '../../thirdParty';

test('the split: seeded, a permutation, check part 10% up to 2,000, fit part only when a detector learns', () => {
  const p = seededPermutation(1000, 7);
  assert.equal(new Set(p).size, 1000);
  assert.deepEqual(seededPermutation(1000, 7), p);
  assert.notDeepEqual(seededPermutation(1000, 8), p);
  assert.deepEqual(splitSizes(1000, { needsFitPart: false }), { fit: 0, calibration: 900, check: 100 });
  assert.deepEqual(splitSizes(60000, { needsFitPart: false }), { fit: 0, calibration: 58000, check: 2000 });
  assert.deepEqual(splitSizes(1000, { needsFitPart: true }), { fit: 450, calibration: 450, check: 100 });
});

test('too few images: refused exactly where the load-time calibration check would refuse the pair, naming what would do', () => {
  for (const options of [{ vae: true, features: true, logits: true }, { vae: false, features: true, logits: true }, { vae: false, features: false, logits: false }]) {
    const detectors = defaultDetectors(options);
    const shares = Object.fromEntries(detectors.map((d) => [d.test, d.share]));
    for (const alpha of [0.01, 0.05]) {
      const split = { needsFitPart: options.features };
      let refusedUpTo = 0;
      for (let n = 5; n <= 1500; n++) {
        const parts = splitSizes(n, split);
        const problem = tooFewForAlpha(n, parts, detectors, alpha, split);
        // The pair fit would write with this calibration part: calibrationCheck's verdict must agree.
        const atLoad = tooSmallProblem(Object.fromEntries(detectors.map((d) => [d.test, parts.calibration])), 'pair', alpha, shares);
        assert.equal(problem === null, atLoad === null, `n = ${n}, α = ${alpha}, ${JSON.stringify(options)}`);
        if (problem) {
          refusedUpTo = n;
          const needed = Number(/Give at least (\d+) in-distribution images/.exec(problem)![1]);
          // The number it names is the first that fits, and the α it names would do with this data.
          assert.equal(tooFewForAlpha(needed, splitSizes(needed, split), detectors, alpha, split), null, problem);
          assert.ok(tooFewForAlpha(needed - 1, splitSizes(needed - 1, split), detectors, alpha, split) !== null, problem);
          const larger = /--alpha ([\d.]+) or more/.exec(problem);
          if (larger) assert.equal(tooFewForAlpha(n, parts, detectors, Number(larger[1]), split), null, problem);
        }
      }
      assert.ok(refusedUpTo > 0, `nothing refused at α = ${alpha}`);
    }
  }
  // The figures of the Create Pair test (400 images, classifier-only with features): 180 calibration images, 200 needed.
  const detectors = defaultDetectors({ vae: false, features: true, logits: true });
  assert.match(tooFewForAlpha(400, splitSizes(400, { needsFitPart: true }), detectors, 0.01, { needsFitPart: true })!, /calibration 180, check 40.*at least 200 calibration images\. Give at least 443 in-distribution images.*--alpha 0\.0111 or more/);
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
        trainVae: false,
        signal: controller.signal,
        onProgress: (p) => {
          if (phases.at(-1) !== p.phase) phases.push(p.phase);
          if (p.phase === 'fitting detectors') controller.abort();
        },
      }),
      (err: Error) => err instanceof FitError && /fit was cancelled; nothing was written/.test(err.message),
    );
    assert.deepEqual(phases, ['reading models', 'listing images', 'checking the classifier', 'fitting detectors']);
    assert.deepEqual(readdirSync(out), []);
  });

  test('returns what it decided, the held-out figures and the scores for histograms', async () => {
    const out = tempDir('fit-ok-');
    const lines: string[] = [];
    const result = await fitPair({ classifier: models.tfjsSequential.classifier, data: [data], trainVae: false, out, onDecision: (l) => lines.push(l) });
    assert.deepEqual(result.parts, { fit: 360, calibration: 360, check: 80 });
    assert.equal(result.manifest.classifier.outputKind, 'probabilities');
    assert.equal(result.manifest.input.resizeKernel, 'linear'); // fit's default, recorded
    assert.equal(result.manifest.input.enlargeWith, 'onnxruntime'); // with it, onnxruntime enlarges
    assert.ok(result.heldOutAccuracy! > 0.95, String(result.heldOutAccuracy));
    assert.equal(result.heldOutFalseAlarmRate, result.checkOod / 80);
    // A TF.js classifier without --features: its features are the input of its last Dense layer ("logits" reads
    // "fc1"), as an ONNX model's are the input of its last Gemm. MSP beside them (a softmax output has no energy).
    assert.deepEqual(result.manifest.features, { layer: 'fc1', fit: 'features.json' });
    assert.ok(lines.some((l) => /KNN and Mahalanobis on the classifier's features \(layer "fc1", the input of its last Dense layer\)/.test(l)), lines.join('\n'));
    // And its conv layers, one Gaussian each (the earlier-layer test).
    assert.deepEqual(result.heldOutScores.map((s) => [s.detector, s.direction, s.calibration.length, s.check.length]), [['confidence', 'high-is-ood', 360, 80], ['knn', 'high-is-ood', 360, 80], ['mahalanobis', 'high-is-ood', 360, 80], ['layers', 'high-is-ood', 360, 80]]);
    // The shares fit chose on its synthetic probes, recorded with the reasons; the used ones share all of α.
    const choice = result.manifest.fit!.testChoice!;
    assert.deepEqual(choice.tests.map((t) => t.test), ['confidence', 'knn', 'mahalanobis', 'layers']);
    assert.deepEqual(result.manifest.detectors!.map((d) => [d.test, d.share]), choice.tests.map((t) => [t.test, t.share]));
    const used = choice.tests.filter((t) => t.used);
    assert.ok(used.length >= 1 && Math.abs(used.reduce((a, t) => a + t.share, 0) - 1) < 0.01, JSON.stringify(choice.tests));
    for (const t of choice.tests) assert.equal(t.used, t.auroc >= 0.6, JSON.stringify(t));
    // Benign-shift probes made from calibration images: on this model the earlier-layer Gaussian sees a slight blur
    // or a change of lighting as out-of-distribution (it flags a quarter of the benign probes) and its share is cut to
    // half, though it catches the far-OOD probes; the penultimate features barely see them (2%) and keep more.
    assert.equal(choice.benignProbesPerKind, 200);
    const by = Object.fromEntries(choice.tests.map((t) => [t.test, t]));
    assert.ok(by.layers.caughtAt1Percent > 0.6 && by.layers.benignAlarms! > 0.15 && by.layers.benignByKind!.blurred > 0.5, JSON.stringify(by.layers));
    assert.match(by.layers.shareCut!, /^its share is cut to 50% of what the far-OOD probes gave it/);
    assert.ok(by.knn.used && by.knn.benignAlarms! < 0.03 && by.knn.share > by.layers.share, JSON.stringify(choice.tests));
    assert.ok(lines.some((l) => /^ {2}layers: share 0\.\d+ — probe AUROC 0\.\d+, catches \d+% of probes at 1% false alarms, flags \d+\.\d% of benign-shift probes \(blurred \d+\.\d%\)$/.test(l)), lines.join('\n'));
    assert.deepEqual(lines, result.decisions);
    assert.ok(existsSync(join(out, 'classifier', 'model.json')) && existsSync(join(out, 'classifier', 'weights.bin')));
    assert.deepEqual(readdirSync(out).filter((f) => f.startsWith('.')), []);
  });

  test('without a VAE of the user\'s: trains one on the fit part only, writes it as ONNX, scores ELBO and S(x) with it', async () => {
    const out = tempDir('fit-vae-');
    const vaeProgress: NonNullable<FitProgress['vae']>[] = [];
    const result = await fitPair({
      classifier: models.zoo.classifier,
      data: [data],
      out,
      scaling: { range: [0, 255] },
      vaeEpochs: 3,
      seed: 4,
      onProgress: (p) => {
        if (p.phase === 'training VAE' && p.vae) vaeProgress.push(p.vae);
      },
    });
    assert.deepEqual(result.parts, { fit: 360, calibration: 360, check: 80 });
    const training = result.manifest.vae!.training!;
    // The fit part and nothing else: 90% to train, 10% for the held-out ELBO.
    assert.deepEqual([training.trainImages, training.heldOutImages, training.epochs, training.seed], [324, 36, 3, 4]);
    assert.equal(training.lossCurve.length, 3);
    assert.ok(training.heldOutElbo < 0 && training.heldOutElbo > -250, String(training.heldOutElbo));
    assert.deepEqual(vaeProgress.at(-1), { ...vaeProgress.at(-1)!, epoch: 3, epochs: 3 });
    assert.ok(vaeProgress.every((p) => p.secondsLeft >= 0 && Number.isFinite(p.loss)));
    assert.deepEqual([result.manifest.vae!.path, result.manifest.vae!.encoder!.path, result.manifest.vae!.decoder!.path], ['vae.onnx', 'vae-encoder.onnx', 'vae-decoder.onnx']);
    for (const f of ['vae.onnx', 'vae-encoder.onnx', 'vae-decoder.onnx']) assert.ok(existsSync(join(out, f)), f);
    // fit owns them: a later --force replaces them.
    for (const f of ['vae.onnx', 'vae-encoder.onnx', 'vae-decoder.onnx']) assert.ok(result.manifest.fit!.files!.includes(f), f);
    assert.deepEqual(result.manifest.vae!.likelihood, { type: 'bernoulli' });
    // The classifier is 28×28 grey: the VAE takes the same image, so it has no size of its own.
    assert.equal(result.manifest.vae!.width, undefined);
    assert.ok(result.decisions.some((d) => /^trained the VAE: 3 epochs in .* held-out ELBO -\d+\.\d+ nats/.test(d)), result.decisions.join('\n'));
    const elbo = result.heldOutScores.find((s) => s.detector === 'elbo')!;
    const complexity = result.heldOutScores.find((s) => s.detector === 'complexity')!;
    assert.equal(elbo.calibration.length, 360);
    assert.ok(elbo.check.every(Number.isFinite) && complexity.check.every(Number.isFinite));
    assert.ok(result.heldOutFalseAlarmRate <= 0.05, String(result.heldOutFalseAlarmRate));
    // The PairInfo line for info and the panels.
    const { OodEngine } = await import('../../../src/inference/engine');
    const engine = await OodEngine.create({ pair: out });
    try {
      assert.match(engine.info.vaeTraining!, /^VAE trained by fit on 324 images: 3 epochs in \d+ s \(\d+ images\/s\), loss [\d.]+ → [\d.]+ nats; held-out ELBO -[\d.]+ nats/);
    } finally {
      await engine.dispose();
    }
  });

  test('a cancel while the VAE trains leaves nothing behind', async () => {
    const out = tempDir('fit-vae-cancel-');
    const controller = new AbortController();
    await assert.rejects(
      fitPair({
        classifier: models.zoo.classifier,
        data: [data],
        out,
        scaling: { range: [0, 255] },
        signal: controller.signal,
        onProgress: (p) => {
          if (p.phase === 'training VAE' && p.done > 0) controller.abort();
        },
      }),
      (err: Error) => err instanceof FitError && /fit was cancelled; nothing was written/.test(err.message),
    );
    assert.deepEqual(readdirSync(out), []);
  });
});

describe('the --out folder: fit touches only files it wrote (issue 22, audit items 1 and 11)', () => {
  let models: Awaited<ReturnType<typeof thirdPartyModels>>;
  let data: string;
  before(async () => {
    models = await thirdPartyModels();
    data = writeMnistIdx(tempDir('fit-out-data-'), 'd', 0, 500).images;
  });

  test("a folder without a pair: the user's classifier/ and calibration.json are refused by name and left as they were", async () => {
    const out = tempDir('fit-foreign-');
    mkdirSync(join(out, 'classifier'));
    writeFileSync(join(out, 'classifier', 'notes.txt'), 'mine');
    writeFileSync(join(out, 'calibration.json'), '{"mine": true}');
    for (const force of [false, true]) {
      await assert.rejects(
        fitPair({ classifier: models.tfjsSequential.classifier, data: [data], trainVae: false, out, force, forceReason: force ? 'even so' : undefined }),
        (err: Error) => err instanceof FitError && /--out .*: fit would replace "calibration\.json", "classifier", which fit did not write; nothing was touched/.test(err.message),
      );
    }
    assert.equal(readFileSync(join(out, 'classifier', 'notes.txt'), 'utf8'), 'mine');
    assert.equal(readFileSync(join(out, 'calibration.json'), 'utf8'), '{"mine": true}');
    assert.deepEqual(readdirSync(out).sort(), ['calibration.json', 'classifier']);
  });

  test('--force replaces a pair fit wrote (its files recorded), but not one written by hand', async () => {
    const out = tempDir('fit-again-');
    const first = await fitPair({ classifier: models.tfjsSequential.classifier, data: [data], trainVae: false, out });
    assert.deepEqual([...first.manifest.fit!.files!].sort(), ['calibration.json', 'classifier', 'features-knn.f16', 'features-layers.f32', 'features-mahalanobis.f32', 'features.json', 'ood-pair.json', 'split.json']);
    await assert.rejects(fitPair({ classifier: models.tfjsSequential.classifier, data: [data], trainVae: false, out }), /already holds a pair \(ood-pair\.json\); choose another --out folder or pass --force/);
    const second = await fitPair({ classifier: models.tfjsSequential.classifier, data: [data], trainVae: false, out, force: true, seed: 3 });
    assert.equal(second.manifest.fit!.seed, 3);
    const manual = tempDir('fit-manual-');
    writeFileSync(join(manual, 'ood-pair.json'), JSON.stringify({ name: 'by hand', input: {}, classifier: { path: 'c.onnx', format: 'onnx', outputKind: 'logits', labels: ['a', 'b'] } }));
    await assert.rejects(fitPair({ classifier: models.tfjsSequential.classifier, data: [data], trainVae: false, out: manual, force: true }), /its ood-pair\.json was not written by ood-lens fit, and --force replaces only pairs fit wrote/);
  });

  test("a killed fit's staging folder is removed on the next run and is never a pair to offer", async () => {
    const out = tempDir('fit-stale-');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!; // a process that has ended
    const stale = join(out, `${STAGING_PREFIX}${dead}-1`);
    mkdirSync(stale);
    writeFileSync(join(stale, 'ood-pair.json'), '{}');
    assert.equal(isStagingPath(join(stale, 'ood-pair.json')), true);
    assert.equal(isStagingPath(join(out, 'ood-pair.json')), false);
    const lines: string[] = [];
    await fitPair({ classifier: models.tfjsSequential.classifier, data: [data], trainVae: false, out, onDecision: (l) => lines.push(l) });
    assert.ok(lines.some((l) => l.includes(`removed ${STAGING_PREFIX}${dead}-1, the staging folder of a fit that did not finish`)), lines.join('\n'));
    assert.equal(existsSync(stale), false);
    // A running fit's staging folder (this process) is left alone.
    const live = join(out, `${STAGING_PREFIX}${process.pid}-1`);
    mkdirSync(live);
    assert.deepEqual(removeStaleStaging(out), []);
    assert.equal(existsSync(live), true);
  });
});

test("fit's errors about its draft pair name the flag and the --out folder, not the manifest field or the staging folder", async () => {
  const { inFitTerms } = await import('../../../src/inference/fit/fit');
  const staging = '/data/pair/.ood-lens-fit-123-4';
  assert.equal(
    inFitTerms(`${staging}/ood-pair.json: classifier.mean has 3 value(s); set input.width/input.height to 28, vae.range too`, staging, '/data/pair'),
    '/data/pair/ood-pair.json: --mean has 3 value(s); set --size to 28, --vae-range too',
  );
});
