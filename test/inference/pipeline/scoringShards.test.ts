import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { type ImageResult, OodEngine, type ScoreInput } from '../../../src/inference/engine';
import { FASHION_TEST_IMAGES, FIXTURES, MNIST_PAIR, MNIST_TEST_IMAGES, pairReady, tempDir, writeIdxPngs } from '../../helpers';
import { nchwEnlargingPair } from '../../thirdParty';

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('the sharded pipeline (data-parallel scoring shards)', { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  let inputs: ScoreInput[];
  let reference: ImageResult[];
  before(async () => {
    const dir = tempDir();
    const digits = await writeIdxPngs(MNIST_TEST_IMAGES, range(0, 120), join(dir, 'digits'), 'mnist');
    const clothes = await writeIdxPngs(FASHION_TEST_IMAGES, range(0, 120), join(dir, 'clothes'), 'fashion');
    const empty = join(dir, 'empty.png');
    writeFileSync(empty, '');
    const truncated = join(dir, 'truncated.png');
    writeFileSync(truncated, readFileSync(digits[0]).subarray(0, 60));
    const raw = await sharp(readFileSync(clothes[5])).raw().toBuffer({ resolveWithObject: true });
    // Digits and clothes interleaved, bad files and in-memory images scattered through the batches.
    inputs = digits.flatMap((d, i) => [{ path: d }, { path: clothes[i] }]);
    inputs.splice(7, 0, { path: empty });
    inputs.splice(70, 0, { path: join(dir, 'missing.png') });
    inputs.splice(130, 0, { path: truncated });
    inputs.splice(200, 0, { path: 'in-memory.png', source: readFileSync(digits[9]) });
    inputs.splice(230, 0, { path: 'raw-pixels', source: { width: raw.info.width, height: raw.info.height, channels: 1, data: new Uint8Array(raw.data) } });
    // The reference: everything in this thread, one batch at a time.
    const inProcess = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', pipeline: 'overlapped', preprocessWorkers: 0, batchSize: 32 });
    reference = [];
    await inProcess.scoreAll(inputs, (r) => void reference.push(r));
    await inProcess.dispose();
  });

  const sharded = () => OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', pipeline: 'sharded', shards: 2, batchSize: 32 });

  function assertSameResults(got: ImageResult[], want: ImageResult[]) {
    assert.equal(got.length, want.length);
    got.forEach((r, i) => {
      const w = want[i];
      assert.equal(r.path, w.path, `result ${i} out of order`);
      assert.equal(r.verdict, w.verdict, `${r.path}: verdict`);
      assert.equal(r.error, w.error, `${r.path}: error`);
      if (w.error) return;
      assert.equal(r.prediction, w.prediction, `${r.path}: prediction`);
      // One intra-op thread against several: the same arithmetic up to float rounding.
      assert.ok(Math.abs(r.elbo! - w.elbo!) < 1e-3 * Math.max(1, Math.abs(w.elbo!)), `${r.path}: elbo ${r.elbo} vs ${w.elbo}`);
      assert.ok(Math.abs(r.msp! - w.msp!) < 1e-5, `${r.path}: msp`);
      assert.equal(r.complexityBits, w.complexityBits, `${r.path}: L(x)`);
    });
  }

  test('gives the in-process results, in input order, with bad files as error records in place', async () => {
    const engine = await sharded();
    try {
      assert.equal(await engine.startScoringShards(), true);
      const got: ImageResult[] = [];
      const indices: number[] = [];
      await engine.scoreAll(inputs, (r, i) => {
        got.push(r);
        indices.push(i);
      });
      assert.equal(engine.shardFailure, null);
      assert.equal(engine.activeShards, 2);
      assert.deepEqual(indices, range(0, inputs.length));
      assertSameResults(got, reference);
      assert.equal(got.filter((r) => r.verdict === 'error').length, 3);
      assert.match(got[7].error!, /empty/);
      // Sanity on the real data: digits in, clothes out (most of them).
      const digitsIn = got.filter((r) => r.path.includes('mnist-') && r.verdict === 'in-distribution').length;
      const clothesOut = got.filter((r) => r.path.includes('fashion-') && r.verdict === 'out-of-distribution').length;
      assert.ok(digitsIn >= 110 && clothesOut >= 110, `digits in ${digitsIn}/120, clothes out ${clothesOut}/120`);
      // The stage timings come back from the shards.
      assert.ok(engine.timings.vae > 0 && engine.timings.classifier > 0);
    } finally {
      await engine.dispose();
    }
  });

  test('an input of more than 16 batches starts the shards itself and is scored on them; then every input is', async () => {
    const engine = await sharded();
    try {
      const got: ImageResult[] = [];
      const many = Array.from({ length: 3 }, () => inputs).flat(); // 735 images: 23 batches of 32
      await engine.scoreAll(many, (r) => void got.push(r));
      assertSameResults(got, Array.from({ length: 3 }, () => reference).flat());
      assert.deepEqual(engine.batchCounts, { shards: 23, here: 0 });
      assert.equal(engine.activeShards, 2);
      // A small input now goes to the running shards too.
      await engine.scoreAll(inputs.slice(0, 40), () => {});
      assert.deepEqual(engine.batchCounts, { shards: 25, here: 0 });
    } finally {
      await engine.dispose();
    }
  });

  test('a batch a shard fails is redone in-process (the user is told once), and a dead shard leaves the rest working', async () => {
    const notices: string[] = [];
    const engine = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', pipeline: 'sharded', shards: 2, batchSize: 32, onNotice: (m) => notices.push(m) });
    try {
      assert.equal(await engine.startScoringShards(), true);
      assert.equal(engine.activeShards, 2);
      type Internals = { scheduler: { shards: { shards: { worker: { terminate(): Promise<number> } }[]; score: (...args: unknown[]) => Promise<unknown> } } };
      const shards = (engine as unknown as Internals).scheduler.shards;
      // A shard that answers a batch with an error (or dies with it in hand): the batch is scored here.
      const score = shards.score.bind(shards);
      let calls = 0;
      shards.score = (...args: unknown[]) => (++calls === 3 || calls === 5 ? Promise.reject(new Error('shard crashed')) : score(...args));
      const got: ImageResult[] = [];
      await engine.scoreAll(inputs, (r) => void got.push(r));
      assert.ok(calls > 5);
      assertSameResults(got, reference);
      assert.deepEqual(notices, ["a scoring shard failed a batch (shard crashed); it was scored on the caller's thread instead"]);
      // A shard that died (ended while idle: a thread stopped inside onnxruntime would take the process with it).
      shards.score = score;
      await shards.shards[0].worker.terminate();
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(engine.activeShards, 1);
      const again: ImageResult[] = [];
      await engine.scoreAll(inputs, (r) => void again.push(r));
      assertSameResults(again, reference);
    } finally {
      await engine.dispose();
    }
  });

  test('a slow batch holds back only its own results: the other shard keeps getting batches meanwhile, and the results stay in order', async () => {
    const engine = await sharded();
    try {
      assert.equal(await engine.startScoringShards(), true);
      type Internals = { scheduler: { shards: { score: (...args: unknown[]) => Promise<unknown> } } };
      const shards = (engine as unknown as Internals).scheduler.shards;
      const score = shards.score.bind(shards);
      let calls = 0;
      let callsWhileSlow = -1;
      // The first batch takes a second longer (a shard descheduled, a slow disk); the rest score as usual.
      shards.score = (...args: unknown[]) => {
        if (++calls > 1) return score(...args);
        return new Promise((r) => setTimeout(r, 1000)).then(() => {
          callsWhileSlow = calls;
          return score(...args);
        });
      };
      const got: ImageResult[] = [];
      await engine.scoreAll(inputs, (r) => void got.push(r));
      // 8 batches of 32: waiting for the oldest batch before sending more stopped at 4 (two a shard).
      assert.ok(callsWhileSlow >= 6, `only ${callsWhileSlow} batches were sent while the first was held`);
      assertSameResults(got, reference);
    } finally {
      await engine.dispose();
    }
  });

  test('releaseModelsWhileSharded: this thread\'s models go while the shards score and come back for a batch scored here', async () => {
    const engine = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', pipeline: 'sharded', shards: 2, batchSize: 32, releaseModelsWhileSharded: true });
    type Internals = { modelsReleased: boolean; scheduler: { shards: { score: (...args: unknown[]) => Promise<unknown> } } };
    const internals = engine as unknown as Internals;
    try {
      assert.equal(await engine.startScoringShards(), true);
      const got: ImageResult[] = [];
      await engine.scoreAll(inputs, (r) => void got.push(r));
      assertSameResults(got, reference);
      assert.equal(internals.modelsReleased, true, 'released while the shards scored');
      // One image on this thread: the models are loaded again, and score as before.
      const one = await engine.scoreOne(inputs[3]);
      assert.equal(internals.modelsReleased, false);
      assertSameResults([one], [reference[3]]);
      // Released again by the next sharded run, and a batch a shard fails is scored here after a reload.
      const shards = internals.scheduler.shards;
      const score = shards.score.bind(shards);
      let calls = 0;
      shards.score = (...args: unknown[]) => (++calls === 4 ? Promise.reject(new Error('shard crashed')) : score(...args));
      const again: ImageResult[] = [];
      await engine.scoreAll(inputs, (r) => void again.push(r));
      assertSameResults(again, reference);
      assert.equal(internals.modelsReleased, false, 'loaded again for the failed batch');
    } finally {
      await engine.dispose();
    }
  });

  test('expectedInputs with releaseModelsWhileSharded: the shards start with the engine, this thread takes their description of the pair instead of loading it, and loads it whole to score here', async () => {
    const plain = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', pipeline: 'sharded', shards: 2, batchSize: 32 });
    const plainInfo = plain.info;
    const plainTests = plain.detectors.map((d) => d.test);
    await plain.dispose();
    const engine = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', shards: 2, batchSize: 32, releaseModelsWhileSharded: true, expectedInputs: 10_000 });
    type Internals = { modelsReleased: boolean; describedOnly: boolean };
    const internals = engine as unknown as Internals;
    try {
      assert.equal(internals.describedOnly, true, 'no model loaded on this thread');
      assert.equal(internals.modelsReleased, true);
      assert.equal(engine.pair.featureFit?.mahalanobis, undefined, 'the description holds no feature data');
      assert.equal(engine.detectors.length, 0);
      assert.deepEqual(engine.info, plainInfo, 'the same pair summary as a full load');
      assert.equal(engine.pipeline, 'sharded');
      assert.equal(engine.batchSize, 32);
      // A small input goes to the shards too: they are loaded already.
      const few: ImageResult[] = [];
      await engine.scoreAll(inputs.slice(0, 40), (r) => void few.push(r));
      assertSameResults(few, reference.slice(0, 40));
      assert.equal(engine.activeShards, 2);
      const got: ImageResult[] = [];
      await engine.scoreAll(inputs, (r) => void got.push(r));
      assertSameResults(got, reference);
      assert.equal(internals.describedOnly, true, 'still nothing loaded here after sharded runs');
      // One image on this thread: the pair is loaded whole, and scores as a full load does.
      const one = await engine.scoreOne(inputs[3]);
      assert.equal(internals.describedOnly, false);
      assert.equal(internals.modelsReleased, false);
      assert.ok(engine.pair.featureFit?.mahalanobis, 'the fitted features\' data loaded with the models');
      assert.deepEqual(engine.detectors.map((d) => d.test), plainTests);
      assertSameResults([one], [reference[3]]);
    } finally {
      await engine.dispose();
    }
    // Without the expectation the shards start with the first large input, as before.
    const later = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', shards: 2, batchSize: 32, releaseModelsWhileSharded: true, expectedInputs: 100 });
    try {
      assert.equal((later as unknown as Internals).describedOnly, false);
      assert.equal(later.activeShards, 0);
    } finally {
      await later.dispose();
    }
  });

  test('expectedInputs: a pair the shards cannot load is reported as a load on this thread reports it', async () => {
    const dir = join(tempDir(), 'pair');
    cpSync(MNIST_PAIR, dir, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(dir, 'ood-pair.json'), 'utf8'));
    manifest.classifier.output = 'no-such-output';
    writeFileSync(join(dir, 'ood-pair.json'), JSON.stringify(manifest));
    const message = async (expectedInputs?: number) => {
      try {
        const engine = await OodEngine.create({ pair: dir, provider: 'cpu', shards: 2, batchSize: 32, releaseModelsWhileSharded: true, expectedInputs });
        await engine.dispose();
        return 'loaded';
      } catch (err) {
        return (err as Error).message;
      }
    };
    const inProcess = await message();
    assert.match(inProcess, /classifier\.output: .*no output named "no-such-output"/);
    assert.equal(await message(10_000), inProcess);
  });

  test('shards that cannot start: scoring carries on in-process with the same results, and the user is told why', async () => {
    const { ScoringShards } = await import('../../../src/inference/pipeline/scoringShards');
    const start = ScoringShards.start;
    ScoringShards.start = () => Promise.reject(new Error('no worker threads here'));
    const notices: string[] = [];
    const engine = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', pipeline: 'sharded', shards: 2, batchSize: 32, onNotice: (m) => notices.push(m) });
    try {
      assert.equal(await engine.startScoringShards(), false);
      const got: ImageResult[] = [];
      await engine.scoreAll(inputs, (r) => void got.push(r));
      assertSameResults(got, reference);
      assert.equal(engine.activeShards, 0);
      assert.equal(engine.shardFailure, 'no worker threads here');
      assert.deepEqual(notices, ['the scoring shards could not start (no worker threads here); scoring on one thread instead, which is slower']);
    } finally {
      ScoringShards.start = start;
      await engine.dispose();
    }
  });

  test('a cancel stops it early with an in-order prefix, and a small input never starts the shards', async () => {
    const engine = await sharded();
    try {
      await engine.scoreAll(inputs.slice(0, 128), () => {});
      assert.equal(engine.activeShards, 0, 'an input of 16 batches or fewer is scored in-process, without starting the shards');
      assert.deepEqual(engine.batchCounts, { shards: 0, here: 0 }, 'the in-process path of small inputs is the pipelined one');
      await engine.startScoringShards();
      const controller = new AbortController();
      const got: ImageResult[] = [];
      await engine.scoreAll(inputs, (r) => {
        got.push(r);
        if (got.length === 33) controller.abort();
      }, { signal: controller.signal });
      assert.ok(got.length >= 33 && got.length < inputs.length, `${got.length} results after the cancel`);
      assertSameResults(got, reference.slice(0, got.length));
    } finally {
      await engine.dispose();
    }
  });
});

describe("a pair that enlarges into an NCHW model's feed (the shards' batches)", () => {
  let pair: string;
  let inputs: ScoreInput[];
  before(async () => {
    const dir = tempDir('enlarging-pair-');
    pair = await nchwEnlargingPair(join(dir, 'pair'));
    // RGB crops of two sizes that onnxruntime enlarges, one at the model's size, one that libvips shrinks, a grey
    // one, and bad files, mixed through the batches.
    const crop = (file: string, left: number, width: number, height: number) => sharp(join(FIXTURES, file)).extract({ left, top: left, width: width * 4, height: height * 4 }).resize(width, height, { fit: 'fill' }).png().toBuffer();
    inputs = [];
    for (let i = 0; i < 24; i++) {
      const file = ['cat.png', 'hen.png', 'rooster.png', 'astronaut.png'][i % 4];
      const path = join(dir, `crop-${i}.png`);
      writeFileSync(path, await (i % 6 === 5 ? crop(file, i * 3, 32, 32) : i % 6 === 4 ? crop(file, i * 3, 80, 60) : crop(file, i * 3, i % 2 ? 24 : 20, i % 2 ? 24 : 16)));
      inputs.push({ path });
    }
    const grey = join(dir, 'grey.png');
    writeFileSync(grey, await sharp(join(FIXTURES, 'hen.png')).resize(20, 20).toColourspace('b-w').png().toBuffer());
    inputs.splice(3, 0, { path: grey });
    const truncated = join(dir, 'truncated.png');
    writeFileSync(truncated, readFileSync(inputs[0].path).subarray(0, 50));
    inputs.splice(9, 0, { path: truncated }, { path: join(dir, 'missing.png') });
  });

  test('gives the same results as enlarging before the feed: in this thread bit for bit, in the shards in order', async () => {
    const engine = await OodEngine.create({ pair, provider: 'cpu', pipeline: 'overlapped', preprocessWorkers: 0, threads: 1, batchSize: 8 });
    try {
      // Prepared before the feed (the pipelined path: every image enlarged as it is prepared).
      const before: ImageResult[] = [];
      await engine.scoreAll(inputs, (r) => void before.push(r));
      // The shards' path on this thread: the enlarged RGB crops wait for the feed.
      const inFeed: ImageResult[] = [];
      for (let i = 0; i < inputs.length; i += 8) inFeed.push(...(await engine.scoreBatchInThisThread(inputs.slice(i, i + 8), false)));
      assert.deepEqual(inFeed, before);
      assert.equal(before.filter((r) => r.error).length, 2);
      assert.ok(before.filter((r) => !r.error).every((r) => Number.isFinite(r.msp) && r.prediction !== null), 'every readable image scored');
      // With details, nothing waits: the details carry the 8-bit input.
      const [detailed] = await engine.scoreBatchInThisThread(inputs.slice(0, 1), true);
      assert.equal(detailed.details?.modelInput.pixels.length, 32 * 32 * 3);
      assert.equal(detailed.msp, before[0].msp);
    } finally {
      await engine.dispose();
    }
    const shards = await OodEngine.create({ pair, provider: 'cpu', pipeline: 'sharded', shards: 2, batchSize: 4 });
    try {
      assert.equal(await shards.startScoringShards(), true);
      const got: ImageResult[] = [];
      await shards.scoreAll(inputs, (r) => void got.push(r));
      assert.equal(shards.shardFailure, null);
      assert.ok(shards.batchCounts.shards > 0, 'the shards scored the batches');
      assert.deepEqual(got.map((r) => r.path), inputs.map((input) => input.path));
      const reference = await OodEngine.create({ pair, provider: 'cpu', pipeline: 'overlapped', preprocessWorkers: 0, threads: 1, batchSize: 4 });
      const want: ImageResult[] = [];
      await reference.scoreAll(inputs, (r) => void want.push(r));
      await reference.dispose();
      // One intra-op thread in both: the same arithmetic.
      assert.deepEqual(got, want);
    } finally {
      await shards.dispose();
    }
  });
});
