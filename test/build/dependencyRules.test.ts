import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { REPO, tempDir } from '../helpers';

// The import rules live in .dependency-cruiser.cjs (issue 24); these tests run dependency-cruiser's own CLI with it.
const CLI = join(REPO, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
const CONFIG = join(REPO, '.dependency-cruiser.cjs');

/** Runs the rules over `src` in `cwd`; returns the violations as "rule: from → to" lines (none: []). */
function violations(cwd: string): string[] {
  let out: string;
  try {
    out = execFileSync(process.execPath, [CLI, 'src', '--config', CONFIG, '--output-type', 'json'], { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  } catch (err) {
    // Violations of severity "error" make the CLI exit non-zero with the same JSON on stdout.
    out = (err as { stdout?: string }).stdout ?? '';
    if (!out) throw err;
  }
  const result = JSON.parse(out) as { summary: { violations: { rule: { name: string }; from: string; to: string }[] } };
  return result.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();
}

test('src/ keeps its import rules: no circles, the engine plain Node, its layers one way, webview scripts on src/shared only', () => {
  assert.deepEqual(violations(REPO), []);
});

test('the rules catch a circle, an engine layer importing upwards, the engine importing vscode, and a webview script importing the host', () => {
  const dir = tempDir('depcruise-');
  const files: Record<string, string> = {
    'src/inference/io/files.ts': "import { schedule } from '../pipeline/batchScheduler';\nexport const list = () => schedule;\n",
    'src/inference/pipeline/batchScheduler.ts': "import { list } from '../io/files';\nexport const schedule = () => list;\n",
    'src/inference/pair/pair.ts': "import type { ImageResult } from '../engineTypes';\nimport { score } from '../detectors/scores';\nexport const load = (r: ImageResult) => score(r);\n",
    'src/inference/detectors/scores.ts': 'export const score = (x: unknown) => x;\n',
    'src/inference/detectors/oodDetectors.ts': "import type { Load } from '../pipeline/types';\nimport { load } from '../pair/pair';\nexport const detect: Load = load;\n",
    'src/inference/pipeline/types.ts': 'export type Load = (x: never) => unknown;\n',
    'src/inference/engineTypes.ts': 'export interface ImageResult { path: string }\n',
    'src/inference/engine.ts': "import * as vscode from 'vscode';\nexport const e = vscode;\n",
    'src/providers/panel.ts': 'export const panel = 1;\n',
    'src/webviews/ui/page.ts': "import { panel } from '../../providers/panel';\nexport const page = panel;\n",
    'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'commonjs', target: 'es2022', strict: true }, include: ['src'] }),
  };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const found = violations(dir);
  const has = (rule: string, from: string, to: string) => assert.ok(found.includes(`${rule}: ${from} → ${to}`), `expected ${rule}: ${from} → ${to} in\n${found.join('\n')}`);
  has('no-circular', 'src/inference/io/files.ts', 'src/inference/pipeline/batchScheduler.ts');
  has('inference-layer-io', 'src/inference/io/files.ts', 'src/inference/pipeline/batchScheduler.ts');
  has('inference-layer-pair', 'src/inference/pair/pair.ts', 'src/inference/detectors/scores.ts');
  has('inference-no-vscode', 'src/inference/engine.ts', 'vscode');
  has('webview-ui-imports-only-shared', 'src/webviews/ui/page.ts', 'src/providers/panel.ts');
  // Allowed: a type-only import of a higher layer (detectors → pipeline types), engineTypes from any layer, and downward imports.
  assert.ok(!found.some((v) => v.includes('oodDetectors.ts → src/inference/pipeline/types.ts')), found.join('\n'));
  assert.ok(!found.some((v) => v.includes('→ src/inference/engineTypes.ts')), found.join('\n'));
  assert.ok(!found.some((v) => v.includes('oodDetectors.ts → src/inference/pair/pair.ts')), found.join('\n'));
});
