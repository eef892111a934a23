/** `ood-lens fit`: a pair from your own classifier (and optional VAE) and in-distribution images; see fitPair. */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { FitError, type FitOptions, fitPair, type ManifestReader, type Scaling } from '../inference/fit/fit';
import type { Layout } from '../inference/pair/manifest';
import { UsageError } from './options';

export const FIT_USAGE = `  ood-lens fit --classifier <model.onnx | model.json> [--vae <model> | --encoder <model> --decoder <model> | --no-vae]
               --data <folder | idx | manifest> --out <dir>
               [--range LO,HI] [--mean M[,M,M]] [--std S[,S,S]] [--labels a,b,…]
               [--vae-range LO,HI] [--vae-mean M[,M,M]] [--vae-std S[,S,S]]
               [--likelihood bernoulli|continuous-bernoulli|gaussian|discretized-logistic] [--sigma S]
               [--vae-outputs RECON,MU,LOGVAR] [--output NAME] [--output-kind logits|probabilities]
               [--vae-epochs N] [--vae-time-limit SECONDS]
               [--features LAYER] [--layout NCHW|NHWC] [--size WxH] [--name NAME] [--seed N] [--limit N] [--alpha A] [--force]`;

function numbers(flag: string, raw: string | undefined, count?: number[]): number[] | undefined {
  if (raw === undefined) return undefined;
  const values = raw.split(',').map((s) => Number(s.trim()));
  if (values.some((v) => !Number.isFinite(v)) || (count && !count.includes(values.length))) {
    throw new UsageError(`${flag} needs ${count ? count.join(' or ') : 'comma-separated'} number(s) separated by commas (got "${raw}")`);
  }
  return values;
}

function scalingFrom(prefix: string, all: Record<string, unknown>): Scaling {
  const values = all as Record<string, string | undefined>;
  const range = numbers(`--${prefix}range`, values[`${prefix}range`], [2]) as [number, number] | undefined;
  if (range && !(range[0] < range[1])) throw new UsageError(`--${prefix}range: the first value must be below the second (got ${range.join(',')})`);
  const std = numbers(`--${prefix}std`, values[`${prefix}std`], [1, 3]);
  if (std?.some((s) => !(s > 0))) throw new UsageError(`--${prefix}std: every value must be above 0`);
  return { range, mean: numbers(`--${prefix}mean`, values[`${prefix}mean`], [1, 3]), std };
}

/** Dataset manifests for --data, parsed by the extension's manifest reader (paths resolved against the manifest's folder). */
export const datasetManifestReader: ManifestReader = async (path, format, signal) => {
  const { parseManifest } = await import('../providers/datasetManifest');
  const parsed = await parseManifest(readFileSync(path, 'utf8'), { format, baseDir: dirname(path), signal });
  if (!parsed.isManifest) throw new FitError(`--data ${path}: no column of image paths found in this ${format} file`);
  return parsed.rows.filter((r) => r.path !== null).map((r) => ({ path: r.path!, label: r.label }));
};

export async function runFit(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      classifier: { type: 'string' },
      vae: { type: 'string' },
      'no-vae': { type: 'boolean' },
      'vae-epochs': { type: 'string' },
      'vae-time-limit': { type: 'string' },
      encoder: { type: 'string' },
      decoder: { type: 'string' },
      data: { type: 'string', multiple: true },
      out: { type: 'string' },
      range: { type: 'string' },
      mean: { type: 'string' },
      std: { type: 'string' },
      labels: { type: 'string' },
      'vae-range': { type: 'string' },
      'vae-mean': { type: 'string' },
      'vae-std': { type: 'string' },
      likelihood: { type: 'string' },
      sigma: { type: 'string' },
      'vae-outputs': { type: 'string' },
      output: { type: 'string' },
      'output-kind': { type: 'string' },
      features: { type: 'string' },
      layout: { type: 'string' },
      size: { type: 'string' },
      name: { type: 'string' },
      seed: { type: 'string' },
      limit: { type: 'string' },
      alpha: { type: 'string' },
      provider: { type: 'string' },
      'batch-size': { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`Usage:\n${FIT_USAGE}\n`);
    return 0;
  }
  if (!values.classifier) throw new UsageError('fit needs --classifier <model.onnx | model.json>');
  if (!values.data?.length) throw new UsageError('fit needs --data <folder | idx | manifest> (in-distribution images)');
  if (!values.out) throw new UsageError('fit needs --out <dir> (the pair folder to write)');
  const likelihoodType = values.likelihood ?? 'bernoulli';
  if (!['bernoulli', 'continuous-bernoulli', 'gaussian', 'discretized-logistic'].includes(likelihoodType)) throw new UsageError(`--likelihood must be bernoulli, continuous-bernoulli, gaussian or discretized-logistic (got "${likelihoodType}")`);
  const sigma = values.sigma === undefined ? undefined : Number(values.sigma);
  if (sigma !== undefined && !(sigma > 0)) throw new UsageError(`--sigma must be a number above 0 (got "${values.sigma}")`);
  if (likelihoodType === 'gaussian' && sigma === undefined) throw new UsageError('--likelihood gaussian needs --sigma (the decoder standard deviation in [0, 1] pixel units, e.g. 0.1)');
  const vaeOutputs = values['vae-outputs']?.split(',').map((s) => s.trim());
  if (vaeOutputs && (vaeOutputs.length !== 3 || vaeOutputs.some((s) => !s))) throw new UsageError('--vae-outputs needs three names: RECONSTRUCTION,MU,LOGVAR');
  if (values['output-kind'] && !['logits', 'probabilities'].includes(values['output-kind'])) throw new UsageError(`--output-kind must be logits or probabilities (got "${values['output-kind']}")`);
  if (values.layout && !['NCHW', 'NHWC'].includes(values.layout)) throw new UsageError(`--layout must be NCHW or NHWC (got "${values.layout}")`);
  const size = values.size?.match(/^(\d+)x(\d+)$/i);
  if (values.size && !size) throw new UsageError(`--size must be WIDTHxHEIGHT, e.g. 28x28 (got "${values.size}")`);
  const integer = (flag: string, raw: string | undefined, min: number) => {
    if (raw === undefined) return undefined;
    const v = Number(raw);
    if (!Number.isInteger(v) || v < min) throw new UsageError(`${flag} must be an integer ≥ ${min} (got "${raw}")`);
    return v;
  };
  const alpha = values.alpha === undefined ? undefined : Number(values.alpha);
  if (alpha !== undefined && !(alpha > 0 && alpha < 1)) throw new UsageError(`--alpha must be between 0 and 1 (got "${values.alpha}")`);
  const provider = values.provider ?? 'auto';
  if (!['auto', 'cpu', 'cuda'].includes(provider)) throw new UsageError(`--provider must be auto, cpu or cuda (got "${provider}")`);
  const labels = values.labels?.split(',').map((s) => s.trim());
  if (labels && (labels.length < 2 || labels.some((l) => !l))) throw new UsageError('--labels needs at least two non-empty class names separated by commas');

  if (values['no-vae'] && (values.vae || values.encoder || values.decoder)) throw new UsageError('--no-vae: give either --no-vae (a classifier-only pair) or a VAE (--vae, --encoder/--decoder), not both');
  const vaeTimeLimit = values['vae-time-limit'] === undefined ? undefined : Number(values['vae-time-limit']);
  if (vaeTimeLimit !== undefined && !(vaeTimeLimit > 0)) throw new UsageError(`--vae-time-limit must be a number of seconds above 0 (got "${values['vae-time-limit']}")`);
  const options: FitOptions = {
    classifier: values.classifier,
    vae: values.vae,
    encoder: values.encoder,
    decoder: values.decoder,
    trainVae: !values['no-vae'],
    vaeEpochs: integer('--vae-epochs', values['vae-epochs'], 1),
    vaeTimeLimit,
    data: values.data,
    out: values.out,
    scaling: scalingFrom('', values),
    vaeScaling: scalingFrom('vae-', values),
    labels,
    name: values.name,
    classifierOutput: values.output,
    outputKind: values['output-kind'] as FitOptions['outputKind'],
    vaeOutputs: vaeOutputs ? { reconstruction: vaeOutputs[0], mu: vaeOutputs[1], logvar: vaeOutputs[2] } : undefined,
    likelihood: { type: likelihoodType as 'bernoulli', ...(sigma !== undefined ? { sigma } : {}) },
    featuresLayer: values.features,
    layout: values.layout as Layout | undefined,
    size: size ? { width: Number(size[1]), height: Number(size[2]) } : undefined,
    seed: integer('--seed', values.seed, 0),
    limit: integer('--limit', values.limit, 1),
    alpha,
    provider: provider as FitOptions['provider'],
    batchSize: integer('--batch-size', values['batch-size'], 1),
    force: values.force,
    readManifest: datasetManifestReader,
  };
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  let lastProgress = 0;
  let lastPhase = '';
  try {
    const result = await fitPair({
      ...options,
      signal: controller.signal,
      onDecision: (line) => process.stdout.write(`${line}\n`),
      onNotice: (message) => process.stderr.write(`ood-lens: note: ${message}\n`),
      onProgress: (p) => {
        // Counted phases (fitting, scoring) at most once a second and at their end; the others once each.
        const now = Date.now();
        if (p.phase === 'training VAE' && p.vae) {
          if (now - lastProgress > 2000 || p.done === p.total) {
            lastProgress = now;
            const left = p.vae.secondsLeft;
            process.stderr.write(`fit: training VAE: epoch ${p.vae.epoch} of ${p.vae.epochs}, loss ${p.vae.loss.toFixed(2)} nats, ${Math.round((100 * p.done) / p.total)}%, about ${left < 90 ? `${Math.round(left)} s` : `${Math.round(left / 60)} min`} left\n`);
          }
          lastPhase = p.phase;
          return;
        }
        const counted = p.phase === 'scoring' || p.phase === 'fitting detectors';
        if (counted ? p.total > 0 && (now - lastProgress > 1000 || p.done === p.total) : p.phase !== lastPhase) {
          lastProgress = now;
          process.stderr.write(counted ? `fit: ${p.phase} ${p.done} of ${p.total} images\n` : `fit: ${p.phase}…\n`);
        }
        lastPhase = p.phase;
      },
    });
    process.stdout.write(`wrote ${result.manifestPath} (${result.seconds.toFixed(1)} s). Score images with: ood-lens score --pair ${options.out} <images>\n`);
    return result.failed ? 2 : 0;
  } catch (err) {
    if (controller.signal.aborted) {
      process.stderr.write('ood-lens: fit interrupted; nothing was written\n');
      return 130;
    }
    if (err instanceof FitError) throw new Error(err.message);
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
  }
}
