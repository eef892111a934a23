import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import Ajv from 'ajv';
import { pairManifestSchema } from '../../../src/inference/pair/manifest';
import validatePrecompiled from '../../../src/inference/pair/manifestValidator.generated';

test('the precompiled manifest validator is the one ajv makes from the schema now (run `node scripts/manifestValidator.mjs` after editing the schema)', async () => {
  const { manifestValidatorSource, validatorPath } = await import('../../../scripts/manifestValidator.mjs');
  assert.equal(readFileSync(validatorPath, 'utf8'), manifestValidatorSource());
});

test('the precompiled validator reports the same problems as ajv compiling the schema at run time', () => {
  const runtime = new Ajv({ allErrors: true, strict: false }).compile(pairManifestSchema);
  const good = JSON.parse(readFileSync('models/mnist/ood-pair.json', 'utf8'));
  const bad = [
    {},
    { ...good, input: { ...good.input, width: 'wide' } },
    { ...good, classifier: { ...good.classifier, format: 'pickle' }, extra: 1 },
    { ...good, vae: { ...good.vae, path: 3 } },
  ];
  assert.equal(validatePrecompiled(good), true);
  assert.equal(runtime(good), true);
  for (const m of bad) {
    assert.equal(validatePrecompiled(m), false);
    assert.equal(runtime(m), false);
    const where = (errors: typeof runtime.errors) => (errors ?? []).map((e) => `${e.instancePath} ${e.keyword} ${e.message}`).sort();
    assert.ok(where(validatePrecompiled.errors).length > 0);
    assert.deepEqual(where(validatePrecompiled.errors), where(runtime.errors));
  }
});
