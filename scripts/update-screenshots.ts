/**
 * Copies the screenshots the e2e suite takes (test-results/e2e-shot-*.png: flows same-p-value, walkthrough and create-pair)
 * to media/screenshots/, where the README and the walkthrough show them; scaled to at most 1,000 px wide.
 * Run after `npm run test:e2e`: `npx tsx scripts/update-screenshots.ts`.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';

const REPO = resolve(__dirname, '..');
const SHOTS = ['inspect-panel', 'manifest-hover', 'report', 'create-pair'];

async function main(): Promise<void> {
  const out = join(REPO, 'media', 'screenshots');
  mkdirSync(out, { recursive: true });
  const missing: string[] = [];
  for (const name of SHOTS) {
    const src = join(REPO, 'test-results', `e2e-shot-${name}.png`);
    if (!existsSync(src)) {
      missing.push(src);
      continue;
    }
    const info = await sharp(src).resize({ width: 1000, withoutEnlargement: true }).png({ compressionLevel: 9, palette: true, quality: 90 }).toFile(join(out, `${name}.png`));
    console.log(`${name}.png: ${info.width}×${info.height}, ${(info.size / 1024).toFixed(0)} KB`);
  }
  if (missing.length) {
    console.error(`missing (run the e2e flows same-p-value, walkthrough and create-pair first): ${missing.join(', ')}`);
    process.exit(1);
  }
}
void main();
