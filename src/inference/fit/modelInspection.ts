/**
 * What a model file says about itself, for the Create Pair flow (and anything else that shows a model
 * before using it): its format, every input and output with its declared shape, and, for an image
 * classifier, the image it takes (size, channels, layout, static batch) and how many classes it scores
 * (from one run on probe images). Built on what `fit` reads (readImageInput, modelFormatOf), so the flow
 * shows exactly what fit will decide. What cannot be read is reported as a message, not thrown: the user
 * sees the rest and the reason. No vscode here; runs in the engine worker.
 */
import { resolve } from 'node:path';
import { FitError, modelFormatOf, readImageInput } from './fit';
import type { Layout, ModelFormat } from '../pair/manifest';
import { describeRows, loadModel, probeImages, probeTensor } from '../pair/pair';
import { withAnyBatch } from '../backends/staticBatch';
import type { ExecutionProviderSetting, ModelRunner } from '../backends/types';

export interface TensorFacts {
  name: string;
  /** Declared dimensions; null where the model leaves one free (usually the batch). */
  shape: (number | null)[] | null;
  dtype: string;
}

export interface ImageInputFacts {
  name: string;
  width: number;
  height: number;
  channels: 1 | 3;
  layout: Layout;
  /** The fixed batch size the model declares, when it has one (it still runs any batch, in chunks). */
  staticBatch: number | null;
  /** float32, or uint8 (fed the 8-bit pixels: no scaling to choose). */
  dtype?: string;
}

export interface ClassOutputFacts {
  name: string;
  /** Values per image on the probe images: the number of classes. */
  classes: number;
  /** Whether the probe outputs looked like probabilities (rows in [0, 1] summing to 1) or logits. */
  kind: 'logits' | 'probabilities';
}

export interface ModelFacts {
  path: string;
  format: ModelFormat;
  backend: string;
  inputs: TensorFacts[];
  outputs: TensorFacts[];
  /** The image input, or why it could not be read (then `imageError` says what to change). */
  image: ImageInputFacts | null;
  imageError: string | null;
  /**
   * What the user can supply to read the image input when the file leaves it open: the layout (channels of
   * 1 or 3 on both sides, or on neither) and/or the size (free height/width). Empty when nothing helps.
   */
  imageNeeds: ('layout' | 'size')[];
  /**
   * Inputs besides the image that the model needs fed (a `temperature`): the user fixes each to a number
   * (`classifier.constants`, fit's `--const`). Empty when the model has one input or they are all given.
   */
  extraInputs?: TensorFacts[];
  /** The class-score output, or why it could not be told (several outputs, none per-class, …). */
  classOutput: ClassOutputFacts | null;
  classOutputError: string | null;
  /** Every output with several values per image (when there are several, the user names the class scores). */
  classCandidates: ClassOutputFacts[];
}

export interface InspectModelOptions {
  /** For models that leave them free: the layout and the input size. */
  layout?: Layout;
  size?: { width: number; height: number };
  provider?: ExecutionProviderSetting;
  /** Inputs besides the image fixed to a number (fit's `--const`). */
  constants?: Record<string, number>;
}

/** Which of layout and size the user could give so that a one-input 4-d image model can be read. */
export function openDimensions(runner: Pick<ModelRunner, 'inputs'>, given: InspectModelOptions = {}): ('layout' | 'size')[] {
  const shape = runner.inputs.length === 1 ? runner.inputs[0].shape : null;
  // Flat vectors ([batch, values]): layout "flat", and the image size they were made from.
  if (shape && shape.length === 2) return [...(given.layout === 'flat' ? [] : ['layout' as const]), ...(given.size ? [] : ['size' as const])];
  if (!shape || shape.length !== 4) return [];
  const isC = (d: number | null) => d === 1 || d === 3;
  const needs: ('layout' | 'size')[] = [];
  let layout = given.layout;
  if (!layout) {
    const nchw = isC(shape[1]) && !isC(shape[3]);
    const nhwc = isC(shape[3]) && !isC(shape[1]);
    if (nchw !== nhwc) layout = nchw ? 'NCHW' : 'NHWC';
    else needs.push('layout');
  }
  // Height and width under the known layout; with the layout open, the axes that cannot be channels.
  const spatial = layout === 'NHWC' ? [shape[1], shape[2]] : layout === 'NCHW' ? [shape[2], shape[3]] : shape.slice(1).filter((d) => !isC(d));
  if (!given.size && spatial.some((d) => d === null)) needs.push('size');
  return needs;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Reads a classifier file: its tensors, its image input and its class output. Throws only when the file
 * itself cannot be opened (missing, not a model OOD Lens reads, corrupt): then there is nothing to show.
 */
export async function inspectModel(path: string, options: InspectModelOptions = {}): Promise<ModelFacts> {
  const abs = resolve(path);
  let format: ModelFormat;
  try {
    format = modelFormatOf(abs);
  } catch (err) {
    throw err instanceof FitError ? new Error(err.message) : err;
  }
  const runner: ModelRunner = await loadModel(abs, format, { provider: options.provider ?? 'cpu', threads: 1, constants: options.constants });
  try {
    const facts: ModelFacts = {
      path: abs,
      format,
      backend: runner.backend,
      inputs: runner.inputs.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype })),
      outputs: runner.outputs.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype })),
      image: null,
      imageError: null,
      imageNeeds: [],
      classOutput: null,
      classOutputError: null,
      classCandidates: [],
      extraInputs: [],
    };
    if (runner.inputs.length > 1) {
      // The image is the input with the most values per image; the others are fixed to numbers by the user.
      const size = (t: (typeof runner.inputs)[number]) => (t.shape ?? []).slice(1).reduce<number>((a, d) => a * (d ?? 28), 1);
      const image = [...runner.inputs].sort((a, b) => size(b) - size(a))[0];
      facts.extraInputs = runner.inputs.filter((t) => t !== image).map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype }));
    }
    let input;
    try {
      input = readImageInput(runner, 'classifier', { layout: options.layout, size: options.size });
    } catch (err) {
      facts.imageError = message(err);
      facts.imageNeeds = openDimensions(runner, options);
      return facts;
    }
    facts.image = { name: input.name, width: input.width, height: input.height, channels: input.channels, layout: input.layout, staticBatch: input.staticBatch ?? null, dtype: input.dtype };
    // One run on two probe images tells the values per image of every output (the class count).
    const spec = { width: input.width, height: input.height, channels: input.channels, layout: input.layout };
    const probe = probeImages(spec);
    try {
      const out = await withAnyBatch(runner).run({ [input.name]: probeTensor(probe, spec, { layout: input.layout, range: input.dtype === 'uint8' ? [0, 255] : [0, 1] }) });
      const perClass = runner.outputs.filter((t) => out[t.name] && out[t.name].data.length / probe.length >= 2);
      facts.classCandidates = perClass.map((t) => {
        const rows = describeRows(out[t.name], probe.length);
        return { name: t.name, classes: rows.perRow, kind: rows.looksLikeProbabilities ? 'probabilities' : 'logits' };
      });
      if (perClass.length !== 1) {
        facts.classOutputError = perClass.length
          ? `${perClass.length} outputs give several values per image (${perClass.map((t) => `"${t.name}"`).join(', ')}); name the one that holds the class scores`
          : `no output gives more than one value per image (${runner.outputs.map((t) => `"${t.name}"`).join(', ')}); a classifier gives one score per class`;
      } else {
        facts.classOutput = facts.classCandidates[0];
      }
    } catch (err) {
      facts.classOutputError = `running the model on probe images failed: ${message(err)}`;
    }
    return facts;
  } finally {
    await runner.dispose().catch(() => undefined);
  }
}
