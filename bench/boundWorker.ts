/**
 * One member of the data-parallel inference-only bound (bench/run.ts): this thread's own single-threaded
 * sessions of the pair's classifier and VAE, run on a pre-decoded batch as fast as they go.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadOnnx } from '../src/inference/backends/onnx';

interface BoundJob {
  classifier: string;
  vae: string;
  inputName: string;
  classifierOutput: string;
  vaeOutputs: string[];
  feed: { data: Float32Array; dims: number[] };
}

(async () => {
  const job = workerData as BoundJob;
  const options = { provider: 'cpu' as const, threads: 1, spinning: false };
  const classifier = await loadOnnx(job.classifier, options);
  const vae = await loadOnnx(job.vae, options);
  const runBoth = async () => {
    await classifier.run({ [job.inputName]: job.feed }, [job.classifierOutput]);
    await vae.run({ [job.inputName]: job.feed }, job.vaeOutputs);
  };
  await runBoth();
  parentPort!.postMessage({ ready: true });
  // Every member starts together on 'go' and runs the same number of batches.
  parentPort!.on('message', async ({ reps }: { reps: number }) => {
    const start = performance.now();
    for (let r = 0; r < reps; r++) await runBoth();
    parentPort!.postMessage({ ms: performance.now() - start });
  });
})();
