/** The pair manifest's JSON Schema: one file, used by ajv and by VS Code, every field documented. */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Ajv from 'ajv';
import { pairManifestSchema, parsePairManifest } from '../../../src/inference/pair/manifest';
import { REPO } from '../../helpers';

const schemaPath = join(REPO, 'schemas', 'ood-pair.schema.json');
const schema = JSON.parse(readFileSync(schemaPath, 'utf8'));

test('the validator uses the shipped schema file, and VS Code is pointed at the same file', () => {
  assert.deepEqual(pairManifestSchema, schema);
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  const entry = pkg.contributes.jsonValidation.find((j: { url: string }) => j.url === './schemas/ood-pair.schema.json');
  assert.ok(entry, 'contributes.jsonValidation has the schema');
  assert.ok(entry.fileMatch.includes('ood-pair.json'));
  assert.match(readFileSync(join(REPO, '.vscodeignore'), 'utf8'), /^!schemas\/ood-pair\.schema\.json$/m);
  // A strict draft-07 validator compiles it too (VS Code's is not ajv).
  new Ajv({ strict: false }).compile(schema);
});

test('every built-in manifest validates against it', () => {
  for (const pair of readdirSync(join(REPO, 'models'))) {
    for (const f of readdirSync(join(REPO, 'models', pair)).filter((n) => /^ood-pair.*\.json$/.test(n))) {
      parsePairManifest(readFileSync(join(REPO, 'models', pair, f), 'utf8'), f);
    }
  }
});

/** Every field path in the schema (`classifier.outputKind`, `vae.encoder.outputs.mu`, …). */
function fieldPaths(node: any, prefix: string, out: string[]): string[] {
  const resolved = node.$ref ? schema.definitions[node.$ref.split('/').pop()] : node;
  for (const [key, child] of Object.entries<any>(resolved.properties ?? {})) {
    if (key === '$schema') continue;
    const path = prefix ? `${prefix}.${key}` : key;
    out.push(path);
    fieldPaths(child, path, out);
  }
  return out;
}

test('the README documents every field and every value of the schema', () => {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Bring your own model'));
  assert.ok(section.length > 100, 'README has a "Bring your own model" section');
  const missing = fieldPaths(schema, '', []).filter((p) => !section.includes(`\`${p}\``));
  assert.deepEqual(missing, []);
  const values = JSON.stringify(schema).match(/"enum":\[[^\]]*\]/g)!.flatMap((e) => JSON.parse(e.slice(7)));
  const undocumented = [...new Set(values)].filter((v) => !section.includes(typeof v === 'string' ? `\`${v}\`` : String(v)));
  assert.deepEqual(undocumented, []);
});
