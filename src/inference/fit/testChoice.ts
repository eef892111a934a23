/**
 * Which tests a fitted pair's verdict leans on, and their shares of α, chosen from in-distribution data only:
 * synthetic far-OOD probes are made from the fit images (noise, blank, shuffled patches, flips, zoomed in and
 * out, inverted), every calibrated test scores them, and each test is judged by how it separates them from the
 * calibration images. A test that ranks the probes the wrong way (AUROC < 0.5: inverted) or barely at all
 * (AUROC < 0.6: blind) gets no share; the others share α in proportion to how many probes they catch at a 1%
 * false-alarm rate, averaged over the kinds of probe (so a test that alone catches one kind keeps a share).
 * No evaluation OOD set is ever used. Pure functions; fit.ts runs the engine.
 */
import type { RawImage } from '../image/preprocess';
import { auroc } from '../detectors/metrics';
import { mulberry32 } from '../detectors/random';
import type { TestName } from '../../shared/rules';
import type { TestChoiceRecord } from '../pair/manifest';

export const PROBE_KINDS = ['noise', 'blank', 'shuffled patches', 'flipped', 'zoomed in', 'zoomed out', 'inverted'] as const;
export type ProbeKind = (typeof PROBE_KINDS)[number];

/** Below this AUROC on the probes a test is not used: under 0.5 it points the wrong way, under 0.6 it is nearly blind. */
export const INVERTED_BELOW = 0.5;
export const BLIND_BELOW = 0.6;
/** The false-alarm rate at which a test's catch of each probe kind is counted for its share. */
const SHARE_FPR = 0.01;

/** An 8-bit image, interleaved (HWC), as the classifier sees it. */
export interface ProbeSource {
  width: number;
  height: number;
  channels: 1 | 3;
  pixels: Uint8Array;
}

/** Nearest-neighbour resample of `src` region (x0, y0, w, h) into a `tw`×`th` image. */
function resample(src: ProbeSource, x0: number, y0: number, w: number, h: number, tw: number, th: number): Uint8Array {
  const c = src.channels;
  const out = new Uint8Array(tw * th * c);
  for (let y = 0; y < th; y++) {
    const sy = Math.min(src.height - 1, Math.floor(y0 + ((y + 0.5) * h) / th));
    for (let x = 0; x < tw; x++) {
      const sx = Math.min(src.width - 1, Math.floor(x0 + ((x + 0.5) * w) / tw));
      for (let k = 0; k < c; k++) out[(y * tw + x) * c + k] = src.pixels[(sy * src.width + sx) * c + k];
    }
  }
  return out;
}

/** One probe of `kind` made from `src` (the same size and channels); `next` is a seeded uniform stream. */
export function makeProbe(kind: ProbeKind, src: ProbeSource, next: () => number): RawImage {
  const { width: w, height: h, channels: c, pixels } = src;
  const data = new Uint8Array(w * h * c);
  switch (kind) {
    case 'noise':
      for (let i = 0; i < data.length; i++) data[i] = Math.floor(next() * 256);
      break;
    case 'blank': {
      const level = Array.from({ length: c }, () => Math.floor(next() * 256));
      for (let i = 0; i < w * h; i++) for (let k = 0; k < c; k++) data[i * c + k] = level[k];
      break;
    }
    case 'shuffled patches': {
      // A 4×4 grid of patches (as large as the image allows) in a seeded random order.
      const gx = Math.min(4, w);
      const gy = Math.min(4, h);
      const order = Array.from({ length: gx * gy }, (_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      const pw = Math.floor(w / gx);
      const ph = Math.floor(h / gy);
      data.set(pixels);
      order.forEach((from, to) => {
        const [fx, fy, tx, ty] = [(from % gx) * pw, Math.floor(from / gx) * ph, (to % gx) * pw, Math.floor(to / gx) * ph];
        for (let y = 0; y < ph; y++) for (let x = 0; x < pw; x++) for (let k = 0; k < c; k++) data[((ty + y) * w + tx + x) * c + k] = pixels[((fy + y) * w + fx + x) * c + k];
      });
      break;
    }
    case 'flipped': {
      // Upside down, or mirrored left to right, by turns.
      const vertical = next() < 0.5;
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
        const sy = vertical ? h - 1 - y : y;
        const sx = vertical ? x : w - 1 - x;
        for (let k = 0; k < c; k++) data[(y * w + x) * c + k] = pixels[(sy * w + sx) * c + k];
      }
      break;
    }
    case 'zoomed in': {
      // The middle 40% of the image, blown up to the whole frame.
      const cw = Math.max(1, Math.round(w * 0.4));
      const ch = Math.max(1, Math.round(h * 0.4));
      data.set(resample(src, Math.floor((w - cw) / 2), Math.floor((h - ch) / 2), cw, ch, w, h));
      break;
    }
    case 'zoomed out': {
      // The whole image at 35% of its size, centred on its own corner colour.
      for (let i = 0; i < w * h; i++) for (let k = 0; k < c; k++) data[i * c + k] = pixels[k];
      const sw = Math.max(1, Math.round(w * 0.35));
      const sh = Math.max(1, Math.round(h * 0.35));
      const small = resample(src, 0, 0, w, h, sw, sh);
      const [ox, oy] = [Math.floor((w - sw) / 2), Math.floor((h - sh) / 2)];
      for (let y = 0; y < sh; y++) for (let x = 0; x < sw; x++) for (let k = 0; k < c; k++) data[((oy + y) * w + ox + x) * c + k] = small[(y * sw + x) * c + k];
      break;
    }
    case 'inverted':
      for (let i = 0; i < data.length; i++) data[i] = 255 - pixels[i];
      break;
  }
  return { width: w, height: h, channels: c, data };
}

/** `perKind` probes of every kind from `sources` (taken in turn), seeded. */
export function makeProbes(sources: ProbeSource[], perKind: number, seed: number): { kind: ProbeKind; image: RawImage }[] {
  const next = mulberry32(seed ^ 0x9b0be);
  const out: { kind: ProbeKind; image: RawImage }[] = [];
  for (const kind of PROBE_KINDS) for (let i = 0; i < perKind; i++) out.push({ kind, image: makeProbe(kind, sources[i % sources.length], next) });
  return out;
}

/** The score above which only `fpr` of the in-distribution scores lie (higher = more OOD). */
function thresholdAt(inScores: number[], fpr: number): number {
  const sorted = [...inScores].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((1 - fpr) * sorted.length))];
}

/**
 * The choice: for each test (OOD scores, higher = more OOD) on the calibration images and on each kind of
 * probe, its AUROC, its catch at 1% false alarms, whether it is used and its share of α (shares of the used
 * tests sum to 1). When no test passes, `fallback` (the planned shares) stands and the record says so.
 */
export function chooseTests(inScores: Partial<Record<TestName, number[]>>, probeScores: Partial<Record<TestName, Partial<Record<ProbeKind, number[]>>>>, fallback: Partial<Record<TestName, number>>, probesPerKind: number): TestChoiceRecord {
  const tests: TestChoiceRecord['tests'] = [];
  for (const [test, ins] of Object.entries(inScores) as [TestName, number[]][]) {
    const byKind = probeScores[test] ?? {};
    const kinds = PROBE_KINDS.filter((k) => (byKind[k]?.length ?? 0) > 0);
    if (!ins.length || !kinds.length) continue;
    const all = kinds.flatMap((k) => byKind[k]!);
    const overall = auroc(ins, all);
    const threshold = thresholdAt(ins, SHARE_FPR);
    const caught = Object.fromEntries(kinds.map((k) => [k, byKind[k]!.filter((s) => s > threshold).length / byKind[k]!.length])) as Record<ProbeKind, number>;
    const perKindAuroc = Object.fromEntries(kinds.map((k) => [k, Number(auroc(ins, byKind[k]!).toFixed(4))]));
    const meanCaught = kinds.reduce((a, k) => a + caught[k], 0) / kinds.length;
    const used = overall >= BLIND_BELOW;
    const reason = overall < INVERTED_BELOW
      ? `inverted on the synthetic probes: AUROC ${overall.toFixed(3)} (it finds them more in-distribution than the real images)`
      : overall < BLIND_BELOW
        ? `nearly blind on the synthetic probes: AUROC ${overall.toFixed(3)}`
        : undefined;
    tests.push({ test, auroc: Number(overall.toFixed(4)), aurocByProbe: perKindAuroc, caughtAt1Percent: Number(meanCaught.toFixed(4)), used, share: 0, ...(reason ? { reason } : {}) });
  }
  const usedTests = tests.filter((t) => t.used);
  if (!usedTests.length) {
    for (const t of tests) t.share = fallback[t.test] ?? 0;
    return { method: describeMethod(probesPerKind), probesPerKind, fallback: 'no test separated the probes from the real images; the planned shares stand', tests };
  }
  // A floor keeps a passing test that catches little at 1% in the verdict with a small share.
  const weights = usedTests.map((t) => t.caughtAt1Percent + 0.02);
  const total = weights.reduce((a, b) => a + b, 0);
  usedTests.forEach((t, i) => (t.share = Math.floor((1000 * weights[i]) / total) / 1000));
  return { method: describeMethod(probesPerKind), probesPerKind, tests };
}

function describeMethod(perKind: number): string {
  return `${perKind} synthetic probes of each kind (${PROBE_KINDS.join(', ')}) made from fit-part images, against the calibration images; a test with AUROC below ${BLIND_BELOW} is not used, the others share α by the probes they catch at ${100 * SHARE_FPR}% false alarms (mean over kinds)`;
}

export { testChoiceLines } from '../pair/fitRecords';
