/**
 * Issue 15 items 7 and 11: the numeric settings a workspace could abuse are bounded in code, with the same
 * bounds as package.json's schema, and the shared cache's bound ignores workspace values.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { AUTO_SCORE_MAX_ROWS, boundedInteger, CACHE_MAX_ENTRIES, cacheMaxEntries } from '../../src/providers/settingsBounds';

const properties = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')).contributes.configuration.properties;

test('package.json states the bounds the code enforces', () => {
  for (const [key, bounds] of [['oodLens.manifest.autoScoreMaxRows', AUTO_SCORE_MAX_ROWS], ['oodLens.cache.maxEntries', CACHE_MAX_ENTRIES]] as const) {
    const p = properties[key];
    assert.deepEqual({ default: p.default, minimum: p.minimum, maximum: p.maximum }, bounds, key);
  }
  assert.equal(properties['oodLens.cache.maxEntries'].scope, 'machine', 'the shared cache bound is not a workspace setting');
});

test('values are clamped, non-numbers give the default', () => {
  assert.equal(boundedInteger(1e12, AUTO_SCORE_MAX_ROWS), 10_000);
  assert.equal(boundedInteger(-5, AUTO_SCORE_MAX_ROWS), 0);
  assert.equal(boundedInteger(150.7, AUTO_SCORE_MAX_ROWS), 150);
  assert.equal(boundedInteger('100000', AUTO_SCORE_MAX_ROWS), 200);
  assert.equal(boundedInteger(Number.POSITIVE_INFINITY, AUTO_SCORE_MAX_ROWS), 200);
  assert.equal(boundedInteger(Number.NaN, CACHE_MAX_ENTRIES), 200_000);
});

test('a workspace cannot wipe the shared cache: only the user value counts, and at least 1,000', () => {
  assert.equal(cacheMaxEntries({ defaultValue: 200_000, globalValue: undefined, workspaceValue: 1 } as never), 200_000);
  assert.equal(cacheMaxEntries({ defaultValue: 200_000, globalValue: 1 }), 1_000);
  assert.equal(cacheMaxEntries({ defaultValue: 200_000, globalValue: 50_000 }), 50_000);
  assert.equal(cacheMaxEntries(undefined), 200_000);
});
