/**
 * Issue 15 regression tests (hostile input): bounded reads, pair files, listing problems, non-finite model
 * outputs, calibrations too small to reject, names and text, the per-image time limit.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { gunzipBounded, readBounded, readBoundedSync } from '../../src/inference/io/boundedRead';
import { CalibrationError, readCalibration } from '../../src/inference/pair/calibration';
import { minimumScoresFor, rejectionCheck } from '../../src/inference/pair/calibrationCheck';
import { type ImageResult, OodEngine, type ScoreInput } from '../../src/inference/engine';
import { expandInputs, walkImages } from '../../src/inference/io/files';
import { parseIdx } from '../../src/inference/io/idx';
import { loadPairManifest, ManifestError, parsePairManifest } from '../../src/inference/pair/manifest';
import { ResultWriter } from '../../src/inference/datasets/output';
import { loadPair } from '../../src/inference/pair/pair';
import { toModelImage } from '../../src/inference/image/preprocess';
import { csvCell, terminalText } from '../../src/inference/io/safeText';
import { loadTfjs } from '../../src/inference/backends/tfjs';
import { FIXTURES, MNIST_PAIR, MNIST_TEST_IMAGES, pairReady, REPO, tempDir, writeIdxPngs } from '../helpers';

const skipNoPair = pairReady() ? false : 'models/mnist is not trained yet';

function mkfifo(path: string): void {
  execFileSync('mkfifo', [path]);
}

/** A copy of the built-in pair whose manifest `edit` changes (models copied, so they can be replaced). */
function pairCopy(edit: (m: Record<string, any>) => void = () => undefined): string {
  const dir = join(tempDir('ood-lens-pair-'), 'pair');
  cpSync(MNIST_PAIR, dir, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(dir, 'ood-pair.json'), 'utf8'));
  edit(manifest);
  writeFileSync(join(dir, 'ood-pair.json'), JSON.stringify(manifest, null, 2));
  return dir;
}

async function scoreAllOf(engine: OodEngine, inputs: ScoreInput[] | AsyncIterable<ScoreInput>): Promise<ImageResult[]> {
  const out: ImageResult[] = [];
  await engine.scoreAll(inputs, (r) => void out.push(r));
  return out;
}

describe('bounded reads (item 6)', () => {
  let dir: string;
  before(() => {
    dir = tempDir();
  });

  test('a named pipe is refused at once, sync and async, instead of blocking', async () => {
    const fifo = join(dir, 'pipe.bin');
    mkfifo(fifo);
    assert.throws(() => readBoundedSync(fifo, { maxBytes: 1e6 }), /is not a regular file \(a named pipe\)/);
    await assert.rejects(readBounded(fifo, { maxBytes: 1e6 }), /is not a regular file \(a named pipe\)/);
  });

  test('a device is refused without reading, and sizes are checked before reading', () => {
    assert.throws(() => readBoundedSync('/dev/zero', { maxBytes: 1e9 }), /is not a regular file \(a character device\)/);
    const big = join(dir, 'big.bin');
    writeFileSync(big, Buffer.alloc(100));
    assert.throws(() => readBoundedSync(big, { maxBytes: 10, what: 'model file' }), /model file is too large \(100 bytes; the limit is 10\)/);
    assert.equal(readBoundedSync(big, { maxBytes: 100 }).length, 100);
  });

  test('gzip inflates up to a cap and names truncation', () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    assert.throws(() => gunzipBounded(bomb, 1024 * 1024, 'bomb.gz'), /decompresses to more than 1048576 bytes.*decompression bomb/);
    assert.throws(() => gunzipBounded(bomb.subarray(0, bomb.length >> 1), 1e9, 'half.gz'), /gzip data is truncated/);
  });

  test('calibration.json on /dev/zero and ood-pair.json as a named pipe are refused, not read', () => {
    const cal = join(dir, 'calibration.json');
    symlinkSync('/dev/zero', cal);
    assert.throws(() => readCalibration(cal), (e: Error) => e instanceof CalibrationError && /character device/.test(e.message));
    const pairDir = join(dir, 'fifo-pair');
    mkdirSync(pairDir);
    mkfifo(join(pairDir, 'ood-pair.json'));
    assert.throws(() => loadPairManifest(pairDir), (e: Error) => e instanceof ManifestError && /named pipe/.test(e.message));
  });

  test('a named pipe as the classifier model is refused (onnxruntime would block on it forever)', { skip: skipNoPair, timeout: 30_000 }, async () => {
    const pair = pairCopy();
    rmSync(join(pair, 'classifier.onnx'));
    mkfifo(join(pair, 'classifier.onnx'));
    await assert.rejects(loadPair(pair, { provider: 'cpu' }), /classifier\.onnx: is not a regular file \(a named pipe\)/);
  });

  test('TF.js: a weights file listed 20,000 times is refused before reading; weights on /dev/zero too', async () => {
    const model = join(dir, 'tfjs');
    mkdirSync(model);
    writeFileSync(join(model, 'w.bin'), Buffer.alloc(4));
    const group = { paths: ['w.bin'], weights: [{ name: 'w', shape: [1], dtype: 'float32' }] };
    writeFileSync(join(model, 'model.json'), JSON.stringify({ format: 'layers-model', modelTopology: { x: 1 }, weightsManifest: Array.from({ length: 20_000 }, () => group) }));
    const start = performance.now();
    await assert.rejects(loadTfjs(model, 'tfjs-layers', { provider: 'cpu' }), /lists the weights file w\.bin more than once/);
    assert.ok(performance.now() - start < 5000);
    rmSync(join(model, 'w.bin'));
    symlinkSync('/dev/zero', join(model, 'w.bin'));
    writeFileSync(join(model, 'model.json'), JSON.stringify({ format: 'layers-model', modelTopology: { x: 1 }, weightsManifest: [group] }));
    // A link out of the model folder is refused by its real path (issue 22); a device or pipe inside it as not a regular file.
    await assert.rejects(loadTfjs(model, 'tfjs-layers', { provider: 'cpu' }), /weights path "w\.bin" is a symbolic link to \/dev\/zero, outside the model folder/);
    rmSync(join(model, 'w.bin'));
    execFileSync('mkfifo', [join(model, 'w.bin')]);
    await assert.rejects(loadTfjs(model, 'tfjs-layers', { provider: 'cpu' }), /w\.bin: cannot read weights file \(is not a regular file \(a named pipe\)/);
  });

  test('an IDX gzip bomb is judged by its header and stopped at the declared size', () => {
    const header = Buffer.from([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28]);
    const bomb = gzipSync(Buffer.concat([header, Buffer.alloc(64 * 1024 * 1024)]));
    assert.throws(() => parseIdx(bomb, 'bomb-idx3-ubyte.gz'), /decompresses to more than the 800 bytes its IDX header declares/);
    const huge = Buffer.from([0, 0, 8, 3, 0, 1, 0, 0, 0, 0, 16, 0, 0, 0, 16, 0]); // 65,536 × 4,096 × 4,096
    assert.throws(() => parseIdx(gzipSync(huge), 'huge.gz'), /IDX header declares \d+ bytes of data, over the limit/);
  });
});

describe('pair files (item 8)', () => {
  test('model and calibration paths must stay inside the pair folder; the field is named', { skip: skipNoPair }, () => {
    const abs = pairCopy((m) => (m.classifier.path = '/etc/passwd'));
    assert.throws(() => loadPairManifest(abs), /classifier\.path: "\/etc\/passwd" points outside the pair folder/);
    const up = pairCopy((m) => (m.calibration = '../../../etc/shadow'));
    assert.throws(() => loadPairManifest(up), /calibration: "\.\.\/\.\.\/\.\.\/etc\/shadow" points outside the pair folder/);
    const inside = pairCopy((m) => (m.vae.encoder.path = './sub/../vae-encoder.onnx'));
    assert.doesNotThrow(() => loadPairManifest(inside));
  });

  test('a calibration error never quotes the file it read', () => {
    const path = join(tempDir(), 'calibration.json');
    writeFileSync(path, 'root:$6$secret-hash:19000:0:99999:7:::\n');
    assert.throws(() => readCalibration(path), (e: Error) => /not valid JSON/.test(e.message) && !/root|secret/.test(e.message));
    const manifest = join(tempDir(), 'ood-pair.json');
    writeFileSync(manifest, 'daemon:secret-hash\n');
    assert.throws(() => loadPairManifest(manifest), (e: Error) => /not valid JSON/.test(e.message) && !/daemon|secret/.test(e.message));
  });

  test('score lists: null, strings, out-of-range numbers and non-lists are refused, naming the entry', () => {
    const dir = tempDir();
    const write = (scores: unknown) => {
      const path = join(dir, `cal-${Math.random()}.json`);
      writeFileSync(path, JSON.stringify({ version: 1, pair: 'p', source: 's', count: 3, createdAt: '', scores }).replace('"__INF__"', '1e999'));
      return path;
    };
    assert.throws(() => readCalibration(write({ elbo: [1, 2, 3], msp: [0.9, null, 0.8] })), /scores\.msp\[1\]: must be a finite number \(found null\)/);
    assert.throws(() => readCalibration(write({ elbo: [1, '2', 3], msp: [0.9] })), /scores\.elbo\[1\]: must be a finite number \(found string\)/);
    assert.throws(() => readCalibration(write({ elbo: [1, 2, '__INF__'], msp: [0.9] })), /scores\.elbo\[2\]: must be a finite number \(found a number out of range/);
    assert.throws(() => readCalibration(write({ elbo: [1, 2, 3], msp: [0.9], complexity: 7 })), /scores\.complexity: must be a list of numbers \(found number\)/);
    assert.deepEqual(readCalibration(write({ elbo: [3, 1, 2], msp: [0.9] })).scores.elbo, [1, 2, 3]);
  });

  test('a byte-order mark before ood-pair.json is accepted', { skip: skipNoPair }, () => {
    const text = readFileSync(join(MNIST_PAIR, 'ood-pair.json'), 'utf8');
    assert.equal(parsePairManifest(`\uFEFF${text}`, 'ood-pair.json').name, 'mnist');
    const dir = pairCopy();
    writeFileSync(join(dir, 'ood-pair.json'), `\uFEFF${text}`);
    assert.equal(loadPairManifest(dir).manifest.name, 'mnist');
  });

  test('a truncated IDX archive is an error record naming the truncation, not "not an image"', async () => {
    const dir = tempDir();
    const full = readFileSync(MNIST_TEST_IMAGES);
    const truncated = join(dir, 'cut-idx3-ubyte');
    writeFileSync(truncated, full.subarray(0, 16 + 28 * 28 * 3 + 100));
    const gz = join(dir, 'cut-idx3-ubyte.gz');
    const packed = gzipSync(full.subarray(0, 16 + 28 * 28 * 10));
    writeFileSync(gz, packed.subarray(0, packed.length - 40));
    const inputs: ScoreInput[] = [];
    for await (const input of expandInputs([truncated, gz])) inputs.push(input);
    assert.deepEqual(inputs.map((i) => i.path), [truncated, gz]);
    assert.match(inputs[0].error ?? '', /^truncated IDX file \(the header declares 7840000 bytes of data, the file has 2452\)/);
    assert.match(inputs[1].error ?? '', /gzip data is truncated/);
  });
});

describe('listing problems (item 1) and names (item 9)', () => {
  test('a folder deeper than PATH_MAX is a problem record; the walk goes on after it', async () => {
    const root = tempDir();
    writeFileSync(join(root, 'a.png'), 'x');
    writeFileSync(join(root, 'z.png'), 'x');
    mkdirSync(join(root, 'm-deep'));
    const name = 'd'.repeat(200);
    execFileSync('bash', ['-c', `cd "$1" && for i in $(seq 24); do mkdir ${name} && cd ${name}; done && touch lost.png`, 'bash', join(root, 'm-deep')]);
    try {
      const listed = [];
      for await (const f of walkImages(root, true)) listed.push(f);
      assert.equal(listed[0].path, join(root, 'a.png'));
      assert.equal(listed.at(-1)!.path, join(root, 'z.png'));
      const problems = listed.filter((f) => f.error);
      assert.equal(problems.length, 1);
      assert.match(problems[0].error!, /cannot list this folder: the path is too long .*ENAMETOOLONG/);
      assert.ok(problems[0].path.length > 4000);
    } finally {
      execFileSync('rm', ['-rf', root]);
    }
  });

  test('a folder that cannot be listed at the top is one problem record, not nothing', async () => {
    const root = tempDir();
    const listed = [];
    for await (const f of walkImages(join(root, 'missing-folder'), true)) listed.push(f);
    assert.deepEqual(listed.map((f) => f.error), ['cannot list this folder: file not found; its images were not scored']);
  });

  test('a file name that is not valid UTF-8 is listed with its bytes and shown escaped (issue 22: scored, see nonUtf8Names.test.ts)', async () => {
    const root = tempDir();
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#fff' } }).png().toBuffer();
    writeFileSync(Buffer.from(`${root}/bad-\xff\xfe.png`, 'latin1'), png);
    writeFileSync(join(root, 'good.png'), png);
    const listed = [];
    for await (const f of walkImages(root, false)) listed.push(f);
    assert.deepEqual(listed.map((f) => f.path), [join(root, 'bad-\\xff\\xfe.png'), join(root, 'good.png')]);
    assert.equal(listed[0].error, undefined);
    assert.deepEqual(listed[0].fsPath, Buffer.from(`${root}/bad-\xff\xfe.png`, 'latin1'));
    assert.equal(listed[1].error, undefined);
    assert.equal(listed[1].fsPath, undefined);
    // The same name as a command-line argument arrives with U+FFFD in place of the bytes.
    const inputs: ScoreInput[] = [];
    for await (const i of expandInputs([join(root, 'bad-\uFFFD\uFFFD.png')])) inputs.push(i);
    assert.match(inputs[0].error ?? '', /^file not found: the name as given holds bytes that are not valid UTF-8/);
  });

  test('CSV cells cannot start a formula; table text cannot carry escape sequences', () => {
    assert.equal(csvCell('=HYPERLINK("http://x","y")'), `'=HYPERLINK("http://x","y")`);
    for (const s of ['+1', '-1+2', '@SUM(A1)', '\tx', '\rx']) assert.equal(csvCell(s), `'${s}`);
    assert.equal(csvCell(-3.5), -3.5);
    assert.equal(csvCell('cat'), 'cat');
    assert.equal(terminalText('a\x1b]0;owned\x07b\u202ec'), 'a\\x1b]0;owned\\x07b\\u{202e}c');
  });

  test('the CLI writers escape labels and paths (CSV, table)', () => {
    const dir = tempDir();
    const info = { name: 'p\x1b[31m', manifestPath: '', backend: 'b', provider: 'cpu', calibrated: true, calibrationCount: 1, calibrationSource: null, labels: [], input: { width: 1, height: 1, channels: 1 }, alpha: 0.01, rule: 'all' } as const;
    const result = { path: join(dir, '=cmd|x.png'), prediction: 0, label: '=HYPERLINK("http://evil")', msp: 0.9, entropy: 0.1, energy: -1, elbo: -10, reconstructionLogLik: -9, kl: 1, elboBitsPerDim: 1, logPxBound: null, complexityBits: 1, complexityScore: 1, pValue: 0.5, pValues: { elbo: 0.5, complexity: 0.5, confidence: 0.5 }, firedBy: [], verdict: 'in-distribution', error: null } as ImageResult;
    const csv = join(dir, 'out.csv');
    const w = new ResultWriter('csv', { ...info, labels: [] } as never, csv);
    w.add(result);
    w.add({ ...result, path: 'x\x1b[2J.png', label: null, verdict: 'error', error: '-oops' });
    return w.end({ count: 2 } as never).then(async () => {
      const text = readFileSync(csv, 'utf8');
      assert.match(text, /"'=HYPERLINK\(""http:\/\/evil""\)"/);
      assert.match(text, /,'-oops,/);
      const table = join(dir, 'out.txt');
      const t = new ResultWriter('table', info as never, table);
      t.add({ ...result, path: 'x\x1b[2J.png', label: '\x1b[31mred' });
      await t.end({ count: 1, inDistribution: 1, outOfDistribution: 0, errors: 0, uncalibrated: 0, imagesPerSecond: 1 } as never);
      const out = readFileSync(table, 'utf8');
      assert.ok(!out.includes('\x1b'), out);
      assert.match(out, /x\\x1b\[2J\.png/);
    });
  });
});

describe('calibration size (item 3)', () => {
  test('the minimum n for a threshold: 1/(n+1) must fall below it', () => {
    assert.equal(minimumScoresFor(0.45 * 0.01), 222);
    assert.equal(minimumScoresFor(0.5 * 0.01), 200);
    assert.equal(minimumScoresFor(0.01), 100);
    assert.equal(minimumScoresFor(0.1 * 0.01), 1000);
    assert.deepEqual(rejectionCheck({ elbo: 221, complexity: 221, confidence: 221 }, 'all', 0.01).canReject, false);
    assert.deepEqual(rejectionCheck({ elbo: 222, complexity: 222, confidence: 222 }, 'all', 0.01).canReject, true);
    // Rule `pair` uses the manifest's shares (without any, `all`).
    assert.equal(rejectionCheck({ elbo: 150, complexity: 150, knn: 150 }, 'pair', 0.01, { knn: 0.7, elbo: 0.3 }).canReject, true);
    assert.equal(rejectionCheck({ elbo: 150, complexity: 150, knn: 150 }, 'pair', 0.01).canReject, false);
    // Without complexity scores a rule that uses them is the ELBO test alone (share 1).
    assert.deepEqual(rejectionCheck({ elbo: 100, confidence: 100 }, 'all', 0.01), { canReject: true, minimum: 100, rule: 'elbo', count: 100 });
  });

  test('a pair calibrated on 27 images is refused with the minimum for its rule and α', { skip: skipNoPair, timeout: 60_000 }, async () => {
    const dir = pairCopy();
    const cal = JSON.parse(readFileSync(join(dir, 'calibration.json'), 'utf8'));
    for (const key of Object.keys(cal.scores)) cal.scores[key] = cal.scores[key].slice(0, 27);
    cal.count = 27;
    writeFileSync(join(dir, 'calibration.json'), JSON.stringify(cal));
    await assert.rejects(OodEngine.create({ pair: dir, provider: 'cpu', preprocessWorkers: 0, rule: 'all' }), /calibration\.json: the calibration has 27 scores, too few to ever flag an image under rule all at α = 0\.01: .*at least 222/);
    // The default rule `pair` takes the manifest's detector list and shares.
    await assert.rejects(OodEngine.create({ pair: dir, provider: 'cpu', preprocessWorkers: 0 }), /the calibration has 27 scores, too few to ever flag an image under rule pair at α = 0\.01: .*at least \d+/);
    await assert.rejects(OodEngine.create({ pair: dir, provider: 'cpu', preprocessWorkers: 0, rule: 'both', alpha: 0.05 }), /under rule both at α = 0\.05: .*at least 40;/);
    const engine = await OodEngine.create({ pair: dir, provider: 'cpu', preprocessWorkers: 0, rule: 'elbo', alpha: 0.1 });
    await engine.dispose();
  });
});

describe('non-finite model outputs (item 2)', { skip: skipNoPair }, () => {
  const fixtures = join(REPO, 'test', 'fixtures', 'models');
  let inputs: ScoreInput[];
  before(async () => {
    const dir = tempDir();
    const digits = await writeIdxPngs(MNIST_TEST_IMAGES, [0, 1, 2], dir, 'mnist');
    const white = join(dir, 'white.png');
    writeFileSync(white, await sharp({ create: { width: 28, height: 28, channels: 3, background: '#ffffff' } }).png().toBuffer());
    inputs = [{ path: digits[0] }, { path: white }, { path: digits[1] }, { path: digits[2] }];
  });

  const pipelines = [
    { name: 'in-process', options: { pipeline: 'overlapped', preprocessWorkers: 0 } },
    { name: 'overlapped with workers', options: { pipeline: 'overlapped', preprocessWorkers: 2 } },
    { name: 'sharded', options: { pipeline: 'sharded', shards: 2 }, shards: true },
  ] as const;

  for (const [which, edit, message] of [
    ['classifier', (m: Record<string, any>) => {
      m.classifier.path = 'nan-classifier.onnx';
      // The test models have no feature layer: the pair's feature detectors go (rule `pair` is then `all`).
      delete m.features;
      delete m.detectors;
    }, /^the classifier produced a non-finite output \(NaN for class 0\); the model output is invalid$/],
    ['VAE', (m: Record<string, any>) => {
      m.vae.path = 'nan-vae.onnx';
      delete m.vae.encoder;
      delete m.vae.decoder;
    }, /^the VAE produced a non-finite ELBO \(NaN\); the model output is invalid$/],
  ] as const) {
    test(`a ${which} that outputs NaN gives an error for those images, the same on every pipeline`, { timeout: 300_000 }, async () => {
      const dir = pairCopy(edit);
      cpSync(join(fixtures, which === 'classifier' ? 'nan-classifier.onnx' : 'nan-vae.onnx'), join(dir, which === 'classifier' ? 'nan-classifier.onnx' : 'nan-vae.onnx'));
      const seen: (string | null)[][] = [];
      for (const p of pipelines) {
        const engine = await OodEngine.create({ pair: dir, provider: 'cpu', rule: 'both', ...p.options });
        try {
          if ('shards' in p) assert.equal(await engine.startScoringShards(), true);
          const results = await scoreAllOf(engine, inputs);
          assert.deepEqual(results.map((r) => r.verdict === 'error'), [true, false, true, true], p.name);
          for (const r of results.filter((x) => x.verdict === 'error')) assert.match(r.error!, message, p.name);
          assert.ok(results.every((r) => r.verdict === 'error' || Number.isFinite(r.msp) && Number.isFinite(r.elbo)), p.name);
          seen.push(results.map((r) => r.error));
        } finally {
          await engine.dispose();
        }
      }
      assert.deepEqual(seen[1], seen[0]);
      assert.deepEqual(seen[2], seen[0]);
    });
  }
});

describe('one wording on every pipeline (item 9) and the per-image time limit (item 10)', { skip: skipNoPair }, () => {
  let dir: string;
  let inputs: ScoreInput[];
  const limit = process.env.OOD_LENS_IMAGE_TIME_LIMIT_MS;
  before(async () => {
    process.env.OOD_LENS_IMAGE_TIME_LIMIT_MS = '1500';
    dir = tempDir();
    const [digit] = await writeIdxPngs(MNIST_TEST_IMAGES, [0], dir, 'mnist');
    writeFileSync(join(dir, 'empty.png'), '');
    mkfifo(join(dir, 'pipe.png'));
    mkdirSync(join(dir, 'folder.png'));
    writeFileSync(join(dir, 'cut.png'), readFileSync(digit).subarray(0, 80));
    writeFileSync(join(dir, 'cut.jpg'), (await sharp(join(FIXTURES, 'cat.png')).jpeg().toBuffer()).subarray(0, 300));
    writeFileSync(join(dir, 'text.png'), 'not an image at all');
    writeFileSync(join(dir, 'bomb.svg'), nestedUseSvg());
    writeFileSync(join(dir, 'ok.svg'), '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="20" fill="white"/></svg>');
    inputs = ['empty.png', 'pipe.png', 'folder.png', 'cut.png', 'cut.jpg', 'missing.png', 'text.png', 'bomb.svg', 'ok.svg', 'mnist-00000.png'].map((f) => ({ path: join(dir, f) }));
    inputs.push({ path: join(dir, 'unlisted'), error: 'cannot list this folder: permission denied; its images were not scored' });
  });
  after(() => {
    if (limit === undefined) delete process.env.OOD_LENS_IMAGE_TIME_LIMIT_MS;
    else process.env.OOD_LENS_IMAGE_TIME_LIMIT_MS = limit;
  });

  test('an SVG of nested <use> elements is stopped at the time limit; the next SVG still renders', { timeout: 60_000 }, async () => {
    const spec = { width: 32, height: 32, channels: 1 as const, layout: 'NCHW' as const, padding: 2, background: '#000000' };
    const start = performance.now();
    await assert.rejects(toModelImage(readFileSync(join(dir, 'bomb.svg')), spec), /decoding took longer than the per-image time limit \(1\.5 s\) and was stopped/);
    const took = performance.now() - start;
    assert.ok(took < 6000, `took ${took} ms`);
    const ok = await toModelImage(readFileSync(join(dir, 'ok.svg')), spec);
    assert.ok(ok.pixels.some((v) => v > 128));
  });

  test('bad files get the same error on the in-process, worker and sharded pipelines', { timeout: 300_000 }, async () => {
    const seen: (string | null)[][] = [];
    for (const options of [{ pipeline: 'overlapped', preprocessWorkers: 0 }, { pipeline: 'overlapped', preprocessWorkers: 2 }, { pipeline: 'sharded', shards: 2 }] as const) {
      const engine = await OodEngine.create({ pair: MNIST_PAIR, provider: 'cpu', ...options });
      try {
        if (options.pipeline === 'sharded') assert.equal(await engine.startScoringShards(), true);
        seen.push((await scoreAllOf(engine, inputs)).map((r) => r.error));
      } finally {
        await engine.dispose();
      }
    }
    const [here] = seen;
    assert.deepEqual(here.map((e) => e === null), [false, false, false, false, false, false, false, false, true, true, false]);
    assert.match(here[0]!, /the file is empty/);
    assert.match(here[1]!, /is not a regular file \(a named pipe\)/);
    assert.match(here[2]!, /is a folder, not an image/);
    assert.match(here[5]!, /file not found/);
    assert.match(here[7]!, /per-image time limit/);
    assert.match(here[10]!, /cannot list this folder/);
    assert.deepEqual(seen[1], here);
    assert.deepEqual(seen[2], here);
  });
});

/** 2–3 KB of SVG whose nested <use> elements expand to 10^8 shapes (librsvg: ~20 s of CPU before its own limit). */
export function nestedUseSvg(): string {
  const lines = ['<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="2000" height="2000">', '<defs>', '<g id="l0"><rect width="1000" height="1000" fill="#888" stroke="black"/><circle cx="50" cy="50" r="40" fill="red" fill-opacity="0.5"/></g>'];
  for (let i = 1; i < 9; i++) lines.push(`<g id="l${i}">${Array.from({ length: 10 }, (_, j) => `<use xlink:href="#l${i - 1}" x="${j}" y="${j}"/>`).join('')}</g>`);
  lines.push('</defs><use xlink:href="#l8"/></svg>');
  return lines.join('\n');
}

