import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Ajv from 'ajv';
import { loadPairManifest, ManifestError, pairManifestSchema, parsePairManifest } from '../../../src/inference/pair/manifest';

const valid = {
  name: 'demo',
  input: { width: 32, height: 32, channels: 1, layout: 'NCHW' },
  classifier: { path: 'c.onnx', format: 'onnx', outputKind: 'logits', labels: ['a', 'b'] },
  vae: { path: 'v.onnx', format: 'onnx', outputs: { reconstruction: 'r', mu: 'm', logvar: 'l' }, reconstructionKind: 'logits', likelihood: { type: 'bernoulli' } },
};

function problems(edit: (m: any) => void): string[] {
  const m = structuredClone(valid) as any;
  edit(m);
  try {
    parsePairManifest(JSON.stringify(m), 'ood-pair.json');
  } catch (err) {
    assert.ok(err instanceof ManifestError);
    return err.problems;
  }
  return [];
}

test('a valid manifest parses', () => {
  assert.deepEqual(problems(() => {}), []);
  // Padding, and discretised-logistic decoders with a log-scale output or a constant scale.
  assert.deepEqual(problems((m) => (m.input.padding = 2)), []);
  assert.deepEqual(problems((m) => ((m.vae.likelihood = { type: 'discretized-logistic' }), (m.vae.outputs.logScale = 'log_scale'))), []);
  assert.deepEqual(problems((m) => ((m.vae.likelihood = { type: 'discretized-logistic', scale: 0.02 }), (m.vae.reconstructionKind = 'mean'))), []);
});

test('every invalid manifest names the field', () => {
  const cases: [string, (m: any) => void, RegExp][] = [
    ['missing name', (m) => delete m.name, /^name: is required/],
    ['bad channels', (m) => (m.input.channels = 2), /^input\.channels: must be one of 1, 3/],
    ['bad layout', (m) => (m.input.layout = 'CHW'), /^input\.layout: must be one of/],
    ['negative width', (m) => (m.input.width = -3), /^input\.width:/],
    ['unknown field', (m) => (m.input.colour = true), /^input\.colour: is not a known field/],
    ['bad format', (m) => (m.classifier.format = 'pt'), /^classifier\.format: must be one of "onnx", "tfjs-layers", "tfjs-graph"/],
    ['one label', (m) => (m.classifier.labels = ['x']), /^classifier\.labels:/],
    ['missing outputKind', (m) => delete m.classifier.outputKind, /^classifier\.outputKind: is required/],
    ['bad likelihood', (m) => (m.vae.likelihood.type = 'poisson'), /^vae\.likelihood\.type: must be one of/],
    ['gaussian without sigma', (m) => ((m.vae.likelihood = { type: 'gaussian' }), (m.vae.reconstructionKind = 'mean')), /^vae\.likelihood\.sigma: is required/],
    ['mean with bernoulli', (m) => (m.vae.reconstructionKind = 'mean'), /^vae\.reconstructionKind: "mean" only fits/],
    ['no VAE model', (m) => (delete m.vae.path, delete m.vae.outputs, delete m.vae.format), /^vae: needs either path/],
    ['encoder without decoder', (m) => (m.vae.encoder = { path: 'e.onnx', format: 'onnx', outputs: { mu: 'm', logvar: 'l' } }), /^vae\.decoder: is required/],
    ['samples without split', (m) => (m.vae.samples = 8), /^vae\.samples: needs vae\.encoder and vae\.decoder/],
    ['mean of wrong length', (m) => (m.input.mean = [0.5, 0.5, 0.5]), /^input\.mean: needs 1 value/],
    ['bad background', (m) => (m.input.background = 'white'), /^input\.background:/],
    ['padding too large', (m) => (m.input.padding = 16), /^input\.padding: 16 on each side leaves no room/],
    ['negative padding', (m) => (m.input.padding = -1), /^input\.padding:/],
    ['discretised logistic without a scale', (m) => (m.vae.likelihood = { type: 'discretized-logistic' }), /^vae\.outputs\.logScale: is required for a discretized-logistic likelihood/],
    ['log-scale output with bernoulli', (m) => (m.vae.outputs.logScale = 's'), /^vae\.outputs\.logScale: only a discretized-logistic likelihood/],
    ['split discretised logistic without a decoder scale', (m) => ((m.vae.likelihood = { type: 'discretized-logistic', levels: 256 }), (m.vae.outputs.logScale = 's'), (m.vae.encoder = { path: 'e.onnx', format: 'onnx', outputs: { mu: 'm', logvar: 'l' } }), (m.vae.decoder = { path: 'd.onnx', format: 'onnx', output: 'r' })), /^vae\.decoder\.logScaleOutput: is required/],
    ['too few levels', (m) => (m.vae.likelihood = { type: 'discretized-logistic', scale: 0.01, levels: 1 }), /^vae\.likelihood\.levels:/],
  ];
  for (const [what, edit, expected] of cases) {
    const found = problems(edit);
    assert.ok(found.some((p) => expected.test(p)), `${what}: got ${JSON.stringify(found)}`);
  }
});

test('broken JSON and missing model files are named', () => {
  assert.throws(() => parsePairManifest('{"name": ', 'x/ood-pair.json'), /x\/ood-pair\.json: invalid pair manifest:\n {2}- not valid JSON/);
  const dir = mkdtempSync(join(tmpdir(), 'pair-'));
  writeFileSync(join(dir, 'ood-pair.json'), JSON.stringify(valid));
  assert.throws(() => loadPairManifest(dir), (e: Error) => e instanceof ManifestError && /classifier\.path: file not found: .*c\.onnx/.test(e.message) && /vae\.path: file not found/.test(e.message));
  assert.throws(() => loadPairManifest(join(dir, 'nope')), /no such file or folder/);
});

test('the pair schema is itself valid JSON Schema (the validator skips that check when it compiles it, for start-up time)', () => {
  const ajv = new Ajv({ strict: false });
  assert.equal(ajv.validateSchema(pairManifestSchema), true, JSON.stringify(ajv.errors));
  // A broken schema is caught: the meta-schema check is a real one.
  assert.equal(ajv.validateSchema({ ...pairManifestSchema, type: 'no-such-type' }), false);
});
