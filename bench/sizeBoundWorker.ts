/**
 * One member of the data-parallel bound of bench/modelSizes.ts: its own single-threaded engine on the pair,
 * scoring pre-decoded images (no file reading, decoding or resizing) as fast as it goes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { OodEngine } from '../src/inference/engine';
import type { ModelImage } from '../src/inference/image/preprocess';

interface Job {
  pair: string;
  images: ModelImage[];
  batchSize: number;
}

(async () => {
  const job = workerData as Job;
  const engine = await OodEngine.create({ pair: job.pair, provider: 'cpu', threads: 1, spinning: false, preprocessWorkers: 0, pipeline: 'overlapped', batchSize: job.batchSize });
  const paths = job.images.map((_, i) => `image-${i}`);
  await engine.scoreImages(job.images.slice(0, job.batchSize), paths.slice(0, job.batchSize));
  parentPort!.postMessage({ ready: true });
  parentPort!.on('message', async (msg: { images: number } | 'close') => {
    if (msg === 'close') {
      await engine.dispose();
      parentPort!.postMessage({ closed: true });
      return;
    }
    const start = performance.now();
    for (let done = 0; done < msg.images; done += job.batchSize) {
      const from = done % job.images.length;
      await engine.scoreImages(job.images.slice(from, from + job.batchSize), paths.slice(from, from + job.batchSize));
    }
    parentPort!.postMessage({ ms: performance.now() - start });
  });
})();
