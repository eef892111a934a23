/** `ood-lens fit`: a pair from your own classifier (and optional VAE) and in-distribution images; see fitPair. */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { FitError, type FitOptions, fitPair, type ManifestReader, type Scaling } from '../inference/fit/fit';
import { type Layout, RESIZE_KERNELS, type ResizeKernel } from '../inference/pair/manifest';
import { joinNegativeValues, UsageError } from './options';

export const FIT_USAGE = `  ood-lens fit --classifier <model.onnx | model.json> [--vae <model> | --encoder <model> --decoder <model> | --no-vae]
               --data <folder | idx | manifest> --out <dir>
               [--range LO,HI] [--mean M[,M,M]] [--std S[,S,S]] [--labels a,b,…]
               [--vae-range LO,HI] [--vae-mean M[,M,M]] [--vae-std S[,S,S]]
               [--likelihood bernoulli|continuous-bernoulli|gaussian|discretized-logistic] [--sigma S]
               [--vae-outputs RECON,MU,LOGVAR] [--output NAME] [--output-kind logits|probabilities]
               [--vae-epochs N] [--vae-time-limit SECONDS]
               [--features LAYER] [--layout NCHW|NHWC|flat] [--size WxH] [--padding N] [--resize-kernel K] [--enlarge-with libvips|onnxruntime] [--const NAME=VALUE]… [--name NAME]
               [--seed N] [--limit N] [--alpha A] [--provider auto|cpu|cuda] [--batch-size N] [--force ["REASON"]]`;

/** \`ood-lens fit --help\`: every option, what it does, and an example. */
export const FIT_HELP = `ood-lens fit — a pair from your own classifier (and optionally a VAE) and in-distribution images.

Usage:
${FIT_USAGE}

Before it writes anything, fit checks that the classifier is fed right: on up to 300 of your images it compares
the scaling you give with 0..1, −1..1, 0..255 and the usual mean/std sets (and the other layout where the input
shape allows it). With labels (IDX labels beside the images, a manifest's label column) it refuses when another
feeding is 5 points better (naming its flags) or the accuracy is below twice chance; without labels, when the
output is degenerate (one class for most images, near-uniform confidence). It also refuses a classifier whose
output for an image depends on the rest of its batch (BatchNorm left in training mode). What it found is stored
in the pair (fit.check) and shown by ood-lens info.

Models and data:
  --classifier PATH    the classifier: an .onnx file, or a TensorFlow.js model.json (or its folder).
                         e.g. --classifier resnet18.onnx
  --vae PATH           optional VAE with one model: image → reconstruction, mu, logvar.
  --encoder PATH --decoder PATH
                       optional split VAE: encoder image → mu, logvar; decoder z → reconstruction.
  --data PATH          in-distribution images: a folder, an IDX file (labels read from the -labels- file beside
                       it) or a dataset manifest (.csv .tsv .jsonl .txt, with a label column if it has one).
                       Repeatable. e.g. --data train-images-idx3-ubyte --data extra/
  --out DIR            the pair folder to write. fit touches only files it wrote itself.

How images become the classifier's input (pixels 0..255 → range, then (x − mean) / std):
  --range LO,HI        pixel range (default 0,1). e.g. --range -1,1   --range 0,255
  --mean M[,M,M]       subtracted per channel after --range; one value for every channel or one per channel.
                         e.g. --mean 0.485,0.456,0.406 (ImageNet)   --mean 0.1307 (MNIST)
  --std S[,S,S]        divided per channel after the mean. e.g. --std 0.229,0.224,0.225
  --layout L           NCHW, NHWC or flat (the model takes [N, H·W·C] vectors; give --size). Read from the model
                       when its shape tells. e.g. --layout NHWC   --layout flat --size 28x28
  --size WxH           input size when the model leaves it free (or for --layout flat). e.g. --size 224x224
  --padding N          a border of N background pixels on each side: images are resized to the model's size less
                       2·N and then padded, as LeNet-style models take 28×28 digits in a 32×32 field. The VAE
                       fit trains sees the same padded images. Recorded in the pair. e.g. --padding 2
  --resize-kernel K    how images are resized to the model's size: linear (default: bilinear, as torchvision's
                       Resize and PIL), nearest, cubic, mitchell, lanczos2 or lanczos3. Use the one the model
                       was trained with. Recorded in the pair. e.g. --resize-kernel lanczos3
  --enlarge-with W     what enlarges images smaller than the model's input: onnxruntime (default with the linear
                       kernel: half-pixel bilinear as torchvision, one call per batch) or libvips (sharp; the
                       default with any other kernel). Larger images are always shrunk by libvips. Recorded in the pair.
  --const NAME=VALUE   feeds an extra model input the same number every time (repeatable).
                         e.g. --const temperature=1
  A uint8 input is fed the 8-bit pixels themselves (no --range, --mean or --std).

The classifier's output:
  --labels a,b,…       class names in output order (default: the class indices 0…N−1). The data's labels must
                       name classes: as these names, or as class indices. e.g. --labels cat,dog
  --output NAME        the output that holds one score per class, when the model has several. e.g. --output logits
  --output-kind K      logits or probabilities (default: read from a probe run).
  --features LAYER     TensorFlow.js classifiers: the layer whose output is the penultimate features (KNN and
                       Mahalanobis detectors). ONNX: found in the graph. e.g. --features dense_1

The VAE (without --vae or --encoder/--decoder, fit trains one on the fit part of the data):
  --no-vae             no VAE: a classifier-only pair.
  --vae-epochs N       epochs of the VAE fit trains (default: from the data size, about 5 minutes on 2 cores).
  --vae-time-limit S   stop training after the epoch that passes S seconds (the VAE then depends on the machine).
  --vae-range LO,HI --vae-mean M[,M,M] --vae-std S[,S,S]
                       its input scaling, as for the classifier (default 0,1).
  --likelihood T       bernoulli (default), continuous-bernoulli, gaussian (needs --sigma) or discretized-logistic.
  --sigma S            the Gaussian decoder's standard deviation in [0, 1] pixel units. e.g. --sigma 0.1
  --vae-outputs R,MU,LOGVAR
                       the VAE's output names, when fit cannot tell them apart. e.g. --vae-outputs recon,mu,logvar

The split and the run:
  --name NAME          the pair's name (default: the --out folder's name).
  --seed N             seed of the shuffle into fit / calibration / check parts (default 0).
  --limit N            use only the first N images.
  --alpha A            false-alarm level the held-out check measures (default 0.01).
  --provider P         auto, cpu or cuda (default auto).
  --batch-size N       images per model run (default: by input size, 64 for small images, 16 for 224×224 RGB).
  --force ["REASON"]   replace a pair that fit wrote in --out; with a reason, also write the pair when the
                       feeding check refuses it. The reason is stored in the pair, and info, score and the
                       Inspect panel warn about it. e.g. --force "labels are coarse super-classes"

Examples:
  ood-lens fit --classifier mnist.onnx --data train-images-idx3-ubyte --out my-pair
  ood-lens fit --classifier vit.onnx --range -1,1 --data photos/ --out vit-pair
  ood-lens fit --classifier resnet.onnx --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --data val.csv --out r18
  ood-lens fit --classifier mlp.onnx --layout flat --size 28x28 --const temperature=1 --data digits/ --out mlp`;

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

const FIT_OPTIONS = {
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
  'resize-kernel': { type: 'string' },
  'enlarge-with': { type: 'string' },
  padding: { type: 'string' },
  const: { type: 'string', multiple: true },
  name: { type: 'string' },
  seed: { type: 'string' },
  limit: { type: 'string' },
  alpha: { type: 'string' },
  provider: { type: 'string' },
  'batch-size': { type: 'string' },
  force: { type: 'boolean' },
  'force-reason': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * `--force "reason"` and `--force=reason` carry the reason a refused pair is written anyway; a bare `--force`
 * only replaces a pair fit wrote. fit takes no positional arguments, so a word after --force is its reason.
 */
export function splitForce(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token.startsWith('--force=')) out.push('--force', `--force-reason=${token.slice('--force='.length)}`);
    else if (token === '--force' && argv[i + 1] !== undefined && !argv[i + 1].startsWith('-')) {
      out.push('--force', `--force-reason=${argv[i + 1]}`);
      i++;
    } else out.push(token);
  }
  return out;
}

function forceReason(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const reason = raw.trim();
  if (!reason) throw new UsageError('--force: the reason is empty; write why the pair should be written anyway, e.g. --force "labels are coarse super-classes"');
  if (reason.length > 1000) throw new UsageError('--force: the reason is longer than 1,000 characters');
  return reason;
}

export async function runFit(argv: string[]): Promise<number> {
  const valued = Object.entries(FIT_OPTIONS).filter(([, o]) => o.type === 'string').map(([name]) => name);
  const { values } = parseArgs({
    args: joinNegativeValues(splitForce(argv), valued),
    options: FIT_OPTIONS,
  });
  if (values.help) {
    process.stdout.write(`${FIT_HELP}\n`);
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
  if (values.layout && !['NCHW', 'NHWC', 'flat'].includes(values.layout)) throw new UsageError(`--layout must be NCHW, NHWC or flat (got "${values.layout}")`);
  if (values.layout === 'flat' && !values.size) throw new UsageError('--layout flat needs --size WIDTHxHEIGHT: the image size the model was trained on (e.g. --size 28x28 for 784 values)');
  const constants: Record<string, number> = {};
  for (const raw of values.const ?? []) {
    const m = /^([^=]+)=(.+)$/.exec(raw);
    const value = m ? Number(m[2].trim()) : NaN;
    if (!m || !Number.isFinite(value)) throw new UsageError(`--const needs NAME=NUMBER, e.g. --const temperature=1 (got "${raw}")`);
    if (m[1].trim() in constants) throw new UsageError(`--const: "${m[1].trim()}" is given twice`);
    constants[m[1].trim()] = value;
  }
  const resizeKernel = values['resize-kernel'];
  if (resizeKernel !== undefined && !(RESIZE_KERNELS as readonly string[]).includes(resizeKernel)) throw new UsageError(`--resize-kernel must be one of ${RESIZE_KERNELS.join(', ')} (got "${resizeKernel}")`);
  const enlargeWith = values['enlarge-with'];
  if (enlargeWith !== undefined && enlargeWith !== 'libvips' && enlargeWith !== 'onnxruntime') throw new UsageError(`--enlarge-with must be libvips or onnxruntime (got "${enlargeWith}")`);
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
    resizeKernel: resizeKernel as ResizeKernel | undefined,
    enlargeWith: enlargeWith as FitOptions['enlargeWith'],
    padding: integer('--padding', values.padding, 0),
    constants: Object.keys(constants).length ? constants : undefined,
    seed: integer('--seed', values.seed, 0),
    limit: integer('--limit', values.limit, 1),
    alpha,
    provider: provider as FitOptions['provider'],
    batchSize: integer('--batch-size', values['batch-size'], 1),
    force: values.force || values['force-reason'] !== undefined,
    forceReason: forceReason(values['force-reason']),
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
