/**
 * What Create Pair shows before anything is written: the sizes of a sample of the user's images (so the
 * size prompt can default to them and question a size whose aspect contradicts them), and one image exactly
 * as the classifier will see it (resized, scaled) with its prediction, so that a squashed or mis-scaled input
 * is visible before the fit. Pure engine code (no vscode); runs in the engine worker.
 */
import { resolve } from 'node:path';
import sharp from '../io/lazySharp';
import { withAnyBatch } from '../backends/staticBatch';
import type { ManifestReader, Scaling } from './fit';
import { listData, modelFormatOf, readImageInput } from './fit';
import type { InputSpec, Layout } from '../pair/manifest';
import { loadModel } from '../pair/pair';
import { imageSizeOf, isRawImage, type ModelImage, readChecked, toModelImage, toTensorData } from '../image/preprocess';

export interface SizeCount {
  width: number;
  height: number;
  count: number;
}

export interface DataSample {
  /** Images found in the data (all of them are listed; only `sampled` are opened). */
  total: number;
  /** Images whose size was read. */
  sampled: number;
  /** Distinct sizes among the sampled images, most frequent first. */
  sizes: SizeCount[];
  /** The path (or IDX entry) of the first sampled image: the preview's image. */
  first: string | null;
  /** Images of the sample that could not be read, with the reason (first few). */
  unreadable: { path: string; error: string }[];
}

/** Evenly spread indices of `n` items out of `total` (the first is always 0). */
export function spreadIndices(total: number, n: number): number[] {
  if (total <= n) return Array.from({ length: total }, (_, i) => i);
  return Array.from({ length: n }, (_, i) => Math.floor((i * total) / n));
}

/** Reads the pixel size of up to `sampleSize` images spread over the data (headers only: sharp metadata). */
export async function sampleImageSizes(data: string[], options: { sampleSize?: number; readManifest?: ManifestReader; signal?: AbortSignal } = {}): Promise<DataSample> {
  const items = await listData(data, options.signal, options.readManifest);
  const counts = new Map<string, SizeCount>();
  const unreadable: DataSample['unreadable'] = [];
  let sampled = 0;
  let first: string | null = null;
  for (const i of spreadIndices(items.length, options.sampleSize ?? 24)) {
    const input = items[i].input;
    try {
      const { width, height } = await imageSizeOf(input);
      const key = `${width}x${height}`;
      const c = counts.get(key) ?? { width, height, count: 0 };
      c.count++;
      counts.set(key, c);
      sampled++;
      first ??= input.path;
    } catch (err) {
      if (unreadable.length < 5) unreadable.push({ path: input.path, error: (err as Error).message });
    }
  }
  return { total: items.length, sampled, sizes: [...counts.values()].sort((a, b) => b.count - a.count), first, unreadable };
}

export interface PreviewRequest {
  classifier: string;
  /** The image to show (a file path; an IDX entry "file#index" is read from the IDX file). */
  image: string;
  scaling: Scaling;
  layout?: Layout;
  size?: { width: number; height: number };
  /** A border of background pixels on each side (fit's --padding). */
  padding?: number;
  /** The class-score output (the one Create Pair read or the user named). */
  output: string;
  outputKind: 'logits' | 'probabilities';
  labels?: string[];
}

export interface InputPreview {
  image: string;
  /** The image's own size, as decoded. */
  source: { width: number; height: number } | null;
  /** The 8-bit image the classifier sees (after resize), HWC. */
  modelInput: ModelImage;
  /** The smallest and largest value of the tensor fed to the model (after range and mean/std). */
  tensorRange: [number, number];
  probabilities: number[];
  prediction: number;
  label: string;
  msp: number;
}

function softmax(row: Float32Array | number[]): number[] {
  const max = Math.max(...row);
  const e = Array.from(row, (v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** One image through the classifier with the answers given so far: what fit will feed it, and what it answers. */
export async function previewInput(request: PreviewRequest, readManifest?: ManifestReader): Promise<InputPreview> {
  const abs = resolve(request.classifier);
  const runner = await loadModel(abs, modelFormatOf(abs), { provider: 'cpu', threads: 1 });
  try {
    const input = readImageInput(runner, 'classifier', { layout: request.layout, size: request.size });
    const spec: InputSpec = { width: input.width, height: input.height, channels: input.channels, layout: input.layout, ...request.scaling, ...(request.padding ? { padding: request.padding } : {}) };
    // An IDX entry ("file#3") carries its own pixels: take it from the listing as fit would.
    const [item] = request.image.includes('#') ? (await listData([request.image.replace(/#\d+$/, '')], undefined, readManifest)).filter((i) => i.input.path === request.image) : [];
    const source = item?.input.source ?? (await readChecked(request.image, 256 * 1024 * 1024));
    const meta = isRawImage(source) ? { width: source.width, height: source.height } : await sharp(source).metadata().catch(() => null);
    const modelInput = await toModelImage(source, spec);
    const data = toTensorData(modelInput, spec, input.layout);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of data) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const dims = input.layout === 'NCHW' ? [1, input.channels, input.height, input.width] : [1, input.height, input.width, input.channels];
    const out = await withAnyBatch(runner).run({ [input.name]: { data, dims } });
    const scores = out[request.output];
    if (!scores) throw new Error(`${abs}: no output named "${request.output}"`);
    const probabilities = request.outputKind === 'logits' ? softmax(scores.data) : Array.from(scores.data);
    let prediction = 0;
    for (let i = 1; i < probabilities.length; i++) if (probabilities[i] > probabilities[prediction]) prediction = i;
    return {
      image: request.image,
      source: meta && meta.width && meta.height ? { width: meta.width, height: meta.height } : null,
      modelInput,
      tensorRange: [lo, hi],
      probabilities,
      prediction,
      label: request.labels?.[prediction] ?? String(prediction),
      msp: probabilities[prediction],
    };
  } finally {
    await runner.dispose().catch(() => undefined);
  }
}
