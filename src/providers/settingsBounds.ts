/**
 * Bounds of the numeric settings that a workspace could otherwise push to harmful values. package.json's
 * schema states the same minimum/maximum (test/providers/settingsBounds.test.ts checks that they agree); the
 * schema only warns in the settings editor, so the code clamps every value it reads. No `vscode` import.
 */

export interface IntegerBounds {
  default: number;
  minimum: number;
  maximum: number;
}

/** `oodLens.manifest.autoScoreMaxRows`: manifests this small score themselves when opened (10,000 images ≈ 10–30 s of CPU). */
export const AUTO_SCORE_MAX_ROWS: IntegerBounds = { default: 200, minimum: 0, maximum: 10_000 };

/**
 * `oodLens.cache.maxEntries`: the score cache shared by every workspace on the machine. At least 1,000 so a
 * setting cannot make it useless; at most 2,000,000 (≈ 1 GB of log and a few hundred MB of memory).
 */
export const CACHE_MAX_ENTRIES: IntegerBounds = { default: 200_000, minimum: 1_000, maximum: 2_000_000 };

/** `value` as an integer within `bounds`; anything that is not a finite number gives the default. */
export function boundedInteger(value: unknown, bounds: IntegerBounds): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return bounds.default;
  return Math.min(bounds.maximum, Math.max(bounds.minimum, Math.floor(value)));
}

/**
 * The cache bound from `inspect('cache.maxEntries')`: only the user's (or remote machine's) value counts.
 * A workspace or folder value is ignored, whatever VS Code's scope handling does with it, so that no
 * workspace can shrink — and so empty — the cache all workspaces share.
 */
export function cacheMaxEntries(inspected: { globalValue?: unknown; defaultValue?: unknown } | undefined): number {
  return boundedInteger(inspected?.globalValue ?? inspected?.defaultValue, CACHE_MAX_ENTRIES);
}
