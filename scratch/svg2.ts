import { readFileSync } from 'node:fs';
import { toModelImage } from '../src/inference/preprocess';
const spec = { width: 32, height: 32, channels: 1 as const, layout: 'NCHW' as const, padding: 2, background: '#000000' };
(async () => {
  for (const f of process.argv.slice(2)) {
    const t = performance.now();
    try { const m = await toModelImage(readFileSync(f), spec); console.log('ok', f, m.pixels.length, (performance.now() - t).toFixed(0)); }
    catch (e) { console.log('err', f, (e as Error).message, (performance.now() - t).toFixed(0)); }
  }
})();
