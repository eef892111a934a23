/**
 * Is the classifier fed right? Before fit writes anything it runs the classifier on a few hundred of the
 * user's own images, fed as the flags say and fed the common other ways (0..1, −1..1, 0..255, the usual
 * mean/std sets, the other layout where the shape allows it), and asks three questions:
 *  - with labels: does another feeding read the images ≥ 5 points better, or is the accuracy below a floor?
 *  - without labels: is the output degenerate (one class for most images, or near-uniform confidence)?
 *  - does an image's output depend on the rest of its batch (BatchNorm or Dropout left in training mode)?
 * Each "yes" is a problem naming the fix (the exact flags); fit refuses unless forced, and the evidence is
 * stored in the pair (`fit.check`) so that `info`, `score` and the Inspect panel can warn later.
 */
import type { FloatTensor, ModelRunner } from '../backends/types';
import type { FitCheckRecord, FitCheckTrial, InputSpec, Layout } from '../pair/manifest';
import { type ModelImage, readChecked, tensorDims, toModelImage, toTensorData } from '../image/preprocess';
import { argmax, softmax } from '../detectors/scores';
import type { ScoreInput } from '../engineTypes';
import { paddingFlag } from '../image/padding';

export { paddingFlag, paddingThatFits } from '../image/padding';

/** How the 8-bit pixels become the tensor: the fields of `--range`, `--mean`, `--std`, `--layout`. */
export interface FeedSetting {
  range: [number, number];
  mean?: number[];
  std?: number[];
  layout: Layout;
}

export type FeedTrial = FitCheckTrial;
export type FeedCheckEvidence = FitCheckRecord;

/** Points by which another feeding must beat the given one to be named. */
export const BETTER_BY = 0.05;
/** Images the feeding is tried on (a batched run per alternative). */
export const CHECK_IMAGES = 300;
const BATCH_PROBE_IMAGES = 6;

export const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
export const MNIST_NORM = { mean: [0.1307], std: [0.3081] };

/** The accuracy a classifier of `classes` classes must at least reach: twice chance, eased for 2–3 classes. */
export function accuracyFloor(classes: number): number {
  const chance = 1 / classes;
  return Math.min(2 * chance, chance + (1 - chance) / 4);
}

const num = (x: number) => String(Number(x.toPrecision(6)));

/** The command-line flags that give a feeding (what fit's user types). */
export function feedFlags(s: FeedSetting, withLayout: boolean): string {
  const parts = [`--range ${s.range.map(num).join(',')}`];
  if (s.mean) parts.push(`--mean ${s.mean.map(num).join(',')}`);
  if (s.std) parts.push(`--std ${s.std.map(num).join(',')}`);
  if (withLayout) parts.push(`--layout ${s.layout}`);
  return parts.join(' ');
}

/** value = a·(pixel/255) + b per channel: two settings that give the same (a, b) feed the same tensor. */
function affineKey(s: FeedSetting, channels: number): string {
  const key: string[] = [s.layout];
  for (let c = 0; c < channels; c++) {
    const m = s.mean?.[c] ?? s.mean?.[0] ?? 0;
    const d = s.std?.[c] ?? s.std?.[0] ?? 1;
    key.push(((s.range[1] - s.range[0]) / d).toPrecision(5), ((s.range[0] - m) / d).toPrecision(5));
  }
  return key.join(' ');
}

/** The common feedings, in the layouts the shape allows, without duplicates of the given one. */
export function feedAlternatives(given: FeedSetting, channels: 1 | 3, layouts: Layout[]): FeedSetting[] {
  const scalings: Omit<FeedSetting, 'layout'>[] = [
    { range: [0, 1] },
    { range: [-1, 1] },
    { range: [0, 255] },
    channels === 3 ? { range: [0, 1], ...IMAGENET } : { range: [0, 1], ...MNIST_NORM },
  ];
  const seen = new Set([affineKey(given, channels)]);
  const list: FeedSetting[] = [];
  for (const layout of [given.layout, ...layouts.filter((l) => l !== given.layout)]) {
    for (const s of [{ range: given.range, mean: given.mean, std: given.std }, ...scalings]) {
      const setting = { ...s, layout };
      const key = affineKey(setting, channels);
      if (seen.has(key)) continue;
      seen.add(key);
      list.push(setting);
    }
  }
  return list;
}

export interface FeedCheckInput {
  /** The classifier, able to run any batch (withAnyBatch). */
  runner: ModelRunner;
  inputName: string;
  outputName: string;
  outputKind: 'logits' | 'probabilities';
  classes: number;
  /** How images are decoded for the classifier (size, channels, padding, background, …). */
  spec: InputSpec;
  given: FeedSetting;
  /** Layouts the model's input shape allows (the given one first). */
  layouts: Layout[];
  /** The check images, with the class each label names (null: no label). */
  images: { input: ScoreInput; classIndex: number | null }[];
  /** Other outputs of the model with their values per image, to name one when the class count disagrees. */
  otherOutputs: { name: string; perImage: number }[];
  /**
   * A padding to try beside the given feeding (the images are smaller than the input by 2·padding on each
   * axis: a model trained on them padded, like LeNet's 28×28 digits in 32×32, reads them better that way).
   */
  paddingToTry?: number;
  /** The colour to pad with when trying it ('#rrggbb'). */
  paddingBackground?: string;
  /** The feeding cannot vary (a uint8 input takes the 8-bit pixels): no alternatives are tried. */
  fixedFeed?: boolean;
  /** Distinct labels in the whole data (null without labels). */
  distinctLabels: number | null;
  batchSize?: number;
  signal?: AbortSignal;
}

async function decode(images: FeedCheckInput['images'], spec: InputSpec): Promise<{ image: ModelImage; classIndex: number | null }[]> {
  const out: { image: ModelImage; classIndex: number | null }[] = [];
  for (const item of images) {
    try {
      const source = item.input.source ?? (await readChecked(item.input.path, 256 * 1024 * 1024));
      out.push({ image: await toModelImage(source, spec), classIndex: item.classIndex });
    } catch {
      // An image that cannot be read is reported by the scoring that follows; the check does without it.
    }
  }
  return out;
}

function tensorOf(images: ModelImage[], spec: InputSpec, s: FeedSetting): FloatTensor {
  const size = spec.width * spec.height * spec.channels;
  const data = new Float32Array(images.length * size);
  const scaled = { ...spec, range: s.range, mean: expand(s.mean, spec.channels), std: expand(s.std, spec.channels) };
  images.forEach((img, i) => toTensorData(img, scaled, s.layout, data, i * size));
  return { data, dims: tensorDims(s.layout, images.length, spec.channels, spec.height, spec.width) };
}

/** One value for every channel (the CLI's `--mean 0.5` on an RGB model). */
export function expand(values: number[] | undefined, channels: number): number[] | undefined {
  return values && values.length === 1 && channels > 1 ? Array.from({ length: channels }, () => values[0]) : values;
}

async function outputs(input: FeedCheckInput, images: ModelImage[], s: FeedSetting): Promise<Float32Array> {
  const batch = Math.max(1, input.batchSize ?? 64);
  const rows: Float32Array[] = [];
  for (let start = 0; start < images.length; start += batch) {
    if (input.signal?.aborted) throw new Error('cancelled');
    const out = await input.runner.run({ [input.inputName]: tensorOf(images.slice(start, start + batch), input.spec, s) }, [input.outputName]);
    rows.push(out[input.outputName].data);
  }
  const all = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let offset = 0;
  for (const r of rows) {
    all.set(r, offset);
    offset += r.length;
  }
  return all;
}

function trial(input: FeedCheckInput, out: Float32Array, labels: (number | null)[], flags: string): FeedTrial {
  const k = input.classes;
  const counts = new Map<number, number>();
  let confidence = 0;
  let correct = 0;
  let labelled = 0;
  for (let i = 0; i < labels.length; i++) {
    const row = out.subarray(i * k, (i + 1) * k);
    const p = input.outputKind === 'logits' ? softmax(row) : row;
    const top = argmax(p);
    counts.set(top, (counts.get(top) ?? 0) + 1);
    confidence += Number.isFinite(p[top]) ? p[top] : 0;
    if (labels[i] !== null) {
      labelled++;
      if (top === labels[i]) correct++;
    }
  }
  const n = Math.max(1, labels.length);
  return { flags, accuracy: labelled ? correct / labelled : null, topClassShare: Math.max(0, ...counts.values()) / n, meanConfidence: confidence / n };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** Runs the check (a few hundred images, one batched pass per feeding, the batch probe); never throws on what it finds. */
export async function checkClassifierFeed(input: FeedCheckInput): Promise<FeedCheckEvidence> {
  const decoded = await decode(input.images, input.spec);
  const images = decoded.map((d) => d.image);
  const labels = decoded.map((d) => d.classIndex);
  const labelled = labels.filter((l) => l !== null).length;
  const withLayout = input.layouts.length > 1;
  const givenFlags = feedFlags(input.given, withLayout);
  const floor = accuracyFloor(input.classes);
  const trials: FeedTrial[] = [trial(input, await outputs(input, images, input.given), labels, givenFlags)];
  for (const alt of input.fixedFeed ? [] : feedAlternatives(input.given, input.spec.channels, input.layouts)) {
    trials.push(trial(input, await outputs(input, images, alt), labels, feedFlags(alt, withLayout)));
  }
  if (input.paddingToTry && !input.spec.padding) {
    const padded = { ...input, spec: { ...input.spec, padding: input.paddingToTry, ...(input.paddingBackground ? { background: input.paddingBackground } : {}) } };
    const paddedImages = (await decode(input.images, padded.spec)).map((d) => d.image);
    if (paddedImages.length === images.length) trials.push(trial(padded, await outputs(padded, paddedImages, input.given), labels, `${givenFlags} ${paddingFlag(input.paddingToTry)}`));
  }
  const given = trials[0];
  const problems: string[] = [];
  const usable = images.length >= 20;
  if (usable && labelled >= 20) {
    const best = trials.slice(1).reduce<FeedTrial | null>((b, t) => (t.accuracy !== null && (b === null || t.accuracy > b.accuracy!) ? t : b), null);
    const countMismatch = input.distinctLabels !== null && input.distinctLabels !== input.classes;
    if (best && best.accuracy! >= given.accuracy! + BETTER_BY && best.accuracy! >= floor) {
      problems.push(
        `the classifier reads the check images far better fed another way: ${best.flags} gives ${pct(best.accuracy!)} against ${pct(given.accuracy!)} with ${givenFlags} (${labelled} labelled images). Pass ${best.flags}`,
      );
    } else if (given.accuracy! < floor) {
      if (countMismatch) {
        const match = input.otherOutputs.filter((o) => o.perImage === input.distinctLabels);
        problems.push(
          `--output: the data's labels name ${input.distinctLabels} classes but output "${input.outputName}" gives ${input.classes} values per image, and reads the check images at ${pct(given.accuracy!)} (chance ${pct(1 / input.classes)}); ` +
            (match.length ? `pass --output ${match[0].name} (${match[0].perImage} values per image)` : `name the output that gives one score per class with --output${input.otherOutputs.length ? ` (outputs: ${input.otherOutputs.map((o) => `"${o.name}" ${o.perImage} values`).join(', ')})` : ''}`),
        );
      } else {
        problems.push(
          `the classifier reads the check images at ${pct(given.accuracy!)} with ${givenFlags}, below ${pct(floor)} (twice chance for ${input.classes} classes), and no usual feeding does better (${trials
            .slice(1)
            .map((t) => `${t.flags}: ${pct(t.accuracy!)}`)
            .join('; ')}). Check the labels (--labels, in output order), the input scaling (--range, --mean, --std) and that these images are what the classifier was trained on`,
        );
      }
    }
    if (!problems.length && countMismatch && input.otherOutputs.some((o) => o.perImage === input.distinctLabels)) {
      const o = input.otherOutputs.find((x) => x.perImage === input.distinctLabels)!;
      problems.push(`--output: the data's labels name ${input.distinctLabels} classes but output "${input.outputName}" gives ${input.classes} values per image; output "${o.name}" gives ${o.perImage}: pass --output ${o.name}`);
    }
  } else if (usable) {
    // No labels: a classifier fed right spreads its answers and is confident on its own kind of image.
    const uniform = 1 / input.classes;
    const degenerate = (t: FeedTrial) => t.topClassShare > 0.9 || t.meanConfidence < uniform + 0.1 * (1 - uniform);
    if (degenerate(given)) {
      const why = given.topClassShare > 0.9 ? `it gives one class to ${pct(given.topClassShare)} of the check images` : `its confidence is near uniform (mean ${pct(given.meanConfidence)}, chance ${pct(uniform)})`;
      const better = trials.slice(1).filter((t) => !degenerate(t)).sort((a, b) => b.meanConfidence - a.meanConfidence);
      problems.push(
        `the classifier's output looks degenerate with ${givenFlags}: ${why}. ` +
          (better.length
            ? `Fed ${better[0].flags} it is not (one class for ${pct(better[0].topClassShare)}, mean confidence ${pct(better[0].meanConfidence)}): pass ${better[0].flags} if that is how it was trained`
            : `No usual feeding helps: check the input scaling (--range, --mean, --std), --output, and that these images are what it was trained on`) +
          '. Labels make this check exact: give an IDX file with its labels beside it, or a manifest with a label column',
      );
    }
  }
  const batchProbe = await probeBatchIndependence(input, images.slice(0, BATCH_PROBE_IMAGES));
  if (!batchProbe.independent) {
    problems.push(
      `the classifier's output for an image depends on the other images in its batch (each of ${batchProbe.images} images alone against inside one batch: outputs differ by up to ${pct(batchProbe.maxDifference)} of their scale): ` +
        'a BatchNorm or Dropout layer left in training mode is the usual cause. Export the model in inference mode (PyTorch: model.eval() before torch.onnx.export; Keras: training=False)',
    );
  }
  return { images: images.length, labelled, classes: input.classes, accuracy: given.accuracy, floor, trials, batchProbe, problems };
}

/** Each image alone against all of them in one batch: the largest difference of an output value, relative to the outputs' scale. */
async function probeBatchIndependence(input: FeedCheckInput, images: ModelImage[]): Promise<FeedCheckEvidence['batchProbe']> {
  if (images.length < 2) return { images: images.length, maxDifference: 0, independent: true };
  const together = (await input.runner.run({ [input.inputName]: tensorOf(images, input.spec, input.given) }, [input.outputName]))[input.outputName].data;
  const per = together.length / images.length;
  let scale = 1e-6;
  for (const v of together) scale = Math.max(scale, Math.abs(v));
  let diff = 0;
  for (let i = 0; i < images.length; i++) {
    const alone = (await input.runner.run({ [input.inputName]: tensorOf([images[i]], input.spec, input.given) }, [input.outputName]))[input.outputName].data;
    for (let k = 0; k < per; k++) diff = Math.max(diff, Math.abs(alone[k] - together[i * per + k]));
  }
  const maxDifference = Number.isFinite(diff / scale) ? diff / scale : 0;
  // Float differences between batch sizes (other kernels) stay around 1e-6 of the scale.
  return { images: images.length, maxDifference, independent: !(maxDifference > 1e-3) };
}
