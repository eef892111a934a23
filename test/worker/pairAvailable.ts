/**
 * Whether the test pair (OOD_LENS_TEST_PAIR_DIR, default models/mnist) is complete enough to test against:
 * a reason to skip while it is absent or still being trained, undefined when it is ready. A manifest that is
 * broken for other reasons is not skipped: the tests then fail and show why.
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadPairManifest, ManifestError } from '../../src/inference/pair/manifest';

export function pairSkipReason(pairDir: string, repoRoot: string): string | undefined {
  const shown = relative(repoRoot, pairDir) || pairDir;
  if (!existsSync(join(pairDir, 'ood-pair.json'))) return `${shown}/ood-pair.json is absent (the built-in pair is not trained yet)`;
  try {
    const { manifest } = loadPairManifest(pairDir);
    if (!manifest.calibration) return `${shown} is not calibrated yet (no "calibration" in ood-pair.json; training still running?)`;
  } catch (err) {
    if (err instanceof ManifestError && err.problems.every((p) => p.includes('file not found'))) {
      return `${shown} is incomplete (training still running?): ${err.problems.join('; ')}`;
    }
  }
  return undefined;
}
