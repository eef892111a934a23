/** Choosing a fitted pair's tests and shares of α on synthetic probes (src/inference/fit/testChoice.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseTests, makeProbe, makeProbes, PROBE_KINDS, type ProbeKind, testChoiceLines } from '../../../src/inference/fit/testChoice';
import { mulberry32 } from '../../../src/inference/detectors/random';

/** A 8×8 grey image: a bright vertical bar at x = 1 on black. */
function bar() {
  const pixels = new Uint8Array(64);
  for (let y = 0; y < 8; y++) pixels[y * 8 + 1] = 200;
  return { width: 8, height: 8, channels: 1 as const, pixels };
}

test('probes: each kind is what it says, the size and channels of its source, and seeded', () => {
  const src = bar();
  const next = mulberry32(1);
  const inverted = makeProbe('inverted', src, next);
  assert.deepEqual([inverted.width, inverted.height, inverted.channels], [8, 8, 1]);
  assert.deepEqual(Array.from(inverted.data.slice(0, 3)), [255, 55, 255]);
  const blank = makeProbe('blank', src, next);
  assert.equal(new Set(blank.data).size, 1);
  const flipped = makeProbe('flipped', src, mulberry32(3));
  // Mirrored left to right the bar moves to x = 6; upside down it stays at x = 1.
  const barAt = flipped.data[6] === 200 ? 6 : 1;
  assert.ok(flipped.data[barAt] === 200 && Array.from(flipped.data).filter((v) => v === 200).length === 8);
  const shuffled = makeProbe('shuffled patches', src, next);
  assert.deepEqual([...shuffled.data].sort(), [...src.pixels].sort(), 'the same pixels, moved');
  const zoomedIn = makeProbe('zoomed in', src, next);
  assert.ok(zoomedIn.data.every((v) => v === 0), 'the middle 40% of the image holds no bar');
  const zoomedOut = makeProbe('zoomed out', src, next);
  assert.ok(Array.from(zoomedOut.data).filter((v) => v === 200).length < 8);
  const noise = makeProbe('noise', src, next);
  assert.ok(new Set(noise.data).size > 30);
  const all = makeProbes([src, bar()], 5, 7);
  assert.deepEqual(all.map((p) => p.kind), PROBE_KINDS.flatMap((k) => Array(5).fill(k)));
  assert.deepEqual(makeProbes([src], 5, 7).map((p) => Array.from(p.image.data)), makeProbes([src], 5, 7).map((p) => Array.from(p.image.data)));
});

test('the choice: an inverted and a blind test get no share, the others share α by what they catch, and the record says why', () => {
  const rand = mulberry32(11);
  const ins = Array.from({ length: 500 }, () => rand());
  const probes = (shift: number) => Object.fromEntries(PROBE_KINDS.map((k) => [k, Array.from({ length: 50 }, () => rand() + shift)])) as Record<ProbeKind, number[]>;
  // strong: every probe far above; partial: only three kinds; inverted: below; blind: the same distribution.
  const partial = probes(0);
  for (const k of ['noise', 'blank', 'inverted'] as const) partial[k] = partial[k].map((v) => v + 5);
  const choice = chooseTests(
    { elbo: ins, knn: ins, complexity: ins, mahalanobis: ins },
    { elbo: probes(5), knn: partial, complexity: probes(-0.6), mahalanobis: probes(0) },
    { elbo: 0.5, knn: 0.5 },
    50,
  );
  const by = Object.fromEntries(choice.tests.map((t) => [t.test, t]));
  assert.deepEqual([by.elbo.used, by.knn.used, by.complexity.used, by.mahalanobis.used], [true, true, false, false]);
  assert.match(by.complexity.reason!, /^inverted on the synthetic probes: AUROC 0\.\d+/);
  assert.match(by.mahalanobis.reason!, /^nearly blind on the synthetic probes: AUROC 0\.5/);
  assert.equal(by.elbo.caughtAt1Percent, 1);
  assert.ok(Math.abs(by.knn.caughtAt1Percent - 3 / 7) < 0.03, String(by.knn.caughtAt1Percent));
  // Shares in proportion to (catch + 0.02), rounded down: they sum to at most 1.
  assert.ok(by.elbo.share > 2 * by.knn.share && by.knn.share > 0.25, JSON.stringify(choice.tests));
  assert.ok(by.elbo.share + by.knn.share <= 1 && by.elbo.share + by.knn.share > 0.99);
  assert.deepEqual([by.complexity.share, by.mahalanobis.share], [0, 0]);
  assert.equal(by.knn.aurocByProbe.noise, 1);
  assert.match(testChoiceLines(choice).join('\n'), /complexity: not used — probe AUROC 0\.\d+, catches 0% of probes at 1% false alarms; inverted on the synthetic probes/);
  // Nothing passes: the planned shares stand, and the record says so.
  const none = chooseTests({ elbo: ins }, { elbo: probes(-0.6) }, { elbo: 0.7 }, 50);
  assert.match(none.fallback!, /no test separated the probes/);
  assert.equal(none.tests[0].share, 0.7);
});
