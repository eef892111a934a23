/**
 * A near-out-of-distribution set for the MNIST pair: images in MNIST's style (white strokes on black, 28×28,
 * the glyph scaled into a 20×20 box and centred by its centre of mass, as MNIST's digits were) that are not
 * digits — letters, symbols and simple shapes, drawn from SVG with sharp in the system's fonts with random
 * size, slant, rotation, stroke weight and blur. Glyphs that pass for digits (O, o, l, I, S, Z, B, b, g, q…)
 * are left out. Deterministic (fixed seed). Writes an IDX file, the format of MNIST itself:
 *
 *   npx tsx scripts/make-near-ood.ts [--count 2000] [--out data/near-ood/glyphs-images-idx3-ubyte.gz]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { mulberry32 } from '../src/inference/detectors/random';

const LETTERS = 'ACDEFHJKLMNPRTUVWXYacdefhkmnprtuvwxy'.split('');
const SYMBOLS = ['+', '×', '#', '@', '&', '%', '?', '!', '$', '€', '£', '¥', 'Ω', 'Σ', 'π', 'λ', 'Φ', 'Ψ', 'Ж', 'Я', 'Д', 'Л', 'Ш', 'ß', '¶', '§', '∞', '♥', '♣', '♠', '★', '☺', '✓', '→', '↑', '↔', '*'];
const FONTS = ['DejaVu Sans', 'DejaVu Serif', 'DejaVu Sans Mono', 'Liberation Sans', 'Liberation Serif', 'Liberation Mono', 'Liberation Sans Narrow'];

/** mulberry32: a small seeded generator, so that the set is the same on every machine. */
function random(seed: number): () => number {
  return mulberry32(seed);
}

function shapeSvg(rand: () => number): string {
  const w = 6 + rand() * 10;
  const kinds = [
    `<polygon points="100,30 170,165 30,165" fill="none" stroke="white" stroke-width="${w}"/>`,
    `<rect x="45" y="45" width="110" height="110" fill="none" stroke="white" stroke-width="${w}"/>`,
    `<polygon points="100,25 175,100 100,175 25,100" fill="none" stroke="white" stroke-width="${w}"/>`,
    `<path d="M40 150 L100 40 L160 150 M60 110 L140 110" fill="none" stroke="white" stroke-width="${w}"/>`,
    `<path d="M40 60 Q100 0 160 60 T160 160" fill="none" stroke="white" stroke-width="${w}"/>`,
    `<polygon points="100,20 120,80 185,80 132,118 152,180 100,142 48,180 68,118 15,80 80,80" fill="none" stroke="white" stroke-width="${w}"/>`,
  ];
  return kinds[Math.floor(rand() * kinds.length)];
}

async function glyph(rand: () => number): Promise<Uint8Array> {
  const rotate = (rand() - 0.5) * 40;
  const skew = (rand() - 0.5) * 30;
  let body: string;
  if (rand() < 0.15) body = shapeSvg(rand);
  else {
    const pool = rand() < 0.6 ? LETTERS : SYMBOLS;
    const ch = pool[Math.floor(rand() * pool.length)];
    const font = FONTS[Math.floor(rand() * FONTS.length)];
    const weight = rand() < 0.5 ? 'bold' : 'normal';
    const stroke = rand() * 6;
    const escaped = ch.replace(/&/g, '&amp;').replace(/</g, '&lt;');
    body = `<text x="100" y="100" font-family="${font}" font-weight="${weight}" font-size="150" fill="white" stroke="white" stroke-width="${stroke.toFixed(1)}" text-anchor="middle" dominant-baseline="central">${escaped}</text>`;
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"><rect width="200" height="200" fill="black"/><g transform="rotate(${rotate.toFixed(1)} 100 100) skewX(${skew.toFixed(1)})">${body}</g></svg>`;
  // Trim to the glyph, fit into 20×20 keeping its aspect (MNIST's box), then centre by mass in 28×28.
  const trimmed = await sharp(Buffer.from(svg)).greyscale().blur(1 + rand() * 2).trim({ threshold: 30 }).toBuffer({ resolveWithObject: true });
  const { data, info } = await sharp(trimmed.data).resize(20, 20, { fit: 'contain', background: '#000000', kernel: 'lanczos3' }).greyscale().raw().toBuffer({ resolveWithObject: true });
  const box = new Uint8Array(400);
  for (let i = 0; i < 400; i++) box[i] = data[i * info.channels];
  let mass = 0;
  let cx = 0;
  let cy = 0;
  for (let y = 0; y < 20; y++) for (let x = 0; x < 20; x++) {
    const v = box[y * 20 + x];
    mass += v;
    cx += v * x;
    cy += v * y;
  }
  const dx = Math.round(14 - (mass ? cx / mass : 9.5) - 0.5);
  const dy = Math.round(14 - (mass ? cy / mass : 9.5) - 0.5);
  const out = new Uint8Array(28 * 28);
  for (let y = 0; y < 20; y++) for (let x = 0; x < 20; x++) {
    const tx = x + dx;
    const ty = y + dy;
    if (tx >= 0 && tx < 28 && ty >= 0 && ty < 28) out[ty * 28 + tx] = box[y * 20 + x];
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { count: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' } } });
  const count = Number(values.count ?? 2000);
  const out = values.out ?? join(__dirname, '..', 'data', 'near-ood', 'glyphs-images-idx3-ubyte.gz');
  const rand = random(Number(values.seed ?? 14));
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x00000803, 0);
  header.writeUInt32BE(count, 4);
  header.writeUInt32BE(28, 8);
  header.writeUInt32BE(28, 12);
  const body = new Uint8Array(count * 784);
  for (let i = 0; i < count; i++) body.set(await glyph(rand), i * 784);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, gzipSync(Buffer.concat([header, body]), { level: 9 }));
  process.stdout.write(`wrote ${count} glyph images to ${out}\n`);
}

main().catch((err) => {
  process.stderr.write(`make-near-ood: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
