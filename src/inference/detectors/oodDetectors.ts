/**
 * One interface for every out-of-distribution score the engine computes: MSP, energy, ELBO, complexity S(x),
 * KNN and Mahalanobis on the classifier's features. Each detector
 *  - `fit`s to in-distribution data (the feature detectors; the others are fitted by training their models),
 *  - `score`s a batch in one stated direction: **higher = more out-of-distribution**,
 *  - `calibrate`s: turns held-out images' scores into the calibration values its conformal test uses.
 * The verdict (calibration.ts, `decideTests`) runs over the pair's list of detectors and their shares of α.
 * This list is the extension point: a new score is one more detector here and one more TestName.
 */
import { calibrationValues, type CalibrationScores } from '../pair/calibration';
import { KnnIndex, l2NormaliseRows } from '../features/knnIndex';
import { fitMahalanobis, MahalanobisIndex, mahalanobisScores, type MahalanobisModel } from '../features/mahalanobis';
import { combineLayerDistances, fitLayerGaussian, type LayerGaussian, layerRows } from '../features/layerGaussian';
import type { LoadedPair } from '../pair/pair';
import type { ImageResult } from '../engineTypes';
import type { TestName } from '../../shared/rules';

/** What the models produced for one batch, per image (n images). */
export interface ModelBatch {
  n: number;
  msp: Float64Array;
  /** −logsumexp(logits) (NaN when the classifier outputs probabilities). */
  energy: Float64Array;
  predictions: Int32Array;
  /** ELBO in nats; null without a VAE. */
  elbo: Float64Array | null;
  /** S(x) in bits; null when complexity is off or there is no VAE. */
  complexity: Float64Array | null;
  /** Penultimate features, n × featureDims; null when the pair has none. */
  features: Float32Array | null;
  featureDims: number;
  /** Earlier layers' pooled activations, one n × dims array per layer the pair exposes (in its order); null when none. */
  layerFeatures?: Float32Array[] | null;
}

/** In-distribution features to fit to, with each image's class (given labels or the classifier's prediction). */
export interface FeatureFitData {
  features: Float32Array;
  dims: number;
  classes: Int32Array;
  classCount: number;
  /** Earlier layers' pooled activations of the same images, per layer (tensor name, rows × dims). */
  layers?: { tensor: string; features: Float32Array; dims: number }[];
}

export interface OodDetector {
  readonly test: TestName;
  readonly name: string;
  /** Fits to in-distribution features; detectors whose model is trained elsewhere have nothing to fit. */
  fit(data: FeatureFitData): Promise<void>;
  /** One OOD score per image of the batch, higher = more out-of-distribution (NaN: no score for it). */
  score(batch: ModelBatch): Promise<Float64Array>;
  /** The calibration entry for held-out in-distribution images' scores (never the fit images'). */
  calibrate(heldOutScores: number[]): { key: keyof CalibrationScores; values: number[] };
  dispose(): Promise<void>;
}

/** A score the models already produce (MSP, energy, ELBO, S): nothing to fit, a read-out of the batch. */
class ModelScoreDetector implements OodDetector {
  constructor(readonly test: TestName, readonly name: string, private readonly read: (b: ModelBatch) => Float64Array | null) {}
  async fit(): Promise<void> {
    // Fitted with the model itself (the classifier or the VAE, in training).
  }
  async score(batch: ModelBatch): Promise<Float64Array> {
    return this.read(batch) ?? new Float64Array(batch.n).fill(NaN);
  }
  calibrate(scores: number[]) {
    return calibrationValues(this.test, scores);
  }
  async dispose(): Promise<void> {}
}

export function mspDetector(): OodDetector {
  return new ModelScoreDetector('confidence', 'Classifier confidence (MSP)', (b) => b.msp.map((m) => -m));
}
export function energyDetector(): OodDetector {
  return new ModelScoreDetector('energy', 'Energy (−logsumexp of the logits)', (b) => b.energy);
}
export function elboDetector(): OodDetector {
  return new ModelScoreDetector('elbo', 'ELBO (VAE)', (b) => b.elbo?.map((e) => -e) ?? null);
}
export function complexityDetector(): OodDetector {
  return new ModelScoreDetector('complexity', 'Complexity-corrected S(x)', (b) => b.complexity);
}

function needFeatures(batch: ModelBatch, dims: number, what: string): Float32Array {
  if (!batch.features) throw new Error(`the ${what} detector needs the classifier's features, which this batch has none of`);
  if (batch.featureDims !== dims) throw new Error(`the classifier gives ${batch.featureDims} features per image, but the ${what} detector was fitted on ${dims}; fit the detectors again`);
  return batch.features;
}

/** KNN on L2-normalised features (Sun et al. 2022): distance to the k-th nearest fit image. */
export class KnnDetector implements OodDetector {
  readonly test = 'knn' as const;
  readonly name: string;
  private index?: KnnIndex;
  /** The fit images' normalised features (what `fit` produced, or what was read from the pair). */
  bank?: Float32Array;
  dims = 0;

  constructor(readonly k: number, private readonly pair: Pick<LoadedPair, 'loadOptions' | 'manifestPath'>) {
    this.name = `KNN distance (k = ${k})`;
  }

  /**
   * A detector over a stored bank. The search index keeps the bank and feeds it to each search, so `bank`
   * stays undefined here (`stored` counts it); `fit` keeps its bank, which fit writes to the pair.
   */
  static async fromBank(bank: Float32Array, dims: number, k: number, pair: Pick<LoadedPair, 'loadOptions' | 'manifestPath'>): Promise<KnnDetector> {
    const d = new KnnDetector(k, pair);
    await d.use(bank, dims);
    d.bank = undefined;
    return d;
  }

  /** Features in the searched bank. */
  get stored(): number {
    return this.index?.count ?? 0;
  }

  async fit(data: FeatureFitData): Promise<void> {
    await this.use(l2NormaliseRows(data.features.slice(), data.dims), data.dims);
  }

  private async use(bank: Float32Array, dims: number): Promise<void> {
    await this.index?.dispose();
    this.bank = bank;
    this.dims = dims;
    this.index = await KnnIndex.create(bank, dims, this.k, this.pair.loadOptions, this.pair.manifestPath);
  }

  async score(batch: ModelBatch): Promise<Float64Array> {
    if (!this.index) throw new Error('the KNN detector is not fitted');
    const queries = l2NormaliseRows(needFeatures(batch, this.dims, 'KNN').slice(), this.dims);
    return this.index.kthDistances(queries);
  }

  calibrate(scores: number[]) {
    return calibrationValues('knn', scores);
  }

  async dispose(): Promise<void> {
    await this.index?.dispose();
    this.index = undefined;
  }
}

/** Class-conditional Gaussians with a shared covariance (Lee et al. 2018): the smallest Mahalanobis distance². */
export class MahalanobisDetector implements OodDetector {
  readonly test = 'mahalanobis' as const;
  readonly name = 'Mahalanobis distance (class means, shared covariance)';
  private index?: Promise<MahalanobisIndex>;
  constructor(
    private readonly pair: Pick<LoadedPair, 'loadOptions' | 'manifestPath'>,
    public model?: MahalanobisModel,
  ) {}

  async fit(data: FeatureFitData): Promise<void> {
    await this.dispose();
    this.model = fitMahalanobis(data.features, data.classes, data.dims, data.classCount);
  }

  async score(batch: ModelBatch): Promise<Float64Array> {
    const model = this.model;
    if (!model) throw new Error('the Mahalanobis detector is not fitted');
    const features = needFeatures(batch, model.dims, 'Mahalanobis');
    // The whitening session is made on first use: fit only fits, and a pair's engine scores with it.
    this.index ??= MahalanobisIndex.create(model, this.pair.loadOptions, this.pair.manifestPath);
    return (await this.index).scores(features);
  }

  calibrate(scores: number[]) {
    return calibrationValues('mahalanobis', scores);
  }

  async dispose(): Promise<void> {
    const index = this.index;
    this.index = undefined;
    await (await index?.catch(() => undefined))?.dispose();
  }
}

/**
 * Earlier conv layers, one Gaussian each (mean + shrunk shared covariance, no class labels; layerGaussian.ts):
 * the mean over layers of each layer's Mahalanobis distance², standardised by the fit images' median and spread.
 */
export class LayerGaussianDetector implements OodDetector {
  readonly test = 'layers' as const;
  readonly name = 'Earlier-layer Gaussian distance (conv blocks pooled to 2×2)';
  private indices?: Promise<MahalanobisIndex[]>;
  constructor(
    private readonly pair: Pick<LoadedPair, 'loadOptions' | 'manifestPath'>,
    public layers?: LayerGaussian[],
  ) {}

  async fit(data: FeatureFitData): Promise<void> {
    await this.dispose();
    if (!data.layers?.length) throw new Error('the earlier-layer detector needs the classifier\'s earlier layers, which the fit data has none of');
    this.layers = data.layers.map((l) => fitLayerGaussian(l.tensor, l.features, l.dims, mahalanobisScores));
  }

  async score(batch: ModelBatch): Promise<Float64Array> {
    const layers = this.layers;
    if (!layers) throw new Error('the earlier-layer detector is not fitted');
    const given = batch.layerFeatures;
    if (!given || given.length !== layers.length) throw new Error(`the earlier-layer detector was fitted on ${layers.length} layers, but the classifier gives ${given?.length ?? 0}; fit the detectors again`);
    this.indices ??= Promise.all(layers.map((l) => MahalanobisIndex.create(l.model, this.pair.loadOptions, this.pair.manifestPath)));
    const indices = await this.indices;
    const perLayer: Float64Array[] = [];
    for (let k = 0; k < layers.length; k++) {
      const l = layers[k];
      if (given[k].length !== batch.n * l.inputDims) throw new Error(`layer "${l.tensor}" gives ${given[k].length / Math.max(1, batch.n)} values per image, but the earlier-layer detector was fitted on ${l.inputDims}; fit the detectors again`);
      perLayer.push(await indices[k].scores(layerRows(given[k], l.inputDims, l.pooling)));
    }
    return combineLayerDistances(layers, perLayer);
  }

  calibrate(scores: number[]) {
    return calibrationValues('layers', scores);
  }

  async dispose(): Promise<void> {
    const indices = this.indices;
    this.indices = undefined;
    for (const index of (await indices?.catch(() => undefined)) ?? []) await index.dispose();
  }
}

/**
 * The detectors a loaded pair can score with: MSP and energy always; ELBO, and S(x) when complexity is on,
 * with a VAE; KNN and Mahalanobis when the pair has fitted features. KNN's k comes from the manifest's
 * detector list (default 1).
 */
export async function pairDetectors(pair: LoadedPair, options: { complexity: boolean }): Promise<OodDetector[]> {
  const m = pair.manifest;
  const hasVae = !!(pair.vae || pair.encoder);
  const list: OodDetector[] = [];
  if (hasVae) list.push(elboDetector());
  if (hasVae && options.complexity) list.push(complexityDetector());
  list.push(mspDetector());
  if (m.classifier.outputKind === 'logits') list.push(energyDetector());
  const fit = pair.featureFit;
  if (fit?.bank) {
    const k = m.detectors?.find((d) => d.test === 'knn')?.k ?? 1;
    list.push(await KnnDetector.fromBank(fit.bank, fit.dims, k, pair));
    fit.bank = undefined; // the search index has it now
  }
  if (fit?.mahalanobis) list.push(new MahalanobisDetector(pair, fit.mahalanobis));
  if (fit?.layers?.length && pair.names.layerOutputs?.length) list.push(new LayerGaussianDetector(pair, fit.layers));
  return list;
}

/** A test's OOD score (higher = more out-of-distribution) as recorded in a result; null when it has none. */
export function resultOodScore(test: TestName, r: ImageResult): number | null {
  const neg = (v: number | null | undefined) => (v === null || v === undefined ? null : -v);
  switch (test) {
    case 'elbo':
      return neg(r.elbo);
    case 'complexity':
      return r.complexityScore;
    case 'confidence':
      return neg(r.msp);
    case 'energy':
      return r.energy;
    case 'knn':
      return r.knnDistance ?? null;
    case 'mahalanobis':
      return r.mahalanobis ?? null;
    case 'layers':
      return r.layerDistance ?? null;
    case 'fisher':
      return r.fisherScore ?? null;
  }
}
