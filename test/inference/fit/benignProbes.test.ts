/** Benign-shift probes and the rule that weighs fit's test choice by them (src/inference/fit/benignProbes.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BENIGN_KINDS, type BenignKind, benignAllowance, benignFactor, makeBenignProbe, makeBenignProbes, weighBenignShifts } from '../../../src/inference/fit/benignProbes';
import { chooseTests, PROBE_KINDS, type ProbeKind, testChoiceLines } from '../../../src/inference/fit/testChoice';
import { mulberry32 } from '../../../src/inference/detectors/random';

/** A 32×24 RGB "text line": dark 2-px strokes on a light background. */
function line() {
  const [w, h] = [32, 24];
  const pixels = new Uint8Array(w * h * 3).fill(230);
  for (let y = 6; y < 18; y++) for (const x of [5, 6, 12, 13, 20, 21, 26, 27]) pixels.fill(20, (y * w + x) * 3, (y * w + x) * 3 + 3);
  return { width: w, height: h, channels: 3 as const, pixels };
}
const dark = (d: Uint8Array) => d.filter((v) => v < 128).length;
const meanAbsDiff = (a: Uint8Array, b: Uint8Array) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;

test('benign probes: each kind is a small change of its source, the same size and channels, and seeded', async () => {
  const src = line();
  const probes = Object.fromEntries(await Promise.all(BENIGN_KINDS.map(async (k) => [k, await makeBenignProbe(k, src, mulberry32(5))]))) as Record<BenignKind, { width: number; height: number; channels: number; data: Uint8Array }>;
  for (const k of BENIGN_KINDS) {
    assert.deepEqual([probes[k].width, probes[k].height, probes[k].channels], [32, 24, 3], k);
    const diff = meanAbsDiff(probes[k].data, src.pixels);
    // Changed, but the image is still mostly itself (a far-OOD probe such as inverted differs by ~180 a pixel).
    assert.ok(diff > 0.5 && diff < 40, `${k}: mean change ${diff}`);
  }
  // Blur softens the strokes' edges: fewer pure-dark or pure-light pixels, no new extremes.
  assert.ok(probes.blurred.data.filter((v) => v === 20).length < src.pixels.filter((v) => v === 20).length);
  // Stroke weight: the ink grows or shrinks (2-px strokes to 3 or 1 px).
  const inkChange = dark(probes['stroke weight'].data) / dark(src.pixels);
  assert.ok(Math.abs(inkChange - 1.5) < 0.1 || Math.abs(inkChange - 0.5) < 0.1, String(inkChange));
  // Relit and JPEG keep the layout: the strokes stay where they were.
  for (const k of ['relit', 'jpeg'] as const) assert.ok(probes[k].data[(12 * 32 + 5) * 3] < 100 && probes[k].data[(12 * 32 + 9) * 3] > 150, k);
  // Jitter and elastic move the strokes a little: most ink stays within 2 px of where it was.
  for (const k of ['jittered', 'elastic'] as const) {
    const inkNow = dark(probes[k].data);
    assert.ok(inkNow > 0.6 * dark(src.pixels) && inkNow < 1.5 * dark(src.pixels), `${k}: ${inkNow}`);
  }
  const grey = { width: 16, height: 16, channels: 1 as const, pixels: Uint8Array.from({ length: 256 }, (_, i) => (i % 16 < 8 ? 0 : 255)) };
  const jpegGrey = await makeBenignProbe('jpeg', grey, mulberry32(2));
  assert.deepEqual([jpegGrey.width, jpegGrey.height, jpegGrey.channels, jpegGrey.data.length], [16, 16, 1, 256]);
  const all = await makeBenignProbes([src, line()], 3, 9);
  assert.deepEqual(all.map((p) => p.kind), BENIGN_KINDS.flatMap((k) => Array(3).fill(k)));
  const again = await makeBenignProbes([src, line()], 3, 9);
  assert.deepEqual(all.map((p) => Array.from(p.image.data)), again.map((p) => Array.from(p.image.data)));
});

test('the factor: a share is kept up to 1% plus sampling noise, then falls with the benign alarm rate, never below half', () => {
  assert.ok(Math.abs(benignAllowance(1200) - (0.01 + 2 * Math.sqrt(0.0099 / 1200))) < 1e-12);
  assert.equal(benignFactor(0.01, 1200), 1);
  assert.equal(benignFactor(benignAllowance(1200), 1200), 1);
  assert.ok(Math.abs(benignFactor(0.0216, 1200) - benignAllowance(1200) / 0.0216) < 1e-12);
  assert.equal(benignFactor(0.06, 1200), 0.5);
  assert.equal(benignFactor(0.9, 1200), 0.5);
});

test('the choice weighed by benign probes: a test that flags benign shifts loses share to one that does not, and the record says so', () => {
  const rand = mulberry32(21);
  const ins = Array.from({ length: 2000 }, () => rand());
  const farProbes = () => Object.fromEntries(PROBE_KINDS.map((k) => [k, Array.from({ length: 50 }, () => rand() + 5)])) as Record<ProbeKind, number[]>;
  const choice = chooseTests({ knn: ins, layers: ins, elbo: ins }, { knn: farProbes(), layers: farProbes(), elbo: farProbes() }, {}, 50);
  assert.deepEqual(choice.tests.map((t) => t.share), [0.333, 0.333, 0.333]);
  // knn: the benign probes score like real images (about 1% above the threshold, by chance); layers: a fifth of the
  // elastic and stroke-weight probes score far above (over 7% of all benign probes: cut to half, the most);
  // elbo: a tenth of the relit ones (3.0% in all: cut to about half).
  const like = (n: number) => Array.from({ length: n }, () => rand());
  const benign = (kindsFar: Partial<Record<BenignKind, number>>) => Object.fromEntries(BENIGN_KINDS.map((k) => [k, like(200).map((v, i) => (i < 200 * (kindsFar[k] ?? 0) ? v + 5 : v))])) as Record<BenignKind, number[]>;
  const weighed = weighBenignShifts(choice, { knn: ins, layers: ins, elbo: ins }, { knn: benign({}), layers: benign({ elastic: 0.2, 'stroke weight': 0.2 }), elbo: benign({ relit: 0.1 }) }, 200);
  const by = Object.fromEntries(weighed.tests.map((t) => [t.test, t]));
  assert.ok(by.knn.benignAlarms! < 0.02, String(by.knn.benignAlarms));
  assert.ok(by.layers.benignAlarms! > 0.07 && by.layers.benignByKind!.elastic > 0.19, JSON.stringify(by.layers));
  assert.ok(weighed.tests.every((t) => t.used && !t.reason));
  // Weights 0.333 × (1, 0.5, ~0.52), rescaled: knn about half of α, the other two about a quarter each.
  assert.ok(by.knn.share > 0.48 && by.knn.share < 0.5 && by.layers.share > 0.24 && by.layers.share < 0.25, JSON.stringify(weighed.tests));
  assert.ok(by.elbo.share > by.layers.share && by.elbo.share < 0.27, JSON.stringify(weighed.tests));
  assert.ok(Math.abs(by.knn.share + by.elbo.share + by.layers.share - 1) < 0.003);
  assert.match(by.layers.shareCut!, /^its share is cut to 50% of what the far-OOD probes gave it \(0\.333\), before the shares are rescaled: it flags [78]\.\d% of benign-shift probes \(most: (elastic|stroke weight) 2\d\.\d%\) at 1% false alarms, where 1\.6% is allowed$/);
  assert.match(by.elbo.shareCut!, /^its share is cut to 5\d% .* it flags [23]\.\d% of benign-shift probes \(most: relit 1\d\.\d%\)/);
  assert.equal(by.knn.shareCut, undefined);
  assert.equal(weighed.benignProbesPerKind, 200);
  assert.match(weighed.method, /benign-shift probes of each kind \(jittered, blurred, relit, jpeg, stroke weight, elastic\)/);
  const lines = testChoiceLines(weighed).join('\n');
  assert.match(lines, /layers: share 0\.24\d — probe AUROC 1\.000, catches 100% of probes at 1% false alarms, flags [78]\.\d% of benign-shift probes \((elastic|stroke weight) 2\d\.\d%\)/);
  assert.match(lines, /knn: share 0\.4\d+ — .*, flags [01]\.\d% of benign-shift probes$/m);
  // A fallback choice (no test passed the far-OOD probes) keeps its planned shares; the benign rates are recorded.
  const fallback = chooseTests({ elbo: ins }, { elbo: Object.fromEntries(PROBE_KINDS.map((k) => [k, like(50)])) }, { elbo: 0.7 }, 50);
  const kept = weighBenignShifts(fallback, { elbo: ins }, { elbo: benign({ elastic: 0.5 }) }, 200);
  assert.equal(kept.tests[0].share, 0.7);
  assert.ok(kept.tests[0].benignAlarms! > 0.08 && kept.tests[0].shareCut === undefined);
});
