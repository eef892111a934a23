/**
 * `npm run bench`: throughput, latency and memory of OOD Lens on this machine. Prints a table and appends
 * it, with machine details, to BENCHMARKS.md. A benchmark, not a test: nothing here asserts a timing.
 *   npm run bench [-- --quick]     (--quick: 2,000 MNIST images, no 100k run)
 *   npm run bench -- --knn-only     (only the KNN search cost)
 *   npm run bench -- --sizes-only   (only bench/modelSizes.ts: the built-in pair and a 224×224 RGB classifier, without and with
 *                                    the VAE fit trains; whole process vs bound)
 *   npm run bench -- --byom-only    (only "bring your own model": bench/byom.ts's fit → score of each
 *                                    third-party-style model; --byom-fit N / --byom-score N set the image counts,
 *                                    default 2,000 / 2,000 as bench/byom.ts (--quick 500 / 500); --no-byom leaves it out)
 */
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { appendFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { OodEngine } from '../src/inference/engine';
import { expandInputs, walkImages } from '../src/inference/io/files';
import { idxImages, readIdxFile } from '../src/inference/io/idx';
import type { KnnDetector } from '../src/inference/detectors/oodDetectors';
import { builtInPairDir } from '../src/inference/pair/pair';
import { toModelImage } from '../src/inference/image/preprocess';
import { FIXTURES, MNIST_TEST_IMAGES, REPO } from '../test/helpers';

const quick = process.argv.includes('--quick');
/** The value after `--name` on the command line (parseArgs would refuse the flags the other modes take). */
const flagValue = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const CACHE = join(REPO, '.tmp', 'bench');
const MNIST_DIR = join(CACHE, 'mnist-png');
const PHOTO_DIR = join(CACHE, 'photos');
const BIG_DIR = join(CACHE, 'mnist-100k');
const rows: [string, string][] = [];
const log = (s: string) => process.stderr.write(s + '\n');
const rate = (n: number, ms: number) => `${((n * 1000) / ms).toFixed(0)} images/s`;

async function makeMnistFolder(count: number) {
  mkdirSync(MNIST_DIR, { recursive: true });
  if (readdirSync(MNIST_DIR).length >= count) return;
  log(`writing ${count} MNIST test PNGs to ${MNIST_DIR}…`);
  const images = idxImages(readIdxFile(MNIST_TEST_IMAGES));
  for (let i = 0; i < count; i++) {
    const png = await sharp(Buffer.from(images.image(i)), { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('b-w').png().toBuffer();
    writeFileSync(join(MNIST_DIR, `${String(i).padStart(5, '0')}.png`), png);
  }
}

async function makePhotos(count: number) {
  mkdirSync(PHOTO_DIR, { recursive: true });
  if (readdirSync(PHOTO_DIR).length >= count) return;
  log(`writing ${count} 1024×768 JPEG photos to ${PHOTO_DIR}…`);
  const sources = ['astronaut.png', 'cat.png', 'hen.png', 'rooster.png'].map((f) => join(FIXTURES, f));
  for (let i = 0; i < count; i++) {
    // Vary crop, flip and tint so that no two files are the same.
    const meta = await sharp(sources[i % 4]).metadata();
    const w = Math.max(64, Math.floor(meta.width! * (0.6 + 0.4 * ((i * 37) % 100) / 100)));
    const h = Math.max(64, Math.floor(meta.height! * (0.6 + 0.4 * ((i * 53) % 100) / 100)));
    let img = sharp(sources[i % 4]).flatten({ background: '#ffffff' }).extract({ left: (i * 7) % (meta.width! - w + 1), top: (i * 11) % (meta.height! - h + 1), width: w, height: h }).resize(1024, 768, { fit: 'fill' }).tint({ r: 128 + (i % 100), g: 128, b: 200 - (i % 100) });
    if (i % 2) img = img.flop();
    writeFileSync(join(PHOTO_DIR, `${String(i).padStart(4, '0')}.jpg`), await img.jpeg({ quality: 88 }).toBuffer());
  }
}

function makeBigFolder(count: number) {
  mkdirSync(BIG_DIR, { recursive: true });
  if (readdirSync(BIG_DIR).length >= count) return;
  log(`linking ${count} files into ${BIG_DIR}…`);
  const files = readdirSync(MNIST_DIR);
  for (let i = 0; i < count; i++) {
    const target = join(BIG_DIR, `${String(i).padStart(6, '0')}.png`);
    if (!existsSync(target)) linkSync(join(MNIST_DIR, files[i % files.length]), target);
  }
}

/** The CLI itself (`ood-lens score <folder> --format csv --out …`, the bundle) in a new process: wall time and peak RSS. */
function cliRun(folder: string): { images: number; seconds: number; maxRssMb: number } {
  const start = performance.now();
  const r = spawnSync(process.execPath, ['-r', join(REPO, 'bench', 'rss-preload.cjs'), join(REPO, 'bin', 'ood-lens.js'), 'score', folder, '--format', 'csv', '--out', join(CACHE, 'out.csv')], { cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 20 });
  const seconds = (performance.now() - start) / 1000;
  if (r.status !== 0) throw new Error(`ood-lens score ${folder} exited with ${r.status}: ${r.stderr}`);
  const rss = /OOD_LENS_MAX_RSS_MB ([\d.]+)/.exec(r.stderr);
  const written = /wrote (\d+) results/.exec(r.stderr);
  if (!rss || !written) throw new Error(`unexpected output from ood-lens: ${r.stderr}`);
  return { images: Number(written[1]), seconds, maxRssMb: Number(rss[1]) };
}

/**
 * The KNN detector's search alone (features in, k-th neighbour distances out), as the engine runs it: one
 * onnxruntime Gemm + TopK call per batch over the pair's stored features. Features of real MNIST test
 * images, read once; the median of several passes.
 */
async function knnCost(): Promise<void> {
  const engine = await OodEngine.create({ provider: 'cpu', preprocessWorkers: 0, complexity: false, pipeline: 'overlapped' });
  try {
    const knn = engine.detectors.find((d) => d.test === 'knn') as KnnDetector | undefined;
    if (!knn?.stored) {
      rows.push(['KNN search', 'the built-in pair has no KNN detector']);
      return;
    }
    const images = idxImages(readIdxFile(MNIST_TEST_IMAGES));
    const inputs = Array.from({ length: 2048 }, (_, i) => ({ path: `t10k#${i}`, source: { width: 28, height: 28, channels: 1 as const, data: images.image(i) } }));
    const chunks: Float32Array[] = [];
    let dims = 0;
    await engine.extractFeatures(inputs, (b) => {
      dims = b.dims;
      chunks.push(b.features.slice());
    });
    const all = new Float32Array(chunks.reduce((a, c) => a + c.length, 0));
    chunks.reduce((off, c) => (all.set(c, off), off + c.length), 0);
    const n = all.length / dims;
    const stored = knn.stored;
    for (const batch of [64, 256]) {
      const passes: number[] = [];
      for (let pass = 0; pass < 5; pass++) {
        const start = performance.now();
        for (let off = 0; off + batch <= n; off += batch) {
          const features = all.subarray(off * dims, (off + batch) * dims);
          await knn.score({ n: batch, features, featureDims: dims, msp: new Float64Array(0), energy: new Float64Array(0), predictions: new Int32Array(0), elbo: null, complexity: null });
        }
        passes.push((performance.now() - start) / (Math.floor(n / batch) * batch));
      }
      const line = `${median(passes).toFixed(3)} ms per image`;
      log(`KNN search, batch ${batch}: ${line}`);
      rows.push([`KNN search over ${stored.toLocaleString('en-US')} stored features (${dims}-d, float16 on disk, k = ${knn.k}), batch ${batch}, onnxruntime Gemm + TopK`, line]);
    }
  } finally {
    await engine.dispose();
  }
}

/** "Bring your own model" (bench/byom.ts): fit time, score rate and accuracy of each third-party-style model. */
async function byomCost(): Promise<void> {
  const { byomBench, pct } = await import('./byom');
  const fit = Number(flagValue('--byom-fit') ?? (quick ? 500 : 2000));
  const score = Number(flagValue('--byom-score') ?? (quick ? 500 : 2000));
  if (!(Number.isInteger(fit) && fit >= 500 && fit <= 10000 && Number.isInteger(score) && score >= 1 && fit + score <= 10000)) {
    throw new Error(`--byom-fit ${fit} / --byom-score ${score}: fit needs 500–10,000 MNIST test images (its calibration part must reach 200 for a test at 0.5α to fire at α = 0.01) and both together at most 10,000`);
  }
  log(`bring your own model: fit on ${fit} MNIST test images, score ${score} others, per model…`);
  await byomBench(fit, score, (r) => {
    log(`  ${r.name}: fit ${r.fitSeconds.toFixed(1)} s`);
    rows.push([
      `bring your own model: ${r.name} — \`fit\` on ${r.fitImages.toLocaleString('en-US')} images, then score ${score.toLocaleString('en-US')} others`,
      `fit ${r.fitSeconds.toFixed(1)} s (${(r.fitImages / r.fitSeconds).toFixed(0)} images/s), score ${r.scoreImagesPerSecond.toFixed(0)} images/s; accuracy ${pct(r.accuracy)} (fed by hand ${pct(r.referenceAccuracy)}); held-out false alarms ${pct(r.heldOutFalseAlarmRate)} (${r.checkOod} of ${r.checkCount}); ${pct(r.laterOodRate)} of the later digits flagged${r.vaeTraining ? `; VAE training ${r.vaeTraining.imagesPerSecond} images/s (${r.vaeTraining.epochs} epochs in ${r.vaeTraining.seconds} s, ${r.vaeTraining.engine})` : ''}`,
    ]);
  });
}

/** bench/modelSizes.ts: speed at two model sizes, whole process against the bound measured in the same run. */
async function sizesCost(): Promise<void> {
  const { modelSizeBench, sizeTable } = await import('./modelSizes');
  rows.push(...sizeTable(await modelSizeBench(quick)));
}

async function main() {
  if (process.argv.includes('--sizes-only')) {
    await sizesCost();
    const table = ['| measure | result |', '|---|---|', ...rows.map(([a, b]) => `| ${a} | ${b} |`)].join('\n');
    const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
    process.stdout.write(`${machine}\n\n${table}\n`);
    appendFileSync(join(REPO, 'BENCHMARKS.md'), `\n## ${new Date().toISOString()} (model sizes)\n\n${machine}\n\n${table}\n`);
    return;
  }
  if (process.argv.includes('--byom-only')) {
    await byomCost();
    process.stdout.write(rows.map(([a, b]) => `${a}: ${b}`).join('\n') + '\n');
    return;
  }
  await knnCost();
  if (process.argv.includes('--knn-only')) {
    process.stdout.write(rows.map(([a, b]) => `${a}: ${b}`).join('\n') + '\n');
    return;
  }
  const count = quick ? 2000 : 10000;
  await makeMnistFolder(count);
  await makePhotos(quick ? 100 : 500);
  const engine = await OodEngine.create({ provider: 'cpu', batchSize: 64 });
  const info = engine.info;
  log(`pair ${info.name} on ${info.backend} (${info.provider})`);

  // Warm up the sessions (and start the scoring shards, which would otherwise start with the first large input).
  await engine.startScoringShards();
  await engine.scoreAll(expandInputs([MNIST_DIR]), () => {}, {});
  Object.keys(engine.timings).forEach((k) => ((engine.timings as unknown as Record<string, number>)[k] = 0));

  // 1. End to end through the CLI path (listing, reading, preprocessing, both models, scoring, CSV output).
  let t = performance.now();
  let listed = 0;
  for await (const _ of walkImages(MNIST_DIR, false)) listed++;
  const listMs = ((performance.now() - t) * count) / listed;
  const files: string[] = [];
  for await (const f of walkImages(MNIST_DIR, false)) if (files.length < count) files.push(f.path); // the folder may hold more (an earlier full run)
  const { ResultWriter, SummaryCounter } = await import('../src/inference/datasets/output');
  /** The first `count` inputs of the folder, listed as the CLI lists them (the folder may hold more, from an earlier full run). */
  async function* folderInputs() {
    let n = 0;
    for await (const input of expandInputs([MNIST_DIR])) {
      if (n++ >= count) return;
      yield input;
    }
  }
  /** One end-to-end run as `ood-lens score <folder> --format csv` does it: listing, the engine's default pipeline, CSV. */
  const endToEnd = async () => {
    let outputMs = 0;
    const writer = new ResultWriter('csv', info, join(CACHE, 'bench-out.csv'));
    const counter = new SummaryCounter();
    Object.keys(engine.timings).forEach((k) => ((engine.timings as unknown as Record<string, number>)[k] = 0));
    engine.batchCounts.shards = engine.batchCounts.here = 0;
    const start = performance.now();
    await engine.scoreAll(folderInputs(), (r) => {
      const s = performance.now();
      counter.add(r);
      writer.add(r);
      outputMs += performance.now() - s;
    });
    await writer.end(counter.summary(info));
    const ms = performance.now() - start;
    return { ips: (count * 1000) / ms, stages: { ...engine.timings }, outputMs, batches: { ...engine.batchCounts } };
  };
  const first = await endToEnd();
  const where = engine.pipeline === 'sharded' ? `; batches: ${first.batches.shards} on ${engine.activeShards} shards, ${first.batches.here} in-process` : '';
  rows.push([`MNIST folder (${count} PNGs 28×28), end to end, \`${engine.pipeline}\` pipeline (the default${where})`, `${first.ips.toFixed(0)} images/s`]);
  const perImage = (ms: number) => `${((ms * 1000) / count).toFixed(0)} µs/image`;
  rows.push(['  stage: list (timed apart; in the run it is interleaved with scoring, as in the CLI)', perImage(listMs)]);
  // Wall time per stage, summed over the shards: a shard interleaves two batches (one is read and decoded
  // while the other waits for onnxruntime), so the stages overlap and add up to more than the total.
  for (const [stage, ms] of Object.entries(first.stages)) rows.push([`  stage: ${stage}`, perImage(ms)]);
  rows.push(['  stage: output (CSV, on the caller\'s thread)', perImage(first.outputMs)]);
  for (const pipeline of ['overlapped', 'phased'] as const) {
    // The other pipeline schedules, same folder, no output.
    const other = await OodEngine.create({ provider: 'cpu', batchSize: 64, pipeline });
    await other.scoreAll(files.slice(0, 512).map((path) => ({ path })), () => {});
    const s = performance.now();
    await other.scoreAll(folderInputs(), () => {});
    const what = pipeline === 'overlapped' ? 'models on one thread with every core, workers prepare the next batch meanwhile' : 'as overlapped, preprocessing only while the models do not run';
    rows.push([`  same, \`${pipeline}\` pipeline (${what})`, rate(count, performance.now() - s)]);
    await other.dispose();
  }

  // 2. The inference-only bound: pre-decoded batches through both models, best batch size and layout —
  // one session on every core (several thread settings), or data-parallel: one single-threaded session per
  // core in its own thread, all running at once (the layout the sharded pipeline uses).
  const images = await Promise.all(files.slice(0, 2048).map(async (f) => toModelImage(readFileSync(f), engine.pair.inputs.classifier)));
  const dir = builtInPairDir();
  // The built-in pair has a single-model VAE; the bound runs both of its models.
  const vae = engine.pair.manifest.vae;
  if (!vae?.outputs) throw new Error(`the built-in pair's manifest has no single-model VAE (vae.outputs): the inference-only bound needs one`);
  const o = vae.outputs;
  const vaeOutputs = [o.reconstruction, o.mu, o.logvar, ...(o.logScale ? [o.logScale] : [])];
  const feedOf = (bs: number) => {
    const size = 32 * 32;
    const feed = { data: new Float32Array(bs * size), dims: [bs, 1, 32, 32] };
    for (let i = 0; i < bs; i++) for (let k = 0; k < size; k++) feed.data[i * size + k] = images[i % images.length].pixels[k] / 255;
    return feed;
  };
  type Bound = { label: string; bs: number; measure: () => Promise<number>; dispose: () => Promise<void> };
  const { loadOnnx } = await import('../src/inference/backends/onnx');
  const singleSession = async (label: string, sessions: { classifier: import('../src/inference/backends/types').ModelRunner; vae: import('../src/inference/backends/types').ModelRunner }, bs: number, own: boolean): Promise<Bound> => {
    const feed = feedOf(bs);
    const runBoth = async () => {
      await sessions.classifier.run({ image: feed }, ['logits']);
      await sessions.vae.run({ image: feed }, vaeOutputs);
    };
    await runBoth();
    return {
      label,
      bs,
      measure: async () => {
        const reps = Math.max(3, Math.ceil(4096 / bs));
        const start = performance.now();
        for (let r = 0; r < reps; r++) await runBoth();
        return (reps * bs * 1000) / (performance.now() - start);
      },
      dispose: async () => {
        if (!own) return;
        await sessions.classifier.dispose();
        await sessions.vae.dispose();
      },
    };
  };
  const dataParallel = async (members: number, bs: number): Promise<Bound> => {
    const workers = Array.from({ length: members }, () => new Worker(join(REPO, 'test', 'worker', 'tsxWorker.mjs'), {
      workerData: { entry: join(REPO, 'bench', 'boundWorker.ts'), classifier: join(dir, 'classifier.onnx'), vae: join(dir, 'vae.onnx'), inputName: 'image', classifierOutput: 'logits', vaeOutputs, feed: feedOf(bs) },
    }));
    const next = (w: Worker) => new Promise<{ ms: number }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    await Promise.all(workers.map(next));
    return {
      label: `data-parallel: ${members} sessions × 1 thread, one per core`,
      bs,
      measure: async () => {
        const reps = Math.max(3, Math.ceil(4096 / bs));
        const done = workers.map(next);
        workers.forEach((w) => w.postMessage({ reps }));
        const ms = Math.max(...(await Promise.all(done)).map((d) => d.ms));
        return (members * reps * bs * 1000) / ms;
      },
      dispose: async () => void (await Promise.all(workers.map((w) => w.terminate()))),
    };
  };
  const cores = Math.min(cpus().length, 4);
  const layouts: [string, (bs: number) => Promise<Bound>][] = [
    ['engine sessions (threads = cores, no spinning)', (bs) => singleSession('engine sessions (threads = cores, no spinning)', { classifier: engine.pair.classifier, vae: engine.pair.vae! }, bs, false)],
  ];
  for (const [threads, spinning] of [[0, true], [1, true], [2, true]] as const) {
    const label = `one session, ${threads || 'default'} thread${threads === 1 ? '' : 's'}, spinning`;
    layouts.push([label, async (bs) => {
      const options = { provider: 'cpu' as const, threads, spinning };
      return singleSession(label, { classifier: await loadOnnx(join(dir, 'classifier.onnx'), options), vae: await loadOnnx(join(dir, 'vae.onnx'), options) }, bs, true);
    }]);
  }
  if (cores >= 2) layouts.push([`data-parallel: ${cores} sessions × 1 thread, one per core`, (bs) => dataParallel(cores, bs)]);
  let best = { label: '', bs: 0, ips: 0 };
  for (const [label, make] of layouts) {
    const perBatch: string[] = [];
    for (const bs of [16, 32, 64, 128, 256]) {
      const bound = await make(bs);
      const ips = await bound.measure();
      await bound.dispose();
      perBatch.push(`${bs}: ${ips.toFixed(0)}`);
      if (ips > best.ips) best = { label, bs, ips };
    }
    rows.push(['  bound by batch size', `${label} — ${perBatch.join(' · ')}`]);
  }
  const bestLayout = layouts.find(([label]) => label === best.label)![1];
  rows.splice(rows.length - layouts.length, 0, [`inference-only bound (classifier + VAE; best: batch ${best.bs}, ${best.label})`, `${best.ips.toFixed(0)} images/s`]);

  // 3. A naive pipeline: one sharp call per file, batches of 64, the same sessions, no overlap.
  const naive = async () => {
    const start = performance.now();
    for (let s = 0; s < files.length; s += 64) {
      const chunk = files.slice(s, s + 64);
      const imgs = await Promise.all(chunk.map(async (f) => toModelImage(readFileSync(f), engine.pair.inputs.classifier)));
      await engine.scoreImages(imgs, chunk);
    }
    return (count * 1000) / (performance.now() - start);
  };

  // 4. The ratios. This machine's speed drifts by ±25% from minute to minute (all stages together, the models
  // included), so the bound is measured right before and right after each end-to-end run and the ratio is
  // taken against their mean, which cancels a drift that is steady over the few seconds of a round; the
  // median of five rounds is the figure. The naive pipeline follows in each round.
  const rounds: { e2e: number; boundBefore: number; boundAfter: number; naive: number }[] = [];
  const measureBound = async () => {
    const bound = await bestLayout(best.bs);
    try {
      return await bound.measure();
    } finally {
      await bound.dispose();
    }
  };
  for (let round = 0; round < 5; round++) {
    const boundBefore = await measureBound();
    const e2e = (await endToEnd()).ips;
    const boundAfter = await measureBound();
    rounds.push({ e2e, boundBefore, boundAfter, naive: await naive() });
    log(`round ${round + 1}: bound ${boundBefore.toFixed(0)}, end to end ${e2e.toFixed(0)}, bound ${boundAfter.toFixed(0)}, naive ${rounds[round].naive.toFixed(0)} images/s`);
  }
  const boundOf = (r: (typeof rounds)[number]) => (r.boundBefore + r.boundAfter) / 2;
  const fmtRounds = (f: (r: (typeof rounds)[number]) => string) => rounds.map(f).join(' · ');
  rows.push(['rounds: bound before / end to end / bound after / naive (images/s)', fmtRounds((r) => `${r.boundBefore.toFixed(0)} / ${r.e2e.toFixed(0)} / ${r.boundAfter.toFixed(0)} / ${r.naive.toFixed(0)}`)]);
  const boundRatios = rounds.map((r) => r.e2e / boundOf(r));
  const naiveRatios = rounds.map((r) => r.e2e / r.naive);
  rows.push(['end to end / inference bound (median of the rounds; each round, against the mean of its two bounds)', `${(100 * median(boundRatios)).toFixed(0)}% (${boundRatios.map((x) => `${(100 * x).toFixed(0)}%`).join(', ')})`]);
  rows.push(['naive pipeline (sharp per file, batches of 64; median)', `${median(rounds.map((r) => r.naive)).toFixed(0)} images/s`]);
  rows.push(['end to end / naive (median of the rounds; each round)', `${median(naiveRatios).toFixed(1)}× (${naiveRatios.map((x) => `${x.toFixed(1)}×`).join(', ')})`]);

  // 5. Photos: end to end vs sharp's own decode+resize at the same concurrency.
  const photos: string[] = [];
  for await (const f of walkImages(PHOTO_DIR, false)) photos.push(f.path);
  t = performance.now();
  await engine.scoreAll(photos.map((path) => ({ path })), () => {});
  const photoIps = (photos.length * 1000) / (performance.now() - t);
  const spec = engine.pair.inputs.classifier;
  t = performance.now();
  for (let start = 0; start < photos.length; start += 64) {
    // sharp doing exactly the pair's preprocessing (decode, orient, flatten, grey, resize into the field,
    // frame: toModelImage), file read included, 64 at a time — what the engine's photo path cannot beat.
    await Promise.all(photos.slice(start, start + 64).map(async (f) => toModelImage(await readFile(f), spec)));
  }
  const sharpIps = (photos.length * 1000) / (performance.now() - t);
  rows.push([`photos (${photos.length} JPEG 1024×768), end to end`, `${photoIps.toFixed(1)} images/s`]);
  rows.push(['  sharp alone: the same decode + resize + frame, 64 at a time', `${sharpIps.toFixed(1)} images/s (${((100 * photoIps) / sharpIps).toFixed(0)}%)`]);

  // 6. Latency: one image, warm engine; cold start in a fresh process.
  const one = files[0];
  const lat: number[] = [];
  for (let i = 0; i < 60; i++) {
    const s = performance.now();
    await engine.scoreOne({ path: one });
    lat.push(performance.now() - s);
  }
  lat.sort((a, b) => a - b);
  rows.push(['single image, warm engine (path → scores, median / p95)', `${lat[30].toFixed(1)} ms / ${lat[57].toFixed(1)} ms`]);
  const cold = spawnSync(process.execPath, [join(REPO, 'bin', 'ood-lens.js'), 'score', one, '--format', 'json'], { cwd: REPO, encoding: 'utf8' });
  const coldStart = performance.now();
  spawnSync(process.execPath, [join(REPO, 'bin', 'ood-lens.js'), 'score', one, '--format', 'json'], { cwd: REPO, encoding: 'utf8' });
  rows.push(['cold start: `ood-lens score one.png` in a new process (model load included)', cold.status === 0 ? `${(performance.now() - coldStart).toFixed(0)} ms` : `failed: ${cold.stderr.slice(0, 80)}`]);

  // 7. ONNX vs TensorFlow.js (WASM) on the same pair.
  const tfjsManifest = join(builtInPairDir(), 'ood-pair.tfjs.json');
  if (existsSync(tfjsManifest)) {
    const tf = await OodEngine.create({ pair: tfjsManifest, batchSize: 64 });
    const sub = files.slice(0, quick ? 256 : 1024).map((path) => ({ path }));
    await tf.scoreAll(sub.slice(0, 64), () => {});
    t = performance.now();
    await tf.scoreAll(sub, () => {});
    rows.push([`TensorFlow.js (${tf.info.backend}) end to end, ${sub.length} images (the TF.js variant's own detectors, KNN included)`, rate(sub.length, performance.now() - t)]);
    await tf.dispose();
  }
  await engine.dispose();

  // 8. Peak RSS through the CLI path, 10,000 and 100,000 images.
  const r10 = cliRun(MNIST_DIR);
  rows.push([`peak RSS, ${r10.images} images (\`ood-lens score\` in a new process, CSV output; the rate includes start-up)`, `${r10.maxRssMb.toFixed(0)} MB (${rate(r10.images, r10.seconds * 1000)})`]);
  if (!quick) {
    makeBigFolder(100000);
    const r100 = cliRun(BIG_DIR);
    rows.push([`peak RSS, ${r100.images} images`, `${r100.maxRssMb.toFixed(0)} MB (${rate(r100.images, r100.seconds * 1000)})`]);
    // 100,000 links are quick to make again, and left in the tree they slow down anything that walks it
    // (packaging the VSIX took minutes instead of seconds).
    rmSync(BIG_DIR, { recursive: true, force: true });
  }

  // 9. One run against 2 local shard processes (--shard 0/2 and 1/2 at once, then merge) on the same folder:
  // what a job array gains per node is what one process leaves of the machine's cores.
  const { shardRun } = await import('./shards');
  const single = await shardRun(MNIST_DIR, 1, join(CACHE, 'shards'));
  const two = await shardRun(MNIST_DIR, 2, join(CACHE, 'shards'));
  rows.push([`one run vs 2 local shards (\`--shard k/2\` processes at once + \`merge\`), ${single.images} images, start-up included`, `${single.imagesPerSecond.toFixed(0)} vs ${two.imagesPerSecond.toFixed(0)} images/s (${single.scoreSeconds.toFixed(1)} s vs ${two.scoreSeconds.toFixed(1)} s + ${two.mergeSeconds.toFixed(1)} s merge)`]);

  if (!process.argv.includes('--no-byom')) await byomCost();
  if (!process.argv.includes('--no-sizes')) await sizesCost();

  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${info.backend} (${info.provider})`;
  const table = ['| measure | result |', '|---|---|', ...rows.map(([a, b]) => `| ${a} | ${b} |`)].join('\n');
  process.stdout.write(`${machine}\n\n${table}\n`);
  const header = existsSync(join(REPO, 'BENCHMARKS.md')) ? '' : '# Benchmarks\n\nAppended by `npm run bench`; newest last.\n';
  appendFileSync(join(REPO, 'BENCHMARKS.md'), `${header}\n## ${new Date().toISOString()}${quick ? ' (quick)' : ''}\n\n${machine}\n\n${table}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
