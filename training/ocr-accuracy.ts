/**
 * A third-party classifier's accuracy fed by hand, the way its own project feeds it, to compare with what
 * `ood-lens fit` (its feeding check, the held-out accuracy) and `ood-lens eval` report on the same images:
 * a pair must not change the model's answers.
 *
 *   npx tsx training/ocr-accuracy.ts <model.onnx> <lines.csv> [--split <pair>/split.json] [--rgb]
 *
 * For PaddleOCR's text-line orientation classifier (ch_ppocr_mobile_v2.0_cls_infer.onnx, classes 0 and 180)
 * and the lines of training/text-lines.ts. PaddleOCR's ClsPreProcess (ppocr/data/imaug/operators.py,
 * ClsResizeImg → resize_norm_img with image shape 3×48×192): the image as cv2.imread reads it (BGR, alpha
 * dropped), resized to height 48 and width min(192, ⌈48 · w / h⌉) bilinearly, (x / 255 − 0.5) / 0.5, CHW, padded
 * with zeros on the right to 192. --rgb feeds R, G, B instead (what OOD Lens feeds a 3-channel model).
 * The csv's rows are path,label with paths relative to it; --split also gives the accuracy on the pair's
 * held-out check part alone (the part fit reports its accuracy on).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';

const H = 48;
const W = 192;
const LABELS = ['0', '180'];

async function paddleInput(path: string, rgb: boolean): Promise<Float32Array> {
  const meta = await sharp(path).metadata();
  const width = Math.min(W, Math.ceil(H * (meta.width! / meta.height!)));
  const { data, info } = await sharp(path).removeAlpha().toColourspace('srgb').resize(width, H, { fit: 'fill', kernel: 'linear' }).raw().toBuffer({ resolveWithObject: true });
  const out = new Float32Array(3 * H * W); // zeros: PaddleOCR's padding
  const order = rgb ? [0, 1, 2] : [2, 1, 0];
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < info.width; x++) out[c * H * W + y * W + x] = (data[(y * info.width + x) * info.channels + order[c]] / 255 - 0.5) / 0.5;
    }
  }
  return out;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args.splice(i, 2)[1] : undefined;
  };
  const rgb = args.includes('--rgb');
  const splitPath = flag('--split');
  const [model, csv] = args.filter((a) => a !== '--rgb');
  if (!model || !csv) throw new Error('usage: npx tsx training/ocr-accuracy.ts <model.onnx> <lines.csv> [--split <pair>/split.json] [--rgb]');
  const rows = readFileSync(csv, 'utf8').trim().split('\n').slice(1).map((l) => {
    const [path, label] = l.split(',');
    return { path: resolve(dirname(csv), path), label: label.trim() };
  });
  const check = splitPath ? new Set((JSON.parse(readFileSync(splitPath, 'utf8')) as { parts: { check: string[] } }).parts.check) : null;
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const [inputName] = session.inputNames;
  const [outputName] = session.outputNames;
  let right = 0;
  let checkRight = 0;
  let checkCount = 0;
  const BATCH = 64;
  for (let start = 0; start < rows.length; start += BATCH) {
    const batch = rows.slice(start, start + BATCH);
    const inputs = await Promise.all(batch.map((r) => paddleInput(r.path, rgb)));
    const data = new Float32Array(batch.length * 3 * H * W);
    inputs.forEach((x, i) => data.set(x, i * 3 * H * W));
    const out = (await session.run({ [inputName]: new ort.Tensor('float32', data, [batch.length, 3, H, W]) }))[outputName].data as Float32Array;
    batch.forEach((r, i) => {
      const predicted = out[2 * i] >= out[2 * i + 1] ? LABELS[0] : LABELS[1];
      const ok = predicted === r.label;
      if (ok) right++;
      if (check?.has(r.path)) {
        checkCount++;
        if (ok) checkRight++;
      }
    });
  }
  const pct = (a: number, n: number) => `${((100 * a) / n).toFixed(2)}% (${a} of ${n})`;
  console.log(`fed by hand as PaddleOCR does (${rgb ? 'RGB' : 'BGR'}): accuracy ${pct(right, rows.length)} on ${csv}`);
  if (check) console.log(`  on the pair's held-out check part (${splitPath}): ${pct(checkRight, checkCount)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
