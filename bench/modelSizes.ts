/**
 * Speed at two model sizes (issue 23): the built-in MNIST pair and a 224×224 RGB classifier (MobileNetV3-Small
 * with random weights, training/export-mobilenet.py) in two pairs made by `ood-lens fit`: classifier-only, and
 * with the VAE fit trains for a classifier without one (an MLP on 64×64 RGB).
 * For each: `ood-lens score` as a whole new process, 5 times (images/s and peak RSS; the median counts), and the bound measured in
 * the same run before and after each of them — the pair's scorer on pre-decoded images (tensors, models, KNN and
 * Mahalanobis, p-values; no file reading, decoding or resizing), the best of one engine with every thread and
 * one single-threaded engine per core — and their ratio.
 *
 *   npx tsx bench/modelSizes.ts [--quick]        (npm run bench runs it; --quick: no 100,000-image run)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { OodEngine } from '../src/inference/engine';
import { idxImages, readIdxFile } from '../src/inference/io/idx';
import { pairImageSpecs, preparePairBatch } from '../src/inference/image/fastpath';
import { DEFAULT_MAX_INPUT_PIXELS, toModelImage, type ModelImage } from '../src/inference/image/preprocess';
import { FIXTURES, MNIST_TEST_IMAGES, REPO } from '../test/helpers';

const CACHE = join(REPO, '.tmp', 'bench-sizes');
const log = (s: string) => process.stderr.write(s + '\n');

export interface SizeRow {
  name: string;
  images: number;
  imagesPerSecond: number;
  bound: number;
  boundLabel: string;
  maxRssMb: number;
  extra?: string;
}

async function writePngs(dir: string, count: number, make: (i: number) => Promise<Buffer>): Promise<string> {
  mkdirSync(dir, { recursive: true });
  if (readdirSync(dir).length >= count) return dir;
  log(`writing ${count} images to ${dir}…`);
  for (let i = 0; i < count; i++) {
    const name = join(dir, `${String(i).padStart(6, '0')}`);
    const bytes = await make(i);
    writeFileSync(`${name}.${bytes[0] === 0xff ? 'jpg' : 'png'}`, bytes);
  }
  return dir;
}

function mnistPngs(dir: string, count: number, idx = MNIST_TEST_IMAGES): Promise<string> {
  const images = idxImages(readIdxFile(idx));
  return writePngs(dir, count, (i) => sharp(Buffer.from(images.image(i % images.count)), { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('b-w').png().toBuffer());
}

/** Crops of the four fixture photos, varied so that no two files are the same, as PNG or JPEG of the given size. */
async function photoCrops(dir: string, count: number, width: number, height: number, format: 'png' | 'jpeg', offset = 0): Promise<string> {
  const sources = ['astronaut.png', 'cat.png', 'hen.png', 'rooster.png'].map((f) => join(FIXTURES, f));
  const metas = await Promise.all(sources.map((s) => sharp(s).metadata()));
  return writePngs(dir, count, async (n) => {
    const i = n + offset;
    const meta = metas[i % 4];
    const w = Math.max(32, Math.floor(meta.width! * (0.3 + (0.6 * ((i * 37) % 100)) / 100)));
    const h = Math.max(32, Math.floor(meta.height! * (0.3 + (0.6 * ((i * 53) % 100)) / 100)));
    let img = sharp(sources[i % 4]).flatten({ background: '#ffffff' }).extract({ left: (i * 7) % (meta.width! - w + 1), top: (i * 11) % (meta.height! - h + 1), width: w, height: h }).resize(width, height, { fit: 'fill' });
    if (i % 2) img = img.flop();
    return format === 'jpeg' ? img.jpeg({ quality: 88 }).toBuffer() : img.png().toBuffer();
  });
}

/**
 * The 224×224 pair: exported once (needs Debian's python3-torchvision), fitted once with `ood-lens fit` —
 * classifier-only, or with the VAE fit trains (one epoch: its weights are not what is measured, its size is).
 */
async function mobilenetPair(withVae = false): Promise<string> {
  const pair = join(CACHE, withVae ? 'mobilenet-vae-pair' : 'mobilenet-pair');
  if (existsSync(join(pair, 'ood-pair.json'))) {
    // A pair fitted before fit recorded its resize kernel resizes with lanczos3, and one fitted before it recorded
    // what enlarges enlarges with libvips; new fits use bilinear (torchvision's), enlarging in onnxruntime.
    if (JSON.parse(readFileSync(join(pair, 'ood-pair.json'), 'utf8')).input?.enlargeWith) return pair;
    log('the cached 224×224 pair was fitted before fit recorded its resize kernel and what enlarges: fitting it again');
    rmSync(pair, { recursive: true, force: true });
  }
  const model = join(CACHE, 'mobilenet-v3-small.onnx');
  if (!existsSync(model)) {
    mkdirSync(CACHE, { recursive: true });
    const r = spawnSync('/usr/bin/python3', [join(REPO, 'training', 'export-mobilenet.py'), model], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`exporting MobileNetV3-Small failed (it needs Debian's python3-torch, python3-torchvision and python3-onnx: apt-get install python3-torchvision python3-onnx): ${r.stderr.slice(-400)}`);
  }
  const fitData = await photoCrops(join(CACHE, 'fit-crops'), 1500, 64, 64, 'png', 100_000);
  log(`fitting the 224×224 pair (${withVae ? 'training its VAE' : 'classifier only'}, with its feature detectors)…`);
  const vae = withVae ? ['--vae-epochs', '1'] : ['--no-vae'];
  const r = spawnSync(process.execPath, [join(REPO, 'bin', 'ood-lens.js'), 'fit', '--classifier', model, '--data', fitData, '--out', pair, '--mean', '0.485,0.456,0.406', '--std', '0.229,0.224,0.225', '--name', `mobilenet-v3-small-224${withVae ? '-vae' : ''}`, ...vae, '--force=random weights: a speed benchmark, not a classifier'], { cwd: REPO, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ood-lens fit of the 224×224 pair failed: ${r.stderr.slice(-800)}`);
  return pair;
}

/** `ood-lens score FOLDER --pair PAIR --format csv` in a new process: images/s (start-up included) and peak RSS. */
function cliRun(folder: string, pair: string | undefined, extra: string[] = []): { images: number; seconds: number; maxRssMb: number } {
  const args = ['-r', join(REPO, 'bench', 'rss-preload.cjs'), join(REPO, 'bin', 'ood-lens.js'), 'score', folder, ...(pair ? ['--pair', pair] : []), '--format', 'csv', '--out', join(CACHE, 'out.csv'), ...extra];
  const start = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 22 });
  const seconds = (performance.now() - start) / 1000;
  if (r.status !== 0) throw new Error(`ood-lens score ${folder} exited with ${r.status}: ${r.stderr.slice(-800)}`);
  const rss = /OOD_LENS_MAX_RSS_MB ([\d.]+)/.exec(r.stderr);
  const written = /wrote (\d+) results/.exec(r.stderr);
  if (!rss || !written) throw new Error(`unexpected output from ood-lens: ${r.stderr.slice(-800)}`);
  return { images: Number(written[1]), seconds, maxRssMb: Number(rss[1]) };
}

/** The bound: pre-decoded images through the pair's scorer, best of one all-thread engine and one 1-thread engine per core. */
export async function bound(pair: string | undefined, images: ModelImage[], total: number): Promise<{ ips: number; label: string }> {
  const cores = Math.min(availableParallelism(), 4);
  const probe = await OodEngine.create({ pair, provider: 'cpu', preprocessWorkers: 0, pipeline: 'overlapped', threads: cores, spinning: true });
  const batchSize = probe.batchSize;
  const paths = images.map((_, i) => `image-${i}`);
  let one: number;
  try {
    await probe.scoreImages(images.slice(0, batchSize), paths.slice(0, batchSize));
    const start = performance.now();
    for (let done = 0; done < total; done += batchSize) {
      const from = done % images.length;
      await probe.scoreImages(images.slice(from, from + batchSize), paths.slice(from, from + batchSize));
    }
    one = (Math.ceil(total / batchSize) * batchSize * 1000) / (performance.now() - start);
  } finally {
    await probe.dispose();
  }
  const resolvedPair = pair;
  const workers = Array.from({ length: cores }, () => new Worker(join(REPO, 'test', 'worker', 'tsxWorker.mjs'), { workerData: { entry: join(REPO, 'bench', 'sizeBoundWorker.ts'), pair: resolvedPair, images, batchSize } }));
  const next = (w: Worker) => new Promise<{ ms?: number }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
  await Promise.all(workers.map(next));
  const perMember = Math.ceil(total / cores / batchSize) * batchSize;
  const done = workers.map(next);
  workers.forEach((w) => w.postMessage({ images: perMember }));
  const ms = Math.max(...(await Promise.all(done)).map((d) => d.ms!));
  const closed = workers.map(next);
  workers.forEach((w) => w.postMessage('close'));
  await Promise.all(closed);
  await Promise.all(workers.map((w) => w.terminate()));
  const parallel = (cores * perMember * 1000) / ms;
  return parallel > one ? { ips: parallel, label: `${cores} engines × 1 thread, batch ${batchSize}` } : { ips: one, label: `one engine, ${cores} threads, batch ${batchSize}` };
}

/** The first `count` images of a folder as the pair's scorer takes them: each model's image (the VAE's as `forVae`). */
export async function decodeImages(folder: string, pair: string | undefined, count: number): Promise<ModelImage[]> {
  const engine = await OodEngine.create({ pair, provider: 'cpu', preprocessWorkers: 0, pipeline: 'overlapped' });
  const specs = pairImageSpecs(engine.pair.inputs);
  await engine.dispose();
  const files = readdirSync(folder).sort().slice(0, count);
  const prepared = await preparePairBatch(files.map((f) => readFileSync(join(folder, f))), specs, DEFAULT_MAX_INPUT_PIXELS);
  return prepared.map((p, i) => {
    if (p instanceof Error) throw new Error(`${files[i]}: ${p.message}`);
    return p;
  });
}

/** The 1-, 5- and 15-minute load averages (Linux), printed beside every row: figures from a busy machine do not count. */
function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'unknown';
  }
}

/**
 * An uncounted CLI run warms the page cache; then bound and CLI runs taken in turn — bound, CLI, bound, CLI, …, bound — and each CLI run set against the
 * higher of the two bounds beside it. This machine's speed drifts by up to a third within minutes (a shared host):
 * a bound taken a minute away from its CLI run measures another machine. The row gives the median of the runs'
 * ratios (the run it came from: images/s and bound), every ratio, and the highest peak RSS of the runs.
 */
async function measure(name: string, folder: string, pair: string | undefined, images: ModelImage[], boundImages: number, runs = 5): Promise<SizeRow> {
  // One CLI run first, not counted: this machine pages out file pages idle for about a minute (the kernel's DAMON
  // "pageout" scheme, /sys/kernel/mm/damon/admin/kdamonds/0), so a row's first run read 1,000+ of its inputs and
  // parts of the bundles from disk (measured 5.16 against 4.72 and 4.75 s for the runs just after it).
  cliRun(folder, pair);
  const loadBefore = loadAverage();
  const bounds = [await bound(pair, images, boundImages)];
  const cli: { images: number; seconds: number; maxRssMb: number; bound: number; ratio: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const run = cliRun(folder, pair);
    bounds.push(await bound(pair, images, boundImages));
    const b = Math.max(bounds[i].ips, bounds[i + 1].ips);
    cli.push({ ...run, bound: b, ratio: run.images / run.seconds / b });
  }
  const median = [...cli].sort((a, b) => a.ratio - b.ratio)[Math.floor(runs / 2)];
  const row = {
    name,
    images: median.images,
    imagesPerSecond: median.images / median.seconds,
    bound: median.bound,
    boundLabel: `${bounds[bounds.length - 1].label}; median of ${runs} runs, each against the higher bound beside it: ${cli.map((r) => `${(r.images / r.seconds).toFixed(0)}/${r.bound.toFixed(0)} = ${r.ratio.toFixed(2)}`).join(', ')}; load average ${loadBefore} before, ${loadAverage()} after`,
    maxRssMb: Math.max(...cli.map((r) => r.maxRssMb)),
  };
  log(`${name}: ${row.imagesPerSecond.toFixed(0)} images/s, bound ${row.bound.toFixed(0)} (${row.boundLabel}), ratio ${(row.imagesPerSecond / row.bound).toFixed(2)}, peak RSS ${row.maxRssMb.toFixed(0)} MB (the highest of the runs)`);
  return row;
}

export async function modelSizeBench(quick: boolean): Promise<SizeRow[]> {
  const rows: SizeRow[] = [];
  // The whole-process runs use the CLI bundle: build it from these sources first.
  const build = spawnSync(process.execPath, [join(REPO, 'scripts', 'build.mjs')], { cwd: REPO, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed: ${build.stderr.slice(-800)}`);
  // The built-in MNIST pair.
  const mnist10k = await mnistPngs(join(CACHE, 'mnist-10k'), 10000);
  const mnistImages = await decodeImages(mnist10k, undefined, 2048);
  rows.push(await measure('built-in MNIST pair, 10,000 PNGs', mnist10k, undefined, mnistImages, 10000));
  if (!quick) {
    const big = join(CACHE, 'mnist-100k');
    mkdirSync(big, { recursive: true });
    const files = readdirSync(mnist10k).sort();
    for (let i = 0; i < 100000; i++) {
      const target = join(big, `${String(Math.floor(i / 10000))}-${String(i).padStart(6, '0')}.png`);
      if (!existsSync(target)) linkSync(join(mnist10k, files[i % files.length]), target);
    }
    rows.push(await measure('built-in MNIST pair, 100,000 PNGs', big, undefined, mnistImages, 20000));
    rmSync(big, { recursive: true, force: true }); // 100,000 links slow down anything that walks the tree
  }
  // A 224×224 RGB classifier-only pair.
  const pair = await mobilenetPair();
  const small = await photoCrops(join(CACHE, 'crops-64'), 2000, 64, 64, 'png');
  const smallImages = await decodeImages(small, pair, 256);
  rows.push(await measure('224×224 RGB classifier-only pair (MobileNetV3-Small), 2,000 small PNGs (64×64)', small, pair, smallImages, 1024));
  // The same classifier with the VAE fit trains for a pair without one (an MLP on 64×64 RGB): L(x) then counts too.
  const vaePair = await mobilenetPair(true);
  rows.push(await measure('the same classifier with the VAE `ood-lens fit` trains (MLP on 64×64 RGB), 2,000 small PNGs', small, vaePair, await decodeImages(small, vaePair, 256), 1024));
  const photos = await photoCrops(join(CACHE, 'photos-640'), 2000, 640, 480, 'jpeg');
  const photoRow = await measure('the same pair, 2,000 640×480 JPEG photos', photos, pair, smallImages, 1024);
  // Decode only: sharp reading and resizing the same files to the model's input, one call per core at a time.
  const sample = (await decodeImages(photos, pair, 1))[0];
  const engine = await OodEngine.create({ pair, provider: 'cpu', preprocessWorkers: 0, pipeline: 'overlapped' });
  const input = engine.pair.inputs.classifier;
  await engine.dispose();
  const files = readdirSync(photos).sort();
  const start = performance.now();
  for (let i = 0; i < files.length; i += 64) await Promise.all(files.slice(i, i + 64).map((f) => toModelImage(readFileSync(join(photos, f)), input)));
  const decodeRate = (files.length * 1000) / (performance.now() - start);
  photoRow.extra = `decode + resize alone (sharp, 64 at a time, ${sample.width}×${sample.height}): ${decodeRate.toFixed(0)} images/s`;
  log(`  ${photoRow.extra}`);
  rows.push(photoRow);
  return rows;
}

export function sizeTable(rows: SizeRow[]): [string, string][] {
  return rows.map((r) => [
    `${r.name} — \`ood-lens score\`, whole process`,
    `${r.imagesPerSecond.toFixed(0)} images/s; bound ${r.bound.toFixed(0)} (${r.boundLabel}); ratio **${(r.imagesPerSecond / r.bound).toFixed(2)}**; peak RSS ${r.maxRssMb.toFixed(0)} MB${r.extra ? `; ${r.extra}` : ''}`,
  ]);
}

if (require.main === module) {
  modelSizeBench(process.argv.includes('--quick'))
    .then((rows) => process.stdout.write(sizeTable(rows).map(([a, b]) => `${a}: ${b}`).join('\n') + '\n'))
    .catch((err) => {
      console.error(err);
      process.exit(1);
    });
}
