/**
 * Third-party-style models for the "bring your own model" tests (training/third-party-models.ts re-wraps the
 * built-in MNIST models the way other projects ship theirs), generated once per test process, plus small
 * IDX files (images with their labels beside them) cut from MNIST test.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { IMAGENET_MEAN, IMAGENET_STD, makeThirdPartyModels } from '../training/third-party-models';
import { idxImages, readIdxFile } from '../src/inference/io/idx';
import { MNIST_TEST_IMAGES, MNIST_TEST_LABELS, REPO, tempDir } from './helpers';

let models: ReturnType<typeof makeThirdPartyModels> | undefined;

/** Every third-party-style model, written once per process under a temporary folder. */
export function thirdPartyModels(): ReturnType<typeof makeThirdPartyModels> {
  models ??= makeThirdPartyModels(tempDir('third-party-'));
  return models;
}

/** Writes MNIST test images [from, from + count) as `<dir>/<name>-images-idx3-ubyte` with labels beside it. */
export function writeMnistIdx(dir: string, name: string, from: number, count: number): { images: string; labels: Uint8Array } {
  mkdirSync(dir, { recursive: true });
  const source = idxImages(readIdxFile(MNIST_TEST_IMAGES), MNIST_TEST_IMAGES);
  const allLabels = readIdxFile(MNIST_TEST_LABELS).data;
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x00000803, 0);
  header.writeUInt32BE(count, 4);
  header.writeUInt32BE(28, 8);
  header.writeUInt32BE(28, 12);
  const body = Buffer.concat(Array.from({ length: count }, (_, i) => Buffer.from(source.image(from + i))));
  const images = join(dir, `${name}-images-idx3-ubyte`);
  writeFileSync(images, Buffer.concat([header, body]));
  const labels = allLabels.slice(from, from + count);
  const labelHeader = Buffer.alloc(8);
  labelHeader.writeUInt32BE(0x00000801, 0);
  labelHeader.writeUInt32BE(count, 4);
  writeFileSync(join(dir, `${name}-labels-idx1-ubyte`), Buffer.concat([labelHeader, Buffer.from(labels)]));
  return { images, labels };
}

export function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'src', 'cli', 'main.ts'), ...args], { cwd: REPO, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * An uncalibrated classifier-only pair in `dir` that takes 32×32 RGB NCHW images normalised with ImageNet's
 * mean/std and enlarges smaller ones in onnxruntime: the CIFAR-style classifier with a Transpose in front (a
 * PyTorch export's layout). Returns the pair folder.
 */
export async function nchwEnlargingPair(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const model = onnx.ModelProto.decode(readFileSync((await thirdPartyModels()).cifar.classifier));
  const graph = model.graph!;
  graph.input = graph.input!.filter((i) => i.name !== 'pixel_values');
  graph.input.push(onnx.ValueInfoProto.create({ name: 'pixels_nchw', type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: 3 }, { dimValue: 32 }, { dimValue: 32 }] } } } }));
  graph.node!.unshift(onnx.NodeProto.create({ opType: 'Transpose', input: ['pixels_nchw'], output: ['pixel_values'], attribute: [{ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: [0, 2, 3, 1] }] }));
  writeFileSync(join(dir, 'classifier.onnx'), onnx.ModelProto.encode(model).finish());
  const input = { width: 32, height: 32, channels: 3, layout: 'NCHW', resizeKernel: 'linear', enlargeWith: 'onnxruntime', mean: IMAGENET_MEAN, std: IMAGENET_STD };
  writeFileSync(join(dir, 'ood-pair.json'), JSON.stringify({ name: 'cifar-nchw', input, classifier: { path: 'classifier.onnx', format: 'onnx', outputKind: 'logits', labels: [...'0123456789'] } }));
  return dir;
}
