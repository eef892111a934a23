/**
 * Third-party-style models for the "bring your own model" tests (training/third-party-models.ts re-wraps the
 * built-in MNIST models the way other projects ship theirs), generated once per test process, plus small
 * IDX files (images with their labels beside them) cut from MNIST test.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeThirdPartyModels } from '../training/third-party-models';
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
