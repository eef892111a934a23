/** The Create Pair flow's answers (no vscode): scaling presets and parser, class names, folders, model facts, the fit request. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ModelFacts } from '../../src/inference/fit/modelInspection';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildFitRequest,
  paddingOffer,
  declaredSize,
  defaultSize,
  describeDeclared,
  describeImageSizes,
  firstMissingFolder,
  scalingWords,
  sizeConflict,
  vaeTrainingEstimate,
  defaultPairFolder,
  describeScaling,
  isModelFile,
  likelihoodSpec,
  modelFactLines,
  modelProblem,
  modelStem,
  parseLabels,
  parseScaling,
  parseSize,
  withClassOutput,
  presetScaling,
  resolvePairFolder,
  scalingPresets,
} from '../../src/providers/createPairOptions';

const facts = (over: Partial<ModelFacts> = {}): ModelFacts => ({
  path: '/m/mnist-8.onnx',
  format: 'onnx',
  backend: 'onnxruntime-node',
  inputs: [{ name: 'Input3', shape: [1, 1, 28, 28], dtype: 'float32' }],
  outputs: [{ name: 'Plus214_Output_0', shape: [1, 10], dtype: 'float32' }],
  image: { name: 'Input3', width: 28, height: 28, channels: 1, layout: 'NCHW', staticBatch: 1 },
  imageError: null,
  imageNeeds: [],
  classOutput: { name: 'Plus214_Output_0', classes: 10, kind: 'logits' },
  classOutputError: null,
  classCandidates: [{ name: 'Plus214_Output_0', classes: 10, kind: 'logits' }],
  ...over,
});

describe('input scaling', () => {
  test('presets: [0,1], 0–255, [−1,1], ImageNet (RGB per channel, grey averaged), custom asks', () => {
    assert.deepEqual(scalingPresets(3).map((p) => p.id), ['unit', 'raw', 'symmetric', 'imagenet', 'custom']);
    assert.deepEqual(presetScaling('unit', 1), { range: [0, 1] });
    assert.deepEqual(presetScaling('raw', 1), { range: [0, 255] });
    assert.deepEqual(presetScaling('symmetric', 3), { range: [-1, 1] });
    assert.deepEqual(presetScaling('imagenet', 3), { range: [0, 1], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
    assert.deepEqual(presetScaling('imagenet', 1), { range: [0, 1], mean: [0.449], std: [0.226] });
    assert.equal(presetScaling('custom', 3), undefined);
    // The grey ImageNet preset says what it uses.
    assert.match(scalingPresets(1).find((p) => p.id === 'imagenet')!.description, /0\.449.*0\.226/);
  });

  test('custom: key=value parts in any order, range defaulting to 0,1', () => {
    assert.deepEqual(parseScaling('range=0,1 mean=0.1307 std=0.3081', 1), { ok: true, value: { range: [0, 1], mean: [0.1307], std: [0.3081] } });
    assert.deepEqual(parseScaling('std=0.5;mean=0.5', 1), { ok: true, value: { range: [0, 1], mean: [0.5], std: [0.5] } });
    assert.deepEqual(parseScaling('range=0,255', 3), { ok: true, value: { range: [0, 255] } });
    // One value stands for all three channels: the manifest gets one per channel (issue 25: fit refused one).
    assert.deepEqual(parseScaling('mean=0.5,0.4,0.3 std=0.2', 3), { ok: true, value: { range: [0, 1], mean: [0.5, 0.4, 0.3], std: [0.2, 0.2, 0.2] } });
    assert.deepEqual(parseScaling('range=0,1 mean=0.5 std=0.5', 3), { ok: true, value: { range: [0, 1], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } });
    assert.deepEqual(parseScaling('RANGE: -1, 1  mean = 0.5', 1), { ok: true, value: { range: [-1, 1], mean: [0.5] } });
  });

  test('custom: each mistake is named with its fix', () => {
    const error = (text: string, channels: 1 | 3 = 1) => {
      const r = parseScaling(text, channels);
      assert.equal(r.ok, false, `${text} should be refused`);
      return r.ok ? '' : r.error;
    };
    assert.match(error(''), /e\.g\. range=0,1/);
    assert.match(error('range=1,0'), /^range: the low end must be below the high end \(got 1,0\)/);
    assert.match(error('range=0'), /^range: 1 value\(s\) given; give 2/);
    assert.match(error('std=0'), /^std: every value must be above 0/);
    assert.match(error('std=-1,2,3', 3), /^std: every value must be above 0/);
    assert.match(error('mean=0.5,0.5,0.5'), /^mean: the model takes grey images \(1 channel\): give one value/);
    assert.match(error('mean=0.5,0.5', 3), /^mean: the model takes RGB images \(3 channels\): give one value for all three, or three values \(R, G, B\)/);
    assert.match(error('std=0.5,0.5', 3), /^std: the model takes RGB images/);
    // Statistics of 0..255 pixels with the range left at [0, 1]: refused with both fixes.
    assert.match(error('mean=127.5 std=127.5', 3), /^mean: 127\.5 lies outside the range \[0, 1\].*range=0,255.*mean=0\.5/);
    assert.equal(parseScaling('range=0,255 mean=127.5 std=127.5', 3).ok, true);
    assert.match(error('mean=0,5'), /grey images/);
    assert.match(error('mean=abc'), /^mean: "abc" is not a list of numbers/);
    assert.match(error('mean=0.5 mean=0.4'), /^mean is given twice/);
    assert.match(error('scale=2'), /^"scale=2": expected range=LO,HI/);
  });

  test('describeScaling says what happens to a pixel', () => {
    assert.equal(describeScaling({ range: [0, 1], mean: [0.1307], std: [0.3081] }), 'pixels 0..255 → [0, 1], then (x − 0.1307) / 0.3081');
    assert.equal(describeScaling({ range: [0, 255] }), 'pixels 0..255 → [0, 255]');
    assert.equal(describeScaling({ range: [0, 1], std: [0.5, 0.5, 0.5] }), 'pixels 0..255 → [0, 1], then x / (0.5, 0.5, 0.5)');
  });
});

describe('class names', () => {
  test('one per class, trimmed; wrong count, empty and repeated names refused', () => {
    assert.deepEqual(parseLabels(' cat, dog ,bird', 3), { ok: true, value: ['cat', 'dog', 'bird'] });
    assert.deepEqual(parseLabels('cat, dog', 3), { ok: false, error: '2 name(s) given but the model scores 3 classes: give 3, in output order' });
    assert.equal(parseLabels('cat,,bird', 3).ok, false);
    assert.deepEqual(parseLabels('cat, dog, cat', 3), { ok: false, error: '"cat" is given twice: class names must differ' });
  });
});

describe('files and folders', () => {
  test('model files: .onnx and model.json only', () => {
    assert.ok(isModelFile('/a/b/classifier.onnx'));
    assert.ok(isModelFile('/a/b/NET.ONNX'));
    assert.ok(isModelFile('/a/tfjs/model.json'));
    assert.ok(!isModelFile('/a/b/ood-pair.json'));
    assert.ok(!isModelFile('/a/b/weights.bin'));
    assert.equal(modelStem('/a/b/mnist-8.onnx'), 'mnist-8');
    assert.equal(modelStem('/a/my net/model.json'), 'my-net');
  });

  test('default pair folder: <workspace>/pairs/<model>, numbered past existing pairs; beside the model without a workspace', () => {
    const taken = new Set(['/ws/pairs/classifier', '/ws/pairs/classifier-2']);
    assert.equal(defaultPairFolder('/ws/models/classifier.onnx', '/ws', (f) => taken.has(f)), '/ws/pairs/classifier-3');
    assert.equal(defaultPairFolder('/ws/models/other.onnx', '/ws', (f) => taken.has(f)), '/ws/pairs/other');
    assert.equal(defaultPairFolder('/m/net/model.json', undefined, () => false), '/m/net/net-pair');
  });

  test('pair folder as typed: relative to the workspace or absolute', () => {
    assert.deepEqual(resolvePairFolder(' pairs/mine ', '/ws'), { ok: true, value: '/ws/pairs/mine' });
    assert.deepEqual(resolvePairFolder('/tmp/p', '/ws'), { ok: true, value: '/tmp/p' });
    assert.equal(resolvePairFolder('pairs/mine', undefined).ok, false);
    assert.equal(resolvePairFolder('   ', '/ws').ok, false);
  });
});

describe('image size', () => {
  test('WIDTHxHEIGHT, with x, X or ×; sides 1–8192', () => {
    assert.deepEqual(parseSize('224x224'), { ok: true, value: { width: 224, height: 224 } });
    assert.deepEqual(parseSize(' 64 × 32 '), { ok: true, value: { width: 64, height: 32 } });
    assert.deepEqual(parseSize('224'), { ok: false, error: 'type the size as WIDTH×HEIGHT (width first), e.g. 224x224 or 192x48' });
    assert.deepEqual(parseSize('0x10'), { ok: false, error: '0×10: each side must be 1 to 8192 pixels' });
    assert.equal(parseSize('10000x10').ok, false);
  });
});

describe('what was read from the model', () => {
  test('an ONNX-zoo style model: tensors, image with its static batch, classes', () => {
    assert.deepEqual(modelFactLines(facts()), [
      { label: 'input "Input3" [1, 1, 28, 28]', detail: 'float32' },
      { label: 'output "Plus214_Output_0" [1, 10]', detail: 'float32' },
      { label: 'image 28×28 grey, NCHW', detail: 'static batch 1 (runs in chunks of 1, no flag needed)' },
      { label: '10 classes from "Plus214_Output_0"', detail: 'logits (softmax is applied)' },
    ]);
    assert.equal(modelProblem(facts()), null);
  });

  test('what cannot be read is shown with the reason, and stops the flow', () => {
    const flat = facts({ image: null, imageError: 'the classifier\'s input "x" is [?, 784]; OOD Lens feeds 4-d image tensors', classOutput: null });
    const lines = modelFactLines(flat);
    assert.deepEqual(lines.slice(2), [
      { label: 'image input: cannot be read', detail: flat.imageError },
      { label: 'class scores: cannot be told', detail: 'needs the image input first' },
    ]);
    assert.equal(modelProblem(flat), flat.imageError);
    const candidates = [{ name: 'features', classes: 128, kind: 'logits' as const }, { name: 'probs', classes: 10, kind: 'probabilities' as const }];
    const two = facts({ classOutput: null, classOutputError: '2 outputs give several values per image', classCandidates: candidates });
    assert.equal(modelProblem(two), '2 outputs give several values per image');
    // Naming one of them settles it.
    const named = withClassOutput(two, 'probs');
    assert.deepEqual(named.classOutput, candidates[1]);
    assert.equal(modelProblem(named), null);
    assert.throws(() => withClassOutput(two, 'logits'), /no output "logits"/);
  });
});

describe('the fit request', () => {
  const base = { classifier: '/ws/m.onnx', facts: facts(), scaling: { range: [0, 255] as [number, number] }, data: '/ws/digits', out: '/ws/pairs/m' };

  test('classifier-only: names the class output, the pair after its folder, and tells fit not to train a VAE', () => {
    assert.deepEqual(buildFitRequest({ ...base, vae: { kind: 'none' } }), {
      classifier: '/ws/m.onnx',
      data: ['/ws/digits'],
      out: '/ws/pairs/m',
      name: 'm',
      scaling: { range: [0, 255] },
      classifierOutput: 'Plus214_Output_0',
      trainVae: false,
    });
  });

  test('padding: offered for images smaller than a fixed input by one even margin, and passed to fit as --padding', () => {
    assert.equal(paddingOffer({ width: 32, height: 32 }, { sampled: 24, sizes: [{ width: 28, height: 28, count: 24 }] }), 2);
    assert.equal(paddingOffer({ width: 32, height: 32 }, { sampled: 24, sizes: [{ width: 28, height: 28, count: 20 }, { width: 30, height: 30, count: 4 }] }), null, 'images of two sizes');
    assert.equal(paddingOffer({ width: 32, height: 32 }, { sampled: 24, sizes: [{ width: 32, height: 32, count: 24 }] }), null, 'already the input size');
    assert.equal(paddingOffer({ width: 192, height: 48 }, { sampled: 24, sizes: [{ width: 188, height: 40, count: 24 }] }), null, 'other margins on each axis');
    assert.equal(buildFitRequest({ ...base, vae: { kind: 'none' }, padding: 2 }).padding, 2);
    assert.equal('padding' in buildFitRequest({ ...base, vae: { kind: 'none' }, padding: 0 }), false, 'stretched: no --padding');
  });

  test('a VAE trained by fit: no VAE files, no likelihood, fit\'s default (train); the choice says its size and time', () => {
    const request = buildFitRequest({ ...base, vae: { kind: 'train' }, likelihood: { type: 'gaussian', sigma: 0.1 } });
    assert.deepEqual([request.vae, request.encoder, request.trainVae, request.likelihood], [undefined, undefined, undefined, undefined]);
    assert.match(vaeTrainingEstimate({ image: { width: 28, height: 28, channels: 1 } as never }), /^an MLP VAE on 28×28 grey images, trained by fit: about 2 min for 2,000 images, 5 min for 20,000/);
    assert.match(vaeTrainingEstimate({ image: { width: 192, height: 48, channels: 3 } as never }), /on 64×16 RGB images/);
  });

  test('a single VAE with its likelihood; a split VAE; labels and replace', () => {
    // Issue 22: inputs besides the image, fixed to a number, reach fit as --const would.
    assert.deepEqual(buildFitRequest({ ...base, vae: { kind: 'none' }, constants: { temperature: 1 }, layout: 'flat', size: { width: 28, height: 28 } }).constants, { temperature: 1 });
    const single = buildFitRequest({ ...base, vae: { kind: 'single', path: '/ws/vae.onnx' }, likelihood: { type: 'bernoulli' }, labels: ['a', 'b'], force: true });
    assert.equal(single.vae, '/ws/vae.onnx');
    assert.deepEqual(single.likelihood, { type: 'bernoulli' });
    assert.deepEqual(single.labels, ['a', 'b']);
    assert.equal(single.force, true);
    const split = buildFitRequest({ ...base, vae: { kind: 'split', encoder: '/e.onnx', decoder: '/d.onnx' }, likelihood: { type: 'gaussian', sigma: 0.1 } });
    assert.deepEqual([split.vae, split.encoder, split.decoder, split.likelihood], [undefined, '/e.onnx', '/d.onnx', { type: 'gaussian', sigma: 0.1 }]);
    // The layout and size the user gave for a model that leaves them open reach fit.
    const open = buildFitRequest({ ...base, vae: { kind: 'none' }, layout: 'NCHW', size: { width: 224, height: 224 } });
    assert.deepEqual([open.layout, open.size], ['NCHW', { width: 224, height: 224 }]);
    // A likelihood without a VAE is not passed on.
    assert.equal(buildFitRequest({ ...base, vae: { kind: 'none' }, likelihood: { type: 'bernoulli' } }).likelihood, undefined);
  });

  test('Gaussian likelihood needs σ in (0, 1]', () => {
    assert.deepEqual(likelihoodSpec('gaussian', '0.1'), { ok: true, value: { type: 'gaussian', sigma: 0.1 } });
    assert.deepEqual(likelihoodSpec('bernoulli'), { ok: true, value: { type: 'bernoulli' } });
    for (const bad of ['', '0', '-1', '2', 'abc', undefined]) assert.equal(likelihoodSpec('gaussian', bad).ok, false, `σ = ${bad}`);
  });
});

describe('issue 25: the size as width × height, from the images', () => {
  // The text-line model of the issue: [?, 3, ?, ?], trained on 192×48 lines; a README says "48×192" (H × W).
  const lines = { sampled: 24, sizes: [{ width: 192, height: 48, count: 24 }] };

  test('the declared dimensions are read per layout and named in the prompt', () => {
    assert.deepEqual(declaredSize([null, 3, null, null], 'NCHW'), { width: null, height: null });
    assert.deepEqual(declaredSize([null, 3, 48, null], 'NCHW'), { width: null, height: 48 });
    assert.deepEqual(declaredSize([null, 48, null, 3], 'NHWC'), { width: null, height: 48 });
    assert.equal(describeDeclared({ width: null, height: 48 }), 'width free, height 48');
  });

  test("the default is the images' size, or their aspect where the model fixes one side", () => {
    assert.deepEqual(defaultSize(lines, { width: null, height: null }), { width: 192, height: 48 });
    assert.deepEqual(defaultSize(lines, { width: null, height: 32 }), { width: 128, height: 32 });
    assert.deepEqual(defaultSize(lines, { width: 96, height: null }), { width: 96, height: 24 });
    assert.deepEqual(defaultSize({ sampled: 0, sizes: [] }, { width: null, height: null }), null);
    assert.equal(describeImageSizes(lines), '192×48 (all 24 sampled)');
    assert.equal(describeImageSizes({ sampled: 10, sizes: [{ width: 28, height: 28, count: 8 }, { width: 32, height: 32, count: 2 }] }), '28×28 (8 of 10 sampled), 32×32 (2)');
  });

  test('a side the model fixes must be given as declared', () => {
    assert.deepEqual(parseSize('192x48', { width: null, height: 48 }), { ok: true, value: { width: 192, height: 48 } });
    const r = parseSize('48x192', { width: null, height: 48 });
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.error, /^height 192: the model declares height 48 \(width free, height 48\); the size is width × height/);
  });

  test('a size whose aspect contradicts the images is questioned, with the swapped size when that fits', () => {
    assert.equal(sizeConflict({ width: 192, height: 48 }, lines), null);
    assert.equal(sizeConflict({ width: 160, height: 48 }, lines), null, 'within a quarter of the aspect: not questioned');
    assert.match(sizeConflict({ width: 48, height: 192 }, lines)!, /^48×192 is tall, but your images are 192×48 \(wide\): each would be squashed\. Did you mean 192×48\? The size is width × height/);
    assert.match(sizeConflict({ width: 224, height: 224 }, lines)!, /224×224 is square.*use the size the model was trained on/);
    assert.equal(sizeConflict({ width: 48, height: 192 }, { sampled: 0, sizes: [] }), null, 'no image read: nothing to compare');
  });
});

describe('issue 25: scaling in model-card words, remembered answers, leftovers', () => {
  test('presets and custom scalings are said as model cards say them', () => {
    assert.equal(scalingWords({ range: [0, 1] }), 'x/255');
    assert.equal(scalingWords({ range: [0, 255] }), 'x');
    assert.equal(scalingWords({ range: [-1, 1] }), '(x/255 − 0.5)/0.5');
    assert.equal(scalingWords({ range: [0, 1], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] }), '(x/255 − 0.5)/0.5');
    assert.equal(scalingWords({ range: [0, 1], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }), '(x/255 − (0.485, 0.456, 0.406))/(0.229, 0.224, 0.225)');
    const presets = scalingPresets(3);
    assert.match(presets.find((p) => p.id === 'symmetric')!.description, /\(x\/255 − 0\.5\)\/0\.5/);
    assert.match(presets.find((p) => p.id === 'unit')!.description, /^x\/255/);
    assert.match(presets.find((p) => p.id === 'imagenet')!.description, /\(x\/255 − mean\)\/std, mean \(0\.485/);
  });

  test('firstMissingFolder: the topmost folder a mkdir -p would create', () => {
    const root = mkdtempSync(join(tmpdir(), 'ood-i25-'));
    try {
      assert.equal(firstMissingFolder(root, existsSync), undefined);
      assert.equal(firstMissingFolder(join(root, 'pairs', 'text-lines'), existsSync), join(root, 'pairs'));
      mkdirSync(join(root, 'pairs'));
      assert.equal(firstMissingFolder(join(root, 'pairs', 'text-lines'), existsSync), join(root, 'pairs', 'text-lines'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
