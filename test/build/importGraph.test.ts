import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { REPO } from '../helpers';

const SRC = join(REPO, 'src');

/** Every relative import of every module under src/, type-only and dynamic ones included. */
function importGraph(): Map<string, string[]> {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.tsx?$/.test(entry)) files.push(path);
    }
  };
  walk(SRC);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const deps: string[] = [];
    for (const { fileName } of info.importedFiles) {
      if (!fileName.startsWith('.')) continue;
      const base = resolve(dirname(file), fileName);
      const found = [`${base}.ts`, `${base}.tsx`, join(base, 'index.ts')].find(existsSync);
      if (found) deps.push(found);
    }
    graph.set(file, deps);
  }
  return graph;
}

/** Strongly connected components with more than one module (Tarjan): each is an import cycle. */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(relative(SRC, w));
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

test('src/ has no import cycles (type-only and dynamic imports count)', () => {
  assert.deepEqual(cycles(importGraph()), []);
});

test('the layers import downwards only: the engine never imports VS Code code, webviews never import providers', () => {
  const wrong: string[] = [];
  for (const [file, deps] of importGraph()) {
    const from = relative(SRC, file);
    for (const dep of deps.map((d) => relative(SRC, d))) {
      if (from.startsWith('inference/') && /^(providers|webviews|worker|services|cli)\//.test(dep)) wrong.push(`${from} → ${dep}`);
      if (from.startsWith('webviews/') && dep.startsWith('providers/')) wrong.push(`${from} → ${dep}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('the cycle finder finds a cycle (so that an empty answer means something)', () => {
  const a = '/x/a.ts';
  const b = '/x/b.ts';
  assert.equal(cycles(new Map([[a, [b]], [b, [a]]])).length, 1);
  assert.equal(cycles(new Map([[a, [b]], [b, []]])).length, 0);
});
