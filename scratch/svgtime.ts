import sharp from 'sharp';
import { readFileSync } from 'node:fs';
const t = performance.now();
sharp(readFileSync(process.argv[2]), { limitInputPixels: 64 * 1024 * 1024, failOn: 'error', animated: false, sequentialRead: true }).timeout({ seconds: Number(process.argv[3] ?? 0) }).resize(28, 28).raw().toBuffer().then(
  (b) => console.log('ok', b.length, performance.now() - t), (e) => console.log('err', e.message, performance.now() - t));
