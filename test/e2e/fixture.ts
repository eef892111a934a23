/**
 * The fixture workspace of an end-to-end run, written fresh under a temp folder: real MNIST and FashionMNIST
 * test images as PNGs, a corrupt PNG, CSV and JSONL manifests naming them, an invalid pair manifest and a
 * valid workspace copy of the built-in pair (for Restricted Mode).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { FASHION_TEST_IMAGES, MNIST_PAIR, MNIST_TEST_IMAGES, MNIST_TEST_LABELS, labelsOf, writeIdxPngs } from '../helpers';

export interface ManifestTarget {
  /** The manifest file, relative to the workspace. */
  file: string;
  /** 1-based line and column of a path inside it (for Go to Line). */
  line: number;
  column: number;
  /** The image path as written on that line. */
  path: string;
}

export interface Fixture {
  root: string;
  /** An MNIST test digit at the workspace root (in-distribution) and its label. */
  mnist: { name: string; label: string };
  /** A FashionMNIST test image at the workspace root (out-of-distribution). */
  fashion: { name: string };
  /** `images/`: the folder that is scored. */
  folder: { name: string; images: string[] };
  broken: string;
  csv: { mnist: ManifestTarget; fashion: ManifestTarget };
  jsonl: { mnist: ManifestTarget; fashion: ManifestTarget };
  /** Workspace-relative pair folders. */
  brokenPair: string;
  workspacePair: string;
  workspacePairName: string;
  /**
   * Issue 15 item 4: `hostile.csv` — a scored row with a Markdown command link in its label, a quoted multi-line
   * path holding a command link (the attack), and a symbolic link inside the workspace to an image
   * outside it (`outsideImage`, next to the workspace folder).
   */
  hostile: { scored: ManifestTarget; multiLine: ManifestTarget; symlinkRow: ManifestTarget; outsideImage: string; symlink: string; link: string };
  /** Issue 15 item 11: `linked/` holds an MNIST digit and a symbolic link to the image outside the workspace. */
  linkedFolder: { name: string; image: string; link: string };
  /** Create Pair: a classifier at the workspace root (a copy of the built-in one) and a folder of in-distribution digits. */
  createPair: { model: string; data: string; images: number; pairName: string };
  /**
   * Issue 25: a non-square classifier as a newcomer brings one — a text-line orientation model, ONNX input
   * [?, 3, ?, ?] trained on 192×48 (width × height) RGB lines scaled (x/255 − 0.5)/0.5, softmax over "0°" and
   * "180°" — with `lines/` (enough to calibrate) and `lines-few/` (too few: the fit is refused).
   */
  textLine: { model: string; data: string; few: string; images: number; pairName: string; labels: string[] };
}

function lineOf(text: string, needle: string, file: string): ManifestTarget {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`fixture: ${needle} not in ${file}`);
  return { file, line: i + 1, column: lines[i].indexOf(needle) + 3, path: needle };
}

export async function writeFixture(root: string): Promise<Fixture> {
  mkdirSync(root, { recursive: true });
  const mnistLabels = labelsOf(MNIST_TEST_LABELS);

  // Root images: MNIST test image 0 (a 7) and FashionMNIST test image 0 (an ankle boot).
  const [digit] = await writeIdxPngs(MNIST_TEST_IMAGES, [0], root, 'digit');
  const [boot] = await writeIdxPngs(FASHION_TEST_IMAGES, [0], root, 'fashion');

  // The folder to score: three of each.
  const images = join(root, 'images');
  const folderImages = [...(await writeIdxPngs(MNIST_TEST_IMAGES, [1, 2, 3], images, 'mnist')), ...(await writeIdxPngs(FASHION_TEST_IMAGES, [1, 2, 3], images, 'fashion'))].map((p) => basename(p));

  // A PNG signature followed by garbage: sharp refuses its header.
  writeFileSync(join(root, 'broken.png'), Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('this is not really a PNG file\n')]));

  // Manifests (a few rows: they are scored automatically when opened).
  const m = (i: number) => `images/mnist-${String(i).padStart(5, '0')}.png`;
  const f = (i: number) => `images/fashion-${String(i).padStart(5, '0')}.png`;
  const csv = ['path,label', ...[1, 2, 3].map((i) => `${m(i)},${mnistLabels[i]}`), ...[1, 2, 3].map((i) => `${f(i)},`), ''].join('\n');
  writeFileSync(join(root, 'manifest.csv'), csv);
  const jsonl = [...[1, 2, 3].map((i) => JSON.stringify({ image: m(i), label: String(mnistLabels[i]) })), ...[1, 2, 3].map((i) => JSON.stringify({ image: f(i) })), ''].join('\n');
  writeFileSync(join(root, 'manifest.jsonl'), jsonl);

  // An invalid pair manifest: no classifier path, no labels.
  mkdirSync(join(root, 'pairs', 'broken'), { recursive: true });
  writeFileSync(
    join(root, 'pairs', 'broken', 'ood-pair.json'),
    JSON.stringify(
      {
        name: 'broken',
        input: { width: 32, height: 32, channels: 1, layout: 'NCHW', range: [0, 1] },
        classifier: { format: 'onnx', input: 'image', output: 'logits', outputKind: 'logits' },
        vae: { path: 'vae.onnx', format: 'onnx', input: 'image', outputs: { reconstruction: 'r', mu: 'mu', logvar: 'logvar' }, reconstructionKind: 'logits', likelihood: { type: 'bernoulli' } },
      },
      null,
      2,
    ),
  );

  // A valid workspace pair (the built-in one under another name): Restricted Mode must refuse it.
  const wsPair = join(root, 'pairs', 'workspace-mnist');
  mkdirSync(wsPair, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(MNIST_PAIR, 'ood-pair.json'), 'utf8'));
  manifest.name = 'workspace-mnist';
  writeFileSync(join(wsPair, 'ood-pair.json'), JSON.stringify(manifest, null, 2));
  const files = [manifest.classifier?.path, manifest.vae?.path, manifest.vae?.encoder?.path, manifest.vae?.decoder?.path, manifest.calibration].filter((p): p is string => typeof p === 'string');
  for (const file of files) copyFileSync(join(MNIST_PAIR, file), join(wsPair, file));

  // Outside the workspace: an image the hostile manifest tries to make the extension read.
  const outside = join(dirname(root), 'outside');
  const [outsideImage] = await writeIdxPngs(MNIST_TEST_IMAGES, [4], outside, 'secret');
  const symlink = join(root, 'link-to-secret.png');
  symlinkSync(outsideImage, symlink);
  const link = `[x](command:oodLens.manifest.inspect?${encodeURIComponent(JSON.stringify([outsideImage]))})`;
  const hostile = ['path,label', `${m(1)},"7 ${link}"`, `"images/a\`b.png\`\n\n${link}\n\n\`.png",3`, 'link-to-secret.png,4', ''].join('\n');
  writeFileSync(join(root, 'hostile.csv'), hostile);
  const [linkedDigit] = await writeIdxPngs(MNIST_TEST_IMAGES, [5], join(root, 'linked'), 'digit');
  symlinkSync(outsideImage, join(root, 'linked', 'outside-link.png'));

  // Create Pair: the built-in classifier as a user's own model, and MNIST test digits it has never seen in
  // calibration (indices 1000–1299) as the in-distribution images.
  copyFileSync(join(MNIST_PAIR, 'classifier.onnx'), join(root, 'my-classifier.onnx'));
  const createPairImages = 1000; // enough that the calibration part (~45%) lets a test fire at α = 0.01
  await writeIdxPngs(MNIST_TEST_IMAGES, Array.from({ length: createPairImages }, (_, i) => 1000 + i), join(root, 'digits'), 'digit');

  // Issue 25: the text-line classifier and its lines, made with PyTorch (Debian's python3-torch).
  const textLineImages = 500; // calibration ≈ 225 images: KNN and confidence (α/2 each) can fire at α = 0.01
  const made = spawnSync('/usr/bin/python3', [join(__dirname, 'textLineModel.py'), root, String(textLineImages), '30'], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`fixture: textLineModel.py failed (exit ${made.status ?? made.signal}): ${made.stderr.slice(-2000)}`);

  return {
    root,
    textLine: { model: 'text-lines.onnx', data: join(root, 'lines'), few: join(root, 'lines-few'), images: textLineImages, pairName: 'text-lines', labels: ['0°', '180°'] },
    hostile: {
      scored: lineOf(hostile, m(1), 'hostile.csv'),
      multiLine: { ...lineOf(hostile, '"images/a`b.png`', 'hostile.csv'), column: 4 },
      symlinkRow: lineOf(hostile, 'link-to-secret.png', 'hostile.csv'),
      outsideImage,
      symlink,
      link,
    },
    linkedFolder: { name: 'linked', image: basename(linkedDigit), link: 'outside-link.png' },
    createPair: { model: 'my-classifier.onnx', data: join(root, 'digits'), images: createPairImages, pairName: 'my-classifier' },
    mnist: { name: basename(digit), label: String(mnistLabels[0]) },
    fashion: { name: basename(boot) },
    folder: { name: 'images', images: folderImages },
    broken: 'broken.png',
    csv: { mnist: lineOf(csv, m(2), 'manifest.csv'), fashion: lineOf(csv, f(2), 'manifest.csv') },
    jsonl: { mnist: lineOf(jsonl, m(2), 'manifest.jsonl'), fashion: lineOf(jsonl, f(2), 'manifest.jsonl') },
    brokenPair: 'pairs/broken',
    workspacePair: 'pairs/workspace-mnist',
    workspacePairName: 'workspace-mnist',
  };
}

/**
 * User keybindings that run `oodLens.manifest.inspect` with arbitrary arguments — the way a crafted link would
 * call it — so that the end-to-end test can check that the command itself refuses them.
 */
export const HOSTILE_KEYS = { outside: { binding: 'ctrl+alt+shift+o', press: 'Control+Alt+Shift+O' }, symlink: { binding: 'ctrl+alt+shift+l', press: 'Control+Alt+Shift+L' } } as const;

export function writeHostileKeybindings(userDataDir: string, fx: Fixture): void {
  mkdirSync(join(userDataDir, 'User'), { recursive: true });
  const bindings = [
    { key: HOSTILE_KEYS.outside.binding, command: 'oodLens.manifest.inspect', args: fx.hostile.outsideImage },
    { key: HOSTILE_KEYS.symlink.binding, command: 'oodLens.manifest.inspect', args: fx.hostile.symlink },
  ];
  writeFileSync(join(userDataDir, 'User', 'keybindings.json'), `${JSON.stringify(bindings, null, 2)}\n`);
}

/** Writes `.vscode/settings.json` of the fixture workspace. */
export function writeWorkspaceSettings(root: string, settings: Record<string, unknown>): void {
  mkdirSync(join(root, '.vscode'), { recursive: true });
  writeFileSync(join(root, '.vscode', 'settings.json'), `${JSON.stringify(settings, null, 2)}\n`);
}
