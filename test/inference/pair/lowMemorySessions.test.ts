import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadOnnx } from '../../../src/inference/backends/onnx';
import { builtInPairDir, disposePair, loadPair } from '../../../src/inference/pair/pair';

test('asked for (the scoring shards ask), a pair gets onnxruntime sessions without memory patterns; not asked, it keeps them', async () => {
  const asked = await loadPair(builtInPairDir(), { provider: 'cpu', lowMemory: true });
  const notAsked = await loadPair(builtInPairDir(), { provider: 'cpu' });
  try {
    assert.equal(asked.loadOptions.lowMemory, true, 'asked for, the built-in pair loads its sessions (and the KNN search) in low-memory mode');
    assert.equal(notAsked.loadOptions.lowMemory, false, 'the engine\'s own thread keeps memory patterns');
  } finally {
    await disposePair(asked);
    await disposePair(notAsked);
  }
});

test('a low-memory session computes the same outputs as a default one', async () => {
  const path = join(builtInPairDir(), 'classifier.onnx');
  const plain = await loadOnnx(path, { provider: 'cpu', threads: 1 });
  const low = await loadOnnx(path, { provider: 'cpu', threads: 1, lowMemory: true });
  try {
    const input = plain.inputs[0];
    const n = 5;
    const perImage = 32 * 32;
    const data = Float32Array.from({ length: n * perImage }, (_, i) => ((i * 7919) % 255) / 255);
    const feeds = { [input.name]: { data, dims: [n, 1, 32, 32] } };
    for (let run = 0; run < 3; run++) {
      const a = await plain.run(feeds);
      const b = await low.run(feeds);
      for (const name of Object.keys(a)) assert.deepEqual(Array.from(b[name].data), Array.from(a[name].data), `${name} on run ${run}`);
    }
  } finally {
    await plain.dispose();
    await low.dispose();
  }
});
