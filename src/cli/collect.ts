/** Scores a whole set into memory (for calibration and evaluation; sets of tens of thousands at most). */
import type { ImageResult, OodEngine, ScoreInput } from '../inference/engine';
import { expandInputs } from '../inference/io/files';

export async function* slice<T>(items: AsyncIterable<T>, offset = 0, limit = Infinity): AsyncGenerator<T> {
  let i = 0;
  for await (const item of items) {
    if (i >= offset + limit) return;
    if (i++ >= offset) yield item;
  }
}

export async function collect(engine: OodEngine, inputs: string[], options: { offset?: number; limit?: number; recursive?: boolean; progress?: boolean } = {}): Promise<ImageResult[]> {
  const results: ImageResult[] = [];
  const source: AsyncIterable<ScoreInput> = slice(expandInputs(inputs, { recursive: options.recursive ?? true }), options.offset, options.limit);
  let last = Date.now();
  await engine.scoreAll(source, (r) => {
    results.push(r);
    if (options.progress && Date.now() - last > 2000 && process.stderr.isTTY) {
      last = Date.now();
      process.stderr.write(`\r  ${results.length} images…`);
    }
  });
  if (options.progress && process.stderr.isTTY) process.stderr.write('\r');
  return results;
}
