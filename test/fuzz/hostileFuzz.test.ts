/**
 * Issue 15's bounded fuzz test: seeded random truncations, bit flips and junk over PNG, JPEG, IDX, ONNX,
 * ood-pair.json, calibration and dataset-manifest files, mixed with good files. Issue 22 adds result files
 * (`merge`, `--resume`: every mutation is refused naming the file and line, or gives a valid result set) and
 * more pair files (fitted features, their data files, symbolic links out of the pair folder). Checks: every good file is
 * scored, every bad file is an error record (or, for pair files, a refused pair naming the file), nothing
 * crashes or hangs (the test's timeout), and memory stays bounded. Only mutations that are sure to break a
 * file are used where a format tolerates others (a flipped bit in JPEG pixel data still decodes).
 * OOD_LENS_FUZZ_SEED picks another seed; a failure prints the seed.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { type ImageResult, OodEngine, type ScoreInput } from '../../src/inference/engine';
import { errorResult } from '../../src/inference/engineTypes';
import { expandInputs } from '../../src/inference/io/files';
import { parseManifest } from '../../src/providers/datasetManifest';
import { FIXTURES, MNIST_PAIR, MNIST_TEST_IMAGES, pairReady, tempDir, writeIdxPngs } from '../helpers';
import { mulberry32 } from '../../src/inference/detectors/random';
import { ResultsFileError, resultLineProblem } from '../../src/inference/datasets/resultsFile';
import { runMerge } from '../../src/cli/merge';
import { runScoreWith, ScoreUsageError } from '../../src/cli/score';

const SEED = Number(process.env.OOD_LENS_FUZZ_SEED ?? 15);

/** mulberry32: the same files for the same seed. */
function prng(seed: number): () => number {
  return mulberry32(seed);
}

const rand = prng(SEED);
const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo)); // [lo, hi)
const junk = (n: number) => {
  const b = Buffer.from(Array.from({ length: n }, () => int(0, 256)));
  b[0] = 0x01; // no image format starts with 0x01
  return b;
};
function flipBits(bytes: Buffer, from: number, to: number, count: number): Buffer {
  const out = Buffer.from(bytes);
  for (let k = 0; k < count; k++) out[int(from, to)] ^= 1 << int(0, 8);
  return out;
}

/** Offset of the PNG's IEND chunk (everything before it is needed to decode). */
function iendOffset(png: Buffer): number {
  return png.lastIndexOf(Buffer.from('IEND')) - 4;
}

describe(`bounded fuzz of hostile files (seed ${SEED})`, { skip: pairReady() ? false : 'models/mnist is not trained yet' }, () => {
  let dir: string;
  const good = new Set<string>();
  const bad = new Map<string, string>(); // path → the mutation, for messages
  let peakRss = 0;
  let sampler: NodeJS.Timeout;
  const baseRss = process.memoryUsage().rss;

  before(async () => {
    sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 25);
    dir = tempDir('ood-lens-fuzz-');
    const pngs = await writeIdxPngs(MNIST_TEST_IMAGES, [0, 1, 2, 3, 4, 5, 6, 7], join(dir, 'src'), 'digit');
    const jpegs = await Promise.all([0, 1, 2].map(async (i) => {
      const path = join(dir, 'src', `photo-${i}.jpg`);
      writeFileSync(path, await sharp(join(FIXTURES, ['cat.png', 'hen.png', 'rooster.png'][i])).resize(64, 64).jpeg().toBuffer());
      return path;
    }));
    const idxGood = Buffer.from(readFileSync(MNIST_TEST_IMAGES).subarray(0, 16 + 28 * 28 * 6));
    idxGood.writeUInt32BE(6, 4);
    const out = join(dir, 'in');
    mkdirSync(out);
    const add = (name: string, bytes: Buffer, mutation: string | null) => {
      const path = join(out, name);
      writeFileSync(path, bytes);
      if (mutation) bad.set(path, mutation);
      else good.add(path);
      return path;
    };
    // Good files: every PNG and JPEG as it is, and a 6-image IDX archive (plain and gzipped).
    pngs.forEach((p, i) => add(`good-${i}.png`, readFileSync(p), null));
    jpegs.forEach((p, i) => add(`good-${i}.jpg`, readFileSync(p), null));
    add('good-a-idx3-ubyte', idxGood, null);
    add('good-b-idx3-ubyte.gz', gzipSync(idxGood), null);
    // Broken files, several per format and kind of damage.
    for (let k = 0; k < 8; k++) {
      const png = readFileSync(pngs[int(0, pngs.length)]);
      const end = iendOffset(png);
      const cut = int(1, end);
      add(`cut-${k}.png`, png.subarray(0, cut), `PNG truncated at ${cut} of ${png.length}`);
      add(`flip-${k}.png`, flipBits(png, 0, end, int(1, 9)), 'PNG with bits flipped before IEND');
      add(`junk-${k}.png`, junk(int(1, 4096)), 'junk named .png');
    }
    for (let k = 0; k < 5; k++) {
      const jpg = readFileSync(jpegs[int(0, jpegs.length)]);
      const cut = int(1, jpg.length - 64);
      add(`cut-${k}.jpg`, jpg.subarray(0, cut), `JPEG truncated at ${cut} of ${jpg.length}`);
      add(`junk-${k}.jpg`, junk(int(1, 4096)), 'junk named .jpg');
    }
    for (let k = 0; k < 4; k++) {
      const cut = int(1, idxGood.length - 1);
      add(`cut-${k}-idx3-ubyte`, idxGood.subarray(0, cut), `IDX truncated at ${cut}`);
      const gz = gzipSync(idxGood);
      const gzCut = int(1, gz.length - 8);
      add(`cut-${k}-idx3-ubyte.gz`, gz.subarray(0, gzCut), `gzipped IDX truncated at ${gzCut}`);
      add(`flip-${k}-idx3-ubyte`, flipBits(idxGood, 0, 4, 1), 'IDX with a flipped bit in its magic number');
      add(`junk-${k}-idx1-ubyte.gz`, junk(int(1, 2048)), 'junk named as a gzipped IDX');
    }
    // A gzip bomb: its header declares 6 images, it inflates to 64 MB.
    add('bomb-idx3-ubyte.gz', gzipSync(Buffer.concat([idxGood, Buffer.alloc(64 * 1024 * 1024)])), 'IDX gzip bomb');
  });

  after(() => {
    clearInterval(sampler);
    rmSync(dir, { recursive: true, force: true });
  });

  const fail = (what: string) => `${what} (seed ${SEED}; rerun with OOD_LENS_FUZZ_SEED=${SEED})`;

  test('images and IDX archives: every good file scored, every bad file an error record', { timeout: 120_000 }, async () => {
    const engine = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', batchSize: 16 });
    const results: ImageResult[] = [];
    try {
      await engine.scoreAll(expandInputs([join(dir, 'in')]), (r) => void results.push(r));
      // IDX archives are listed by name only inside folders when they have an image extension: score them as arguments.
      const archives = [...good, ...bad.keys()].filter((p) => /idx\d-ubyte(\.gz)?$/.test(p)).sort();
      await engine.scoreAll(expandInputs(archives), (r) => void results.push(r));
    } finally {
      await engine.dispose();
    }
    const byFile = new Map<string, ImageResult[]>();
    for (const r of results) {
      const file = r.path.replace(/#\d+$/, '');
      byFile.set(file, [...(byFile.get(file) ?? []), r]);
    }
    for (const path of good) {
      const rs = byFile.get(path);
      assert.ok(rs?.length, fail(`good file ${path} was not scored`));
      for (const r of rs) {
        assert.notEqual(r.verdict, 'error', fail(`good file ${r.path}: ${r.error}`));
        assert.ok(Number.isFinite(r.elbo) && Number.isFinite(r.msp), fail(`good file ${r.path} has non-finite scores`));
      }
      if (/idx3-ubyte/.test(path)) assert.equal(rs.length, 6, fail(`${path}: ${rs.length} images, expected 6`));
    }
    for (const [path, mutation] of bad) {
      const rs = byFile.get(path);
      assert.ok(rs?.length, fail(`bad file ${path} (${mutation}) has no record`));
      assert.equal(rs.length, 1, fail(`bad file ${path} (${mutation}) gave ${rs.length} records`));
      assert.equal(rs[0].verdict, 'error', fail(`bad file ${path} (${mutation}) was scored: ${rs[0].verdict}`));
      assert.ok(rs[0].error && rs[0].error.length < 400 && !rs[0].error.includes('\n'), fail(`${path}: unclear error ${JSON.stringify(rs[0].error)}`));
    }
    assert.match(byFile.get(join(dir, 'in', 'bomb-idx3-ubyte.gz'))![0].error!, /decompresses to more than the \d+ bytes its IDX header declares/);
  });

  test('pair files (ONNX, ood-pair.json, calibration): a damaged pair is refused with the file named', { timeout: 120_000 }, async () => {
    const variants: { name: string; file: string; bytes: (original: Buffer) => Buffer }[] = [];
    for (let k = 0; k < 2; k++) {
      variants.push({ name: `classifier.onnx truncated (${k})`, file: 'classifier.onnx', bytes: (b) => b.subarray(0, int(1, b.length >> 1)) });
      variants.push({ name: `vae.onnx junk (${k})`, file: 'vae.onnx', bytes: () => junk(int(1, 8192)) });
      variants.push({ name: `ood-pair.json truncated (${k})`, file: 'ood-pair.json', bytes: (b) => b.subarray(0, int(1, b.length - 2)) });
      variants.push({ name: `ood-pair.json junk (${k})`, file: 'ood-pair.json', bytes: () => junk(int(1, 512)) });
      variants.push({ name: `calibration.json truncated (${k})`, file: 'calibration.json', bytes: (b) => b.subarray(0, int(1, b.length - 2)) });
      variants.push({
        name: `calibration.json with a bad score (${k})`,
        file: 'calibration.json',
        bytes: (b) => {
          const cal = JSON.parse(b.toString('utf8'));
          const keys = Object.keys(cal.scores);
          const key = keys[int(0, keys.length)];
          cal.scores[key][int(0, cal.scores[key].length)] = [null, 'x', {}, [1]][int(0, 4)];
          return Buffer.from(JSON.stringify(cal));
        },
      });
    }
    for (const v of variants) {
      const pair = join(tempDir('ood-lens-fuzz-pair-'), 'pair');
      cpSync(MNIST_PAIR, pair, { recursive: true });
      const target = join(pair, v.file);
      writeFileSync(target, v.bytes(readFileSync(target)));
      let engine: OodEngine | undefined;
      try {
        engine = await OodEngine.create({ pair, provider: 'cpu', preprocessWorkers: 0 });
      } catch (err) {
        const message = (err as Error).message;
        assert.ok(message.includes(v.file), fail(`${v.name}: the error does not name ${v.file}: ${message}`));
        continue;
      } finally {
        await engine?.dispose();
        rmSync(join(pair, '..'), { recursive: true, force: true });
      }
      assert.fail(fail(`${v.name}: the damaged pair loaded`));
    }
  });

  /** Seeded mutations of a JSONL result file: torn, flipped, junk lines, fields set to hostile values, long lines. */
  function mutateResults(text: string, k: number): { name: string; bytes: Buffer } {
    const lines = text.split('\n').filter(Boolean);
    const pickLine = () => int(1, lines.length);
    const hostile = [null, 5, -1, 'x', '\u001b]0;pwned\u0007', ['knn', 'rm'], { a: 1 }, 1e309, 'out-of-distribution', [], true];
    const fields = ['verdict', 'pValue', 'firedBy', 'seq', 'arg', 'key', 'path', 'label', 'msp', 'pValues', 'prediction', 'inputSize', 'elbo', 'row', 'givenLabel'];
    switch (k % 7) {
      case 0: {
        const b = Buffer.from(text);
        const cut = int(1, b.length - 1);
        return { name: `truncated at ${cut}`, bytes: b.subarray(0, cut) };
      }
      case 1: {
        const b = Buffer.from(text);
        return { name: 'bits flipped', bytes: flipBits(b, 0, b.length, int(1, 6)) };
      }
      case 2: {
        const at = pickLine();
        lines.splice(at, 0, junk(int(1, 300)).toString('latin1').replace(/\n/g, ' '));
        return { name: `junk line at ${at + 1}`, bytes: Buffer.from(lines.join('\n') + '\n') };
      }
      case 3: {
        const at = pickLine();
        const r = JSON.parse(lines[at]);
        const field = fields[int(0, fields.length)];
        const value = hostile[int(0, hostile.length)];
        r[field] = value;
        lines[at] = JSON.stringify(r);
        return { name: `line ${at + 1}: ${field} = ${JSON.stringify(value)}`, bytes: Buffer.from(lines.join('\n') + '\n') };
      }
      case 4: {
        const at = pickLine();
        lines.splice(at, 0, lines[at]);
        return { name: `line ${at + 1} twice`, bytes: Buffer.from(lines.join('\n') + '\n') };
      }
      case 5: {
        const h = JSON.parse(lines[0]);
        const field = ['pair', 'inputs', 'shard', 'manifest', 'pairFingerprint'][int(0, 5)];
        h[field] = hostile[int(0, hostile.length)];
        lines[0] = JSON.stringify(h);
        return { name: `header ${field} changed`, bytes: Buffer.from(lines.join('\n') + '\n') };
      }
      default:
        return { name: 'a 6 MB line without a newline', bytes: Buffer.concat([Buffer.from(text), Buffer.alloc(6 * 1024 * 1024, 0x7b)]) };
    }
  }

  /** A refusal of a damaged result file: one of the CLI's own errors, naming the file. */
  function expectResultsError(err: unknown, file: string, what: string): void {
    assert.ok(err instanceof ResultsFileError || err instanceof ScoreUsageError, fail(`${what}: ${(err as Error).stack}`));
    assert.ok((err as Error).message.includes(file), fail(`${what}: the message does not name ${file}: ${(err as Error).message}`));
  }

  test('result files: merge and --resume refuse every damaged file naming it, or give a valid, complete result set', { timeout: 300_000 }, async () => {
    const folder = join(dir, 'src');
    const engine = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', preprocessWorkers: 0 });
    const work = join(dir, 'results');
    mkdirSync(work, { recursive: true });
    const base = join(work, 'base.jsonl');
    const options = { positionals: [folder], recursive: false, format: 'jsonl' as const, resume: false, failOnOod: false };
    const stderr = process.stderr.write.bind(process.stderr);
    process.stderr.write = (() => true) as typeof process.stderr.write; // the runs' notes
    try {
      assert.equal(await runScoreWith(engine, { ...options, out: base }), 0);
      const text = readFileSync(base, 'utf8');
      const keys = text.split('\n').filter(Boolean).slice(1).map((l) => JSON.parse(l).key as string);
      for (let k = 0; k < 28; k++) {
        const { name, bytes } = mutateResults(text, k);
        const file = join(work, `m${k}.jsonl`);
        writeFileSync(file, bytes);
        // merge, as csv and as a table: refused naming the file, or every line valid and nothing raw printed.
        for (const format of ['csv', 'table']) {
          const out = join(work, `m${k}.${format}`);
          try {
            await runMerge([file, '--format', format, '--out', out]);
            const printed = readFileSync(out, 'utf8');
            assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(printed), fail(`merge ${name}: a control character in the ${format} output`));
          } catch (err) {
            expectResultsError(err, file, `merge ${name}`);
          }
        }
        // --resume: refused naming the file, or the file ends as one complete run (each input once, seqs unique and in order).
        try {
          await runScoreWith(engine, { ...options, out: file, resume: true });
          const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(1).map((l) => JSON.parse(l));
          lines.forEach((r) => assert.equal(resultLineProblem(r), null, fail(`resume ${name}: an invalid line was kept`)));
          // Each input of the run exactly once (a line whose key or arg was changed names no input of the run: it stays).
          const ids = lines.map((r) => `${r.arg}/${r.key}`);
          assert.equal(new Set(ids).size, ids.length, fail(`resume ${name}: an input twice`));
          for (const key of keys) assert.equal(ids.filter((id) => id === `0/${key}`).length, 1, fail(`resume ${name}: ${key} not exactly once`));
          const seqs = lines.map((r) => r.seq);
          assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), fail(`resume ${name}: seqs out of order`));
          assert.equal(new Set(seqs).size, seqs.length, fail(`resume ${name}: a seq twice`));
        } catch (err) {
          if (err instanceof assert.AssertionError) throw err;
          expectResultsError(err, file, `resume ${name}`);
        }
        assert.ok(!existsSync(`${file}.lock`), fail(`${name}: a lock was left behind`));
      }
    } finally {
      process.stderr.write = stderr;
      await engine.dispose();
    }
  });

  test('fitted features and symbolic links: a damaged pair is refused with the file named', { timeout: 120_000 }, async () => {
    const variants: { name: string; file: string; damage: (pair: string) => void }[] = [];
    const rewrite = (f: string, change: (b: Buffer) => Buffer) => (pair: string) => writeFileSync(join(pair, f), change(readFileSync(join(pair, f))));
    for (let k = 0; k < 2; k++) {
      variants.push({ name: `features.json truncated (${k})`, file: 'features.json', damage: rewrite('features.json', (b) => b.subarray(0, int(1, b.length - 2))) });
      variants.push({ name: `features.json junk (${k})`, file: 'features.json', damage: rewrite('features.json', () => junk(int(1, 512))) });
      variants.push({ name: `features-knn.f16 truncated (${k})`, file: 'features-knn.f16', damage: rewrite('features-knn.f16', (b) => b.subarray(0, int(1, b.length - 1) & ~1)) });
      variants.push({
        name: `features-knn.f16 with a NaN (${k})`,
        file: 'features-knn.f16',
        damage: rewrite('features-knn.f16', (b) => {
          const out = Buffer.from(b);
          out.writeUInt16LE(0x7e00, 2 * int(0, out.length >> 1));
          return out;
        }),
      });
      variants.push({ name: `features-knn.f16 all zeros (${k})`, file: 'features-knn.f16', damage: rewrite('features-knn.f16', (b) => Buffer.alloc(b.length)) });
      variants.push({ name: `features-mahalanobis.f32 truncated (${k})`, file: 'features-mahalanobis.f32', damage: rewrite('features-mahalanobis.f32', (b) => b.subarray(0, int(1, b.length - 1))) });
      const linked = ['classifier.onnx', 'vae.onnx', 'calibration.json', 'features-knn.f16', 'features.json'][int(0, 5)];
      variants.push({
        name: `${linked} a symbolic link out of the pair folder (${k})`,
        file: linked,
        damage: (pair) => {
          renameSync(join(pair, linked), join(pair, '..', `moved-${linked}`));
          symlinkSync(join(pair, '..', `moved-${linked}`), join(pair, linked));
        },
      });
    }
    for (const v of variants) {
      const pair = join(tempDir('ood-lens-fuzz-pair-'), 'pair');
      cpSync(MNIST_PAIR, pair, { recursive: true });
      v.damage(pair);
      let engine: OodEngine | undefined;
      try {
        engine = await OodEngine.create({ pair, provider: 'cpu', preprocessWorkers: 0 });
      } catch (err) {
        const message = (err as Error).message;
        assert.ok(message.includes(v.file), fail(`${v.name}: the error does not name ${v.file}: ${message}`));
        continue;
      } finally {
        await engine?.dispose();
        rmSync(join(pair, '..'), { recursive: true, force: true });
      }
      assert.fail(fail(`${v.name}: the damaged pair loaded`));
    }
  });

  test('dataset manifests: mutated CSV/JSONL never throw; every row is scored or an error record', { timeout: 120_000 }, async () => {
    const rows = [...good].filter((p) => /\.(png|jpe?g)$/.test(p)).concat([...bad.keys()].filter((p) => /\.(png|jpe?g)$/.test(p)).slice(0, 10));
    const csv = ['path,label', ...rows.map((p, i) => `${p},${i % 10}`)].join('\n') + '\n';
    const jsonl = rows.map((p, i) => JSON.stringify({ image: p, label: i % 10 })).join('\n') + '\n';
    const engine = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', preprocessWorkers: 0 });
    try {
      for (let k = 0; k < 6; k++) {
        for (const [format, text] of [['csv', csv], ['jsonl', jsonl]] as const) {
          const bytes = Buffer.from(text);
          const mutated = [
            bytes.subarray(0, int(1, bytes.length)),
            flipBits(bytes, 0, bytes.length, int(1, 6)),
            Buffer.concat([bytes.subarray(0, int(0, bytes.length)), junk(int(1, 200)), bytes.subarray(int(0, bytes.length))]),
          ][k % 3];
          const parsed = await parseManifest(mutated.toString('utf8'), { format, baseDir: dir });
          const inputs: ScoreInput[] = [];
          const preset: (ImageResult | null)[] = [];
          for (const row of parsed.rows) {
            if (row.path) {
              inputs.push({ path: row.path });
              preset.push(null);
            } else preset.push(errorResult(row.rawPath ?? `line ${row.line + 1}`, row.problem ?? 'no path'));
          }
          const scored: ImageResult[] = [];
          await engine.scoreAll(inputs, (r) => void scored.push(r));
          let s = 0;
          const results = preset.map((r) => r ?? scored[s++]);
          results.forEach((r) => {
            if (good.has(r.path)) assert.notEqual(r.verdict, 'error', fail(`${format} mutation ${k}: good row ${r.path}: ${r.error}`));
            else assert.equal(r.verdict, 'error', fail(`${format} mutation ${k}: row ${r.path} is not a good file but was scored`));
          });
        }
      }
    } finally {
      await engine.dispose();
    }
  });

  test('memory stayed bounded (peak RSS over the whole run)', () => {
    const grew = (peakRss - baseRss) / 1024 / 1024;
    assert.ok(grew < 768, fail(`peak RSS grew by ${grew.toFixed(0)} MB`));
  });
});
