/**
 * The Create Pair flow's answers, without vscode: input-scaling presets and the custom-scaling parser, class
 * names, the pair folder, what the model file declares as display lines, and the fit request built from the
 * answers. Every check returns a message that names the field and the fix (shown as the input box's
 * validation message). Unit-tested in test/providers/createPairOptions.test.ts.
 */
import { basename, dirname, extname, join } from 'node:path';
import type { Scaling } from '../inference/fit/fit';
import type { Layout, VaeSpec } from '../inference/pair/manifest';
import type { ModelFacts, TensorFacts } from '../inference/fit/modelInspection';
import type { FitRequest } from '../shared/engineProtocol';
import { estimatedVaeSeconds, vaeImageSize } from '../inference/fit/vaeBudget';
import { paddingThatFits } from '../inference/image/padding';

export type ScalingPresetId = 'unit' | 'raw' | 'symmetric' | 'imagenet' | 'custom';

export interface ScalingPreset {
  id: ScalingPresetId;
  label: string;
  description: string;
}

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];
/** Grey models trained from ImageNet statistics usually use the channel averages. */
const IMAGENET_GREY_MEAN = [0.449];
const IMAGENET_GREY_STD = [0.226];

export function scalingPresets(channels: 1 | 3): ScalingPreset[] {
  const imagenet = channels === 3 ? `mean (${IMAGENET_MEAN.join(', ')}), std (${IMAGENET_STD.join(', ')})` : `grey: mean ${IMAGENET_GREY_MEAN[0]}, std ${IMAGENET_GREY_STD[0]} (the channel averages)`;
  return [
    { id: 'unit', label: '[0, 1]', description: 'x/255 — PyTorch ToTensor(), most models' },
    { id: 'raw', label: '0–255', description: 'x as is, no scaling — ONNX-zoo MNIST, many Keras models' },
    { id: 'symmetric', label: '[−1, 1]', description: '(x/255 − 0.5)/0.5, the same as x/127.5 − 1 — Normalize(mean=0.5, std=0.5), Inception-style' },
    { id: 'imagenet', label: 'ImageNet mean/std', description: `(x/255 − mean)/std, ${imagenet} — torchvision` },
    { id: 'custom', label: 'Custom…', description: 'range, mean and std of your own (e.g. MNIST: mean 0.1307, std 0.3081)' },
  ];
}

/** The scaling of a preset (undefined for "custom": ask). */
export function presetScaling(id: ScalingPresetId, channels: 1 | 3): Scaling | undefined {
  switch (id) {
    case 'unit':
      return { range: [0, 1] };
    case 'raw':
      return { range: [0, 255] };
    case 'symmetric':
      return { range: [-1, 1] };
    case 'imagenet':
      return channels === 3 ? { range: [0, 1], mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] } : { range: [0, 1], mean: [...IMAGENET_GREY_MEAN], std: [...IMAGENET_GREY_STD] };
    case 'custom':
      return undefined;
  }
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function numberList(field: string, raw: string, counts: number[]): Parsed<number[]> {
  const parts = raw.split(',').map((s) => s.trim());
  const values = parts.map((s) => (s === '' ? NaN : Number(s)));
  if (values.some((v) => !Number.isFinite(v))) return { ok: false, error: `${field}: "${raw}" is not a list of numbers (use a dot for decimals and commas between values, e.g. ${field}=0.5,0.5,0.5)` };
  if (!counts.includes(values.length)) return { ok: false, error: `${field}: ${values.length} value(s) given; give ${counts.join(' or ')}` };
  return { ok: true, value: values };
}

/**
 * Custom scaling as typed by the user: `range=LO,HI mean=M[,M,M] std=S[,S,S]` (any order, spaces or
 * semicolons between; each part optional, range defaults to 0,1). Pixels 0..255 map onto the range, then
 * (x − mean) / std per channel.
 */
export function parseScaling(text: string, channels: 1 | 3): Parsed<Scaling> {
  // Spaces around "=", ":" and "," are allowed ("mean = 0.5, 0.4, 0.3").
  const trimmed = text.trim().replace(/\s*([=:,])\s*/g, '$1');
  if (!trimmed) return { ok: false, error: 'type the scaling, e.g. range=0,1 mean=0.1307 std=0.3081' };
  const seen = new Set<string>();
  const scaling: Scaling = {};
  const channelCounts = channels === 3 ? [1, 3] : [1];
  for (const part of trimmed.split(/[\s;]+/).filter(Boolean)) {
    const m = /^(range|mean|std)\s*[=:]\s*(.+)$/i.exec(part);
    if (!m) return { ok: false, error: `"${part}": expected range=LO,HI, mean=M or std=S (e.g. range=0,1 mean=0.1307 std=0.3081)` };
    const key = m[1].toLowerCase() as 'range' | 'mean' | 'std';
    if (seen.has(key)) return { ok: false, error: `${key} is given twice` };
    seen.add(key);
    const parsed = numberList(key, m[2], key === 'range' ? [2] : channelCounts);
    if (!parsed.ok && key !== 'range' && /value\(s\) given/.test(parsed.error)) {
      return { ok: false, error: channels === 1 ? `${key}: the model takes grey images (1 channel): give one value` : `${key}: the model takes RGB images (3 channels): give one value for all three, or three values (R, G, B)` };
    }
    if (!parsed.ok) return parsed;
    if (key === 'range') {
      const [lo, hi] = parsed.value;
      if (!(lo < hi)) return { ok: false, error: `range: the low end must be below the high end (got ${lo},${hi})` };
      scaling.range = [lo, hi];
    } else if (key === 'std') {
      if (parsed.value.some((s) => !(s > 0))) return { ok: false, error: `std: every value must be above 0 (got ${parsed.value.join(',')})` };
      // One value stands for every channel: the pair's manifest holds one per channel.
      scaling.std = parsed.value.length === channels ? parsed.value : Array(channels).fill(parsed.value[0]);
    } else {
      scaling.mean = parsed.value.length === channels ? parsed.value : Array(channels).fill(parsed.value[0]);
    }
  }
  const range: [number, number] = scaling.range ?? [0, 1];
  // mean and std are in the range's units: a mean outside it (127.5 with range 0,1) is statistics of another scale.
  const outside = scaling.mean?.find((m) => m < range[0] || m > range[1]);
  if (outside !== undefined) {
    const hint = range[1] <= 1 && outside <= 255 && outside >= 0 ? ` (statistics of 0..255 pixels: give range=0,255, or divide by 255: mean=${+(outside / 255).toFixed(4)})` : '';
    return { ok: false, error: `mean: ${outside} lies outside the range [${range[0]}, ${range[1]}] the pixels are mapped onto; a mean of pixel values lies inside it${hint}` };
  }
  return { ok: true, value: { range, ...(scaling.mean ? { mean: scaling.mean } : {}), ...(scaling.std ? { std: scaling.std } : {}) } };
}

const list = (xs: number[]) => (xs.length === 1 ? String(xs[0]) : `(${xs.join(', ')})`);

/** "(x/255 − 0.5)/0.5", "x/255", "(x/255 − (0.485, 0.456, 0.406))/(0.229, 0.224, 0.225)": a scaling in the words model cards use. */
export function scalingWords(s: Scaling): string {
  const [lo, hi] = s.range ?? [0, 1];
  const base = lo === 0 && hi === 1 ? 'x/255' : lo === 0 && hi === 255 ? 'x' : lo === -1 && hi === 1 ? '(x/255 − 0.5)/0.5' : `x/255 × ${+(hi - lo).toFixed(6)} ${lo < 0 ? '−' : '+'} ${Math.abs(lo)}`;
  const one = (xs: number[]) => (xs.every((v) => v === xs[0]) ? String(xs[0]) : `(${xs.join(', ')})`);
  if (!s.mean && !s.std) return base;
  return `(${base}${s.mean ? ` − ${one(s.mean)}` : ''})${s.std ? `/${one(s.std)}` : ''}`;
}

/** "pixels 0..255 → [0, 1], then (x − 0.1307) / 0.3081" */
export function describeScaling(s: Scaling): string {
  const range = s.range ?? [0, 1];
  return `pixels 0..255 → [${range[0]}, ${range[1]}]${s.mean ? `, then (x − ${list(s.mean)})` : ''}${s.std ? `${s.mean ? '' : ', then x'} / ${list(s.std)}` : ''}`;
}

/** Class names typed as "cat, dog, bird": exactly one per class, non-empty, distinct. */
export function parseLabels(text: string, classes: number): Parsed<string[]> {
  const labels = text.split(',').map((s) => s.trim());
  if (labels.some((l) => !l)) return { ok: false, error: 'a class name is empty: separate names with commas, e.g. cat, dog, bird' };
  if (labels.length !== classes) return { ok: false, error: `${labels.length} name(s) given but the model scores ${classes} classes: give ${classes}, in output order` };
  const duplicate = labels.find((l, i) => labels.indexOf(l) !== i);
  if (duplicate !== undefined) return { ok: false, error: `"${duplicate}" is given twice: class names must differ` };
  return { ok: true, value: labels };
}

/** Whether a file is a model the flow takes: an .onnx file or a TensorFlow.js model.json. */
export function isModelFile(path: string): boolean {
  return extname(path).toLowerCase() === '.onnx' || basename(path).toLowerCase() === 'model.json';
}

/** A model's short name: "classifier" for classifier.onnx, the folder name for a TF.js model.json. */
export function modelStem(modelPath: string): string {
  const name = basename(modelPath).toLowerCase() === 'model.json' ? basename(dirname(modelPath)) : basename(modelPath, extname(modelPath));
  return name.replace(/[^\w.-]+/g, '-').replace(/^[-.]+|[-.]+$/g, '') || 'model';
}

/**
 * Where the new pair goes by default: `<workspace>/pairs/<model>` (or beside the model without a workspace),
 * with `-2`, `-3`… when that folder already holds a pair.
 */
export function defaultPairFolder(modelPath: string, workspaceFolder: string | undefined, holdsPair: (folder: string) => boolean): string {
  const parent = workspaceFolder ? join(workspaceFolder, 'pairs') : dirname(modelPath);
  const stem = workspaceFolder ? modelStem(modelPath) : `${modelStem(modelPath)}-pair`;
  let candidate = join(parent, stem);
  for (let i = 2; holdsPair(candidate) && i < 1000; i++) candidate = join(parent, `${stem}-${i}`);
  return candidate;
}

/** The pair folder as typed: an absolute path, or relative to the workspace folder. */
export function resolvePairFolder(text: string, workspaceFolder: string | undefined): Parsed<string> {
  const t = text.trim();
  if (!t) return { ok: false, error: 'type the folder the pair is written to' };
  if (/[\0]/.test(t)) return { ok: false, error: 'the folder name contains a NUL character' };
  if (t.startsWith('/') || /^[A-Za-z]:[\\/]/.test(t)) return { ok: true, value: t };
  if (!workspaceFolder) return { ok: false, error: 'give an absolute path (no workspace folder is open to resolve it against)' };
  return { ok: true, value: join(workspaceFolder, t) };
}

const shape = (t: TensorFacts) => (t.shape ? `[${t.shape.map((d) => d ?? '?').join(', ')}]` : '[shape not declared]');

export interface FactLine {
  label: string;
  detail: string;
}

/** What was read from the model, one line per fact, for the flow's first step (and the log). */
export function modelFactLines(facts: ModelFacts): FactLine[] {
  const lines: FactLine[] = [];
  for (const t of facts.inputs) lines.push({ label: `input "${t.name}" ${shape(t)}`, detail: t.dtype });
  for (const t of facts.outputs) lines.push({ label: `output "${t.name}" ${shape(t)}`, detail: t.dtype });
  if (facts.image) {
    const i = facts.image;
    lines.push({
      label: `image ${i.width}×${i.height} ${i.channels === 1 ? 'grey' : 'RGB'}, ${i.layout}`,
      detail: i.staticBatch ? `static batch ${i.staticBatch} (runs in chunks of ${i.staticBatch}, no flag needed)` : 'any batch size',
    });
  } else {
    lines.push({ label: 'image input: cannot be read', detail: facts.imageError ?? 'unknown problem' });
  }
  if (facts.classOutput) lines.push({ label: `${facts.classOutput.classes} classes from "${facts.classOutput.name}"`, detail: facts.classOutput.kind === 'logits' ? 'logits (softmax is applied)' : 'probabilities' });
  else lines.push({ label: 'class scores: cannot be told', detail: facts.classOutputError ?? (facts.image ? 'unknown problem' : 'needs the image input first') });
  return lines;
}

/** The facts with the class output the user named among several candidates. */
export function withClassOutput(facts: ModelFacts, name: string): ModelFacts {
  const chosen = facts.classCandidates.find((c) => c.name === name);
  if (!chosen) throw new Error(`${facts.path} has no output "${name}" with several values per image`);
  return { ...facts, classOutput: chosen, classOutputError: null };
}

/** Why the flow cannot go on with this model, or null when it can. */
export function modelProblem(facts: ModelFacts): string | null {
  if (!facts.image) return facts.imageError ?? 'the image input cannot be read';
  if (!facts.classOutput) return facts.classOutputError ?? 'the class-score output cannot be told';
  return null;
}

/** The height and width a model input declares (null where it leaves them free). */
export interface DeclaredSize {
  width: number | null;
  height: number | null;
}

/** The declared height and width of an NCHW / NHWC input shape (null when free or the shape is not 4-d). */
export function declaredSize(shape: (number | null)[] | null | undefined, layout: 'NCHW' | 'NHWC' | 'flat' | undefined): DeclaredSize {
  if (!shape || shape.length !== 4) return { width: null, height: null };
  const [h, w] = layout === 'NHWC' ? [shape[1], shape[2]] : [shape[2], shape[3]];
  return { width: w ?? null, height: h ?? null };
}

/** "width free, height 48": what the model fixes and leaves open, in the size prompt's words. */
export function describeDeclared(d: DeclaredSize): string {
  const side = (name: string, v: number | null) => (v === null ? `${name} free` : `${name} ${v}`);
  return `${side('width', d.width)}, ${side('height', d.height)}`;
}

/**
 * An image size typed as width × height ("192x48", "192×48", "192 x 48"): both sides 1–8192 pixels, and equal
 * to what the model declares where it fixes a side.
 */
export function parseSize(text: string, declared: DeclaredSize = { width: null, height: null }): Parsed<{ width: number; height: number }> {
  const m = /^\s*(\d+)\s*[x×X*]\s*(\d+)\s*$/.exec(text);
  if (!m) return { ok: false, error: 'type the size as WIDTH×HEIGHT (width first), e.g. 224x224 or 192x48' };
  const [width, height] = [Number(m[1]), Number(m[2])];
  if (width < 1 || height < 1 || width > 8192 || height > 8192) return { ok: false, error: `${width}×${height}: each side must be 1 to 8192 pixels` };
  if (declared.width !== null && width !== declared.width) return { ok: false, error: `width ${width}: the model declares width ${declared.width} (${describeDeclared(declared)}); the size is width × height` };
  if (declared.height !== null && height !== declared.height) return { ok: false, error: `height ${height}: the model declares height ${declared.height} (${describeDeclared(declared)}); the size is width × height` };
  return { ok: true, value: { width, height } };
}

export interface ImageSizes {
  sampled: number;
  sizes: { width: number; height: number; count: number }[];
}

/** "192×48 (all 24 sampled)", "28×28 (20 of 24 sampled), 32×32 (4)". */
export function describeImageSizes(s: ImageSizes): string {
  if (!s.sizes.length) return 'no image could be read';
  const [top, ...rest] = s.sizes;
  const head = top.count === s.sampled ? `${top.width}×${top.height} (all ${s.sampled} sampled)` : `${top.width}×${top.height} (${top.count} of ${s.sampled} sampled)`;
  return [head, ...rest.slice(0, 3).map((r) => `${r.width}×${r.height} (${r.count})`)].join(', ') + (rest.length > 3 ? ', …' : '');
}

/**
 * The size the prompt offers: the images' most common size where the model leaves both sides free; where it
 * fixes one, the other from the images' aspect; the model's own where it fixes both (or no image was read).
 */
export function defaultSize(images: ImageSizes, declared: DeclaredSize): { width: number; height: number } | null {
  const top = images.sizes[0];
  if (declared.width !== null && declared.height !== null) return { width: declared.width, height: declared.height };
  if (!top) return null;
  if (declared.width === null && declared.height === null) return { width: top.width, height: top.height };
  if (declared.height !== null) return { width: Math.max(1, Math.round((declared.height * top.width) / top.height)), height: declared.height };
  return { width: declared.width!, height: Math.max(1, Math.round((declared.width! * top.height) / top.width)) };
}

const aspectWords = (w: number, h: number) => (w > h * 1.1 ? 'wide' : h > w * 1.1 ? 'tall' : 'square');

/**
 * Why a size contradicts the images (their aspect differs by more than a quarter: each image would be
 * stretched or squashed), or null. Names the swapped size when that one fits: "48×192" typed from a README's
 * "48×192" (height × width) for 192×48 images.
 */
export function sizeConflict(size: { width: number; height: number }, images: ImageSizes): string | null {
  const top = images.sizes[0];
  if (!top) return null;
  const imageAspect = top.width / top.height;
  const aspect = size.width / size.height;
  if (Math.max(aspect / imageAspect, imageAspect / aspect) <= 1.25) return null;
  const swapped = Math.max(size.height / size.width / imageAspect, imageAspect / (size.height / size.width)) <= 1.25;
  const fix = swapped ? `Did you mean ${size.height}×${size.width}? The size is width × height (a README's "${size.width}×${size.height}" may be height × width).` : `Images are stretched to the size given: use the size the model was trained on, with the images' shape.`;
  return `${size.width}×${size.height} is ${aspectWords(size.width, size.height)}, but your images are ${top.width}×${top.height} (${aspectWords(top.width, top.height)}): each would be squashed. ${fix}`;
}

/**
 * The padding to offer when every sampled image is smaller than the model's fixed input by one even margin on
 * both axes (28×28 images, a 32×32 input): a LeNet-style model trained on them padded reads them better padded
 * than stretched. Null otherwise (the images are resized as they are).
 */
export function paddingOffer(model: { width: number; height: number }, images: ImageSizes): number | null {
  return paddingThatFits(images.sizes.map((s) => ({ width: s.width, height: s.height })), model.width, model.height);
}

export type VaeChoice = { kind: 'none' } | { kind: 'train' } | { kind: 'single'; path: string } | { kind: 'split'; encoder: string; decoder: string };

export interface CreatePairAnswers {
  classifier: string;
  facts: ModelFacts;
  scaling: Scaling;
  labels?: string[];
  data: string;
  vae: VaeChoice;
  likelihood?: VaeSpec['likelihood'];
  out: string;
  /** What the user gave where the model file leaves the layout or the size open. */
  layout?: Layout;
  size?: { width: number; height: number };
  /** A border of background pixels on each side (fit's --padding), when the user chose to pad. */
  padding?: number;
  /** Inputs besides the image fixed to a number (fit's --const). */
  constants?: Record<string, number>;
  /** Replace a pair already in `out` (the user confirmed). */
  force?: boolean;
  provider?: FitRequest['provider'];
  batchSize?: number;
}

export function likelihoodSpec(type: VaeSpec['likelihood']['type'], sigmaText?: string): Parsed<VaeSpec['likelihood']> {
  if (type !== 'gaussian') return { ok: true, value: { type } };
  const sigma = Number((sigmaText ?? '').trim());
  if (!sigmaText?.trim() || !Number.isFinite(sigma) || !(sigma > 0) || sigma > 1) return { ok: false, error: `σ must be a number in (0, 1], the decoder's standard deviation in [0, 1] pixel units (e.g. 0.1); got "${sigmaText ?? ''}"` };
  return { ok: true, value: { type, sigma } };
}

/** fitPair's options from the answers (names and shapes come from the model; the VAE on [0, 1]). */
export function buildFitRequest(a: CreatePairAnswers): FitRequest {
  const request: FitRequest = {
    classifier: a.classifier,
    data: [a.data],
    out: a.out,
    name: basename(a.out),
    scaling: a.scaling,
    // The output fit would pick anyway; naming it keeps a model with extra outputs working.
    ...(a.facts.classOutput ? { classifierOutput: a.facts.classOutput.name } : {}),
    ...(a.labels ? { labels: a.labels } : {}),
    ...(a.layout ? { layout: a.layout } : {}),
    ...(a.size ? { size: a.size } : {}),
    ...(a.padding ? { padding: a.padding } : {}),
    ...(a.constants ? { constants: a.constants } : {}),
    ...(a.force ? { force: true } : {}),
    ...(a.provider ? { provider: a.provider } : {}),
    ...(a.batchSize ? { batchSize: a.batchSize } : {}),
  };
  // No VAE of the user's: fit trains one unless they chose none.
  if (a.vae.kind === 'none') request.trainVae = false;
  if (a.vae.kind === 'single') request.vae = a.vae.path;
  if (a.vae.kind === 'split') {
    request.encoder = a.vae.encoder;
    request.decoder = a.vae.decoder;
  }
  if ((a.vae.kind === 'single' || a.vae.kind === 'split') && a.likelihood) request.likelihood = a.likelihood;
  return request;
}

/**
 * What the user answered last time for a model, so that a retry (after a failed fit, or a flow closed half
 * way) starts from those answers instead of empty prompts.
 */
export interface RememberedAnswers {
  data?: string;
  /** The size as typed ("192x48") and the layout, where the model leaves them open. */
  size?: string;
  layout?: 'NCHW' | 'NHWC';
  /** Padded (the border in pixels) or stretched (0), where the images fit the model's input with a margin. */
  padding?: number;
  scaling?: ScalingPresetId;
  /** The custom scaling as typed. */
  customScaling?: string;
  /** Class names as typed (undefined: the class indices). */
  labels?: string;
  vae?: VaeChoice['kind'];
  out?: string;
  useInWorkspace?: boolean;
}

/**
 * The folders `mkdir -p folder` would create: the topmost one that does not exist yet (undefined when the
 * folder exists). A failed fit removes from there what it made, so it leaves nothing behind.
 */
export function firstMissingFolder(folder: string, exists: (path: string) => boolean): string | undefined {
  let missing: string | undefined;
  for (let f = folder; !exists(f); f = dirname(f)) {
    missing = f;
    if (dirname(f) === f) break;
  }
  return missing;
}

/** The "Train a VAE" choice's description: the VAE's image and the time it takes on this kind of machine. */
export function vaeTrainingEstimate(facts: Pick<ModelFacts, 'image'>): string {
  if (!facts.image) return 'an MLP VAE trained by fit on the fit part of your images';
  const { width, height, channels } = facts.image;
  const size = vaeImageSize(width, height);
  const minutes = (n: number) => Math.max(1, Math.round(estimatedVaeSeconds(n, width, height, channels) / 60));
  return `an MLP VAE on ${size.width}×${size.height} ${channels === 1 ? 'grey' : 'RGB'} images, trained by fit: about ${minutes(2000)} min for 2,000 images, ${minutes(20000)} min for 20,000 (2 CPU cores)`;
}
