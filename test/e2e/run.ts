/**
 * `npm run test:e2e`: the packaged extension in a real VS Code workbench (code-server), driven through its UI
 * by Debian's Chromium with playwright-core. Builds the VSIX, installs it into fresh folders, writes a fixture
 * workspace and goes through every user flow, asserting what the panels, hovers and notifications say.
 * Screenshots: test-results/e2e-*.png. Ends with a line `N passed, M failed`; exits non-zero on failure.
 *
 * Environment:
 *   OOD_LENS_E2E_CACHE  setup cache (default ~/.cache/ood-lens-e2e)
 *   OOD_LENS_E2E_VSIX   use this VSIX instead of building one (npm run package)
 *   OOD_LENS_E2E_ONLY   comma-separated flow names to run (default: all)
 *   OOD_LENS_E2E_KEEP   keep the temp folder (fixture workspace, user data, logs)
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser, Frame } from 'playwright-core';
import { type Fixture, HOSTILE_KEYS, type ManifestTarget, writeFixture, writeHostileKeybindings, writeWorkspaceSettings } from './fixture';
import { CHROMIUM, cleanEnv, type E2eTools, ensureTools } from './setup';
import { type CodeServer, installVsix, sleep, startCodeServer, until, Workbench } from './workbench';

const REPO = resolve(__dirname, '..', '..');
const RESULTS = join(REPO, 'test-results');

interface Ctx {
  wb: Workbench;
  fx: Fixture;
  server: CodeServer;
  shot: (suffix?: string) => Promise<void>;
  note: (text: string) => void;
  /** Whether the walkthrough opened by itself when the extension first activated (trusted session). */
  firstRunWalkthrough?: boolean;
}

/** cold: a workspace with images only (nothing activates the extension before the first right-click). */
type Session = 'trusted' | 'restricted' | 'cold';

interface Flow {
  name: string;
  session: Session;
  run: (ctx: Ctx) => Promise<void>;
}

class Skip extends Error {}

function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

// ---------------------------------------------------------------------------------------------------------
// What the Inspect panel shows

interface InspectView {
  status: string;
  verdict: string | null;
  headline: string;
  sentence: string;
  prediction: string;
  softmaxInk: number;
  reconstruction: { src: string; width: number } | null;
  elbo: string;
  pValue: string;
  /** The headline p-value beside the verdict ("p = 0.00044"). */
  headlineP: string;
  pairBar: string;
}

async function readInspect(ctx: Ctx, fileName: string, timeout = 120_000): Promise<InspectView> {
  const sel = `section.row.status-done[data-path$="/${fileName}"], section.row.status-failed[data-path$="/${fileName}"]`;
  const frame = await ctx.wb.webviewWith(sel, timeout);
  const read = (f: Frame) =>
    f.evaluate((s) => {
      const row = document.querySelector(s) as HTMLElement;
      const text = (q: string) => (row.querySelector(q) as HTMLElement | null)?.innerText.trim() ?? '';
      const banner = row.querySelector('.verdict-banner') as HTMLElement | null;
      const canvas = row.querySelector('.softmax canvas') as HTMLCanvasElement | null;
      let ink = 0;
      if (canvas && canvas.width && canvas.height) {
        const d = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i]) ink++;
      }
      const recon = row.querySelector('figure.reconstruction img') as HTMLImageElement | null;
      return {
        status: row.className,
        verdict: banner?.dataset.verdict ?? null,
        headline: text('.verdict-headline'),
        sentence: text('p.verdict'),
        prediction: text('.prediction'),
        softmaxInk: ink,
        reconstruction: recon ? { src: recon.src.slice(0, 22), width: recon.naturalWidth } : null,
        elbo: text('.elbo'),
        pValue: text('.p-value'),
        headlineP: text('.verdict-p'),
        pairBar: (document.getElementById('pair-bar')?.innerText ?? '').trim(),
      };
    }, sel);
  // Charts are drawn just after the row is inserted, images decode asynchronously: give them a moment.
  let view = await read(frame);
  if (view.verdict && view.verdict !== 'error') {
    view = await until('the softmax chart and the reconstruction to be drawn', async () => {
      const v = await read(frame);
      return v.softmaxInk > 0 && (v.reconstruction?.width ?? 0) > 0 && v;
    }, 15_000).catch(() => read(frame));
  }
  return view;
}

function assertScored(v: InspectView, expected: 'in-distribution' | 'out-of-distribution', label?: string): string {
  const show = JSON.stringify(v);
  assert(v.verdict === expected, `verdict ${v.verdict}, expected ${expected}: ${show}`);
  assert(v.headline.toLowerCase() === expected, `headline "${v.headline}", expected "${expected}"`);
  assert(/^Predicted \S+ · MSP [<>]?\d/.test(v.prediction), `prediction text "${v.prediction}"`);
  if (label !== undefined) assert(v.prediction.startsWith(`Predicted ${label} `), `prediction "${v.prediction}", expected the label ${label}`);
  assert(v.softmaxInk > 100, `the softmax chart canvas is blank (${v.softmaxInk} inked pixels)`);
  assert(v.reconstruction && v.reconstruction.src.startsWith('data:image/png') && v.reconstruction.width > 0, `no reconstruction image: ${JSON.stringify(v.reconstruction)}`);
  assert(/ELBO\s+[−-]?\d/.test(v.elbo), `ELBO text "${v.elbo}"`);
  assert(/p = /.test(v.pValue), `p-value text "${v.pValue}"`);
  return `${v.headline}; ${v.prediction}; ${v.elbo.split('\n')[0]}; ${v.pValue}`;
}

async function checkFromExplorer(ctx: Ctx, name: string, expected: 'in-distribution' | 'out-of-distribution', label?: string): Promise<InspectView> {
  await ctx.wb.explorerContext(name, 'Check out-of-distribution');
  const v = await readInspect(ctx, name);
  ctx.note(assertScored(v, expected, label));
  return v;
}

// ---------------------------------------------------------------------------------------------------------
// Manifests

/** A screenshot of the editor area around a visible hover (for the README and the walkthrough). */
async function shootHover(ctx: Ctx, name: string): Promise<void> {
  const hover = await ctx.wb.page.locator('.monaco-hover:visible').first().boundingBox();
  const editor = await ctx.wb.page.locator('.part.editor').boundingBox();
  if (!hover || !editor) return;
  const x = Math.max(editor.x, hover.x - 240);
  const y = editor.y;
  const width = Math.min(editor.x + editor.width - x, hover.width + 520);
  const height = Math.min(editor.height, hover.y + hover.height - y + 40);
  await ctx.wb.page.screenshot({ path: join(RESULTS, `e2e-shot-${name}.png`), clip: { x, y, width, height } });
}

async function hoverAt(ctx: Ctx, t: ManifestTarget): Promise<string> {
  await ctx.wb.goTo(t.line, t.column);
  await ctx.wb.command('Show or Focus Hover');
  return until(`the hover on ${t.file}:${t.line}:${t.column} to show scores`, async () => {
    const hovers = await ctx.wb.page.locator('.monaco-hover:visible').allInnerTexts();
    return hovers.find((h) => h.includes('OOD Lens') && /ELBO/.test(h));
  }, 60_000);
}

interface HoverView {
  text: string;
  /** Every link target in the hover (VS Code keeps a link's target in data-href). */
  links: string[];
}

/** Hovers a manifest position and returns the OOD Lens hover once `ready` accepts its text. */
async function hoverView(ctx: Ctx, t: ManifestTarget, what: string, ready: (text: string) => boolean): Promise<HoverView> {
  await ctx.wb.goTo(t.line, t.column);
  await ctx.wb.command('Show or Focus Hover');
  return until(`the hover on ${t.file}:${t.line}:${t.column} (${what})`, async () => {
    // MarkdownString.appendText writes spaces as &nbsp;: compare with plain spaces.
    const texts = (await ctx.wb.page.locator('.monaco-hover:visible').allInnerTexts()).map((t) => t.replace(/\u00a0/g, ' '));
    const text = texts.find((h) => h.includes('OOD Lens') && ready(h));
    if (!text) return undefined;
    // Every link in any hover element (stricter than the visible one only).
    const links = await ctx.wb.page.locator('.monaco-hover a').evaluateAll((els) => els.map((a) => a.getAttribute('data-href') || a.getAttribute('href') || ''));
    return { text, links };
  }, 60_000);
}

async function manifestFlow(ctx: Ctx, which: 'csv' | 'jsonl'): Promise<void> {
  const { wb, fx } = ctx;
  const targets = fx[which];
  await wb.quickOpen(targets.mnist.file);
  await sleep(1000);

  const inHover = await hoverAt(ctx, targets.mnist);
  assert(/In-distribution/.test(inHover) && /MSP (>)?\d/.test(inHover) && /ELBO [−-]?\d/.test(inHover), `hover on ${targets.mnist.path}: ${inHover}`);
  ctx.note(`hover ${targets.mnist.path}: ${inHover.replace(/\s+/g, ' ').slice(0, 160)}`);
  await ctx.shot('hover-in');
  await wb.page.keyboard.press('Escape');

  const oodHover = await hoverAt(ctx, targets.fashion);
  assert(/Out-of-distribution/.test(oodHover) && /MSP (>)?\d/.test(oodHover) && /ELBO [−-]?\d/.test(oodHover), `hover on ${targets.fashion.path}: ${oodHover}`);
  ctx.note(`hover ${targets.fashion.path}: ${oodHover.replace(/\s+/g, ' ').slice(0, 160)}`);
  await ctx.shot('hover-ood');
  await wb.page.keyboard.press('Escape');

  await wb.command('OOD Lens: Score Manifest');
  const lens = await until('the CodeLens summary after scoring', async () => {
    const texts = await wb.page.locator('.monaco-editor .codelens-decoration').allInnerTexts();
    return texts.find((t) => /6 images · 3 out-of-distribution/.test(t));
  }, 90_000);
  ctx.note(`CodeLens: ${lens.replace(/\s+/g, ' ')}`);
  const after = await until('out-of-distribution decorations on the FashionMNIST rows', async () => {
    const contents = await wb.page.evaluate(() =>
      Array.from(document.querySelectorAll('.monaco-editor .view-lines span')).map((e) => getComputedStyle(e, '::after').content).filter((c) => c && c !== 'none' && c !== 'normal'),
    );
    const ood = contents.filter((c) => c.includes('OOD · p ='));
    return ood.length >= 3 && ood;
  }, 30_000);
  ctx.note(`decorations: ${after.length} OOD rows, e.g. ${after[0]}`);
}

// ---------------------------------------------------------------------------------------------------------
// Create Pair

/** Clicks the quick-pick row that contains `text` (waits for it). */
async function pickRow(ctx: Ctx, text: string, timeout = 30_000): Promise<void> {
  const row = ctx.wb.page.locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: text }).first();
  await row.waitFor({ timeout });
  await row.click();
}

/** Answers an open dialog (code-server's simple file dialog: a path in the quick input, then accept). */
async function answerOpenDialog(ctx: Ctx, path: string, openLabel: string, dialogTitle: string): Promise<void> {
  const { page } = ctx.wb;
  const input = page.locator('.quick-input-widget input.input');
  await input.waitFor({ state: 'visible', timeout: 20_000 });
  // The dialog fills its input with its start folder as it opens: type the path until it stays.
  for (let i = 0; i < 5; i++) {
    await sleep(300);
    await input.fill(path);
    await sleep(700);
    if ((await input.inputValue().catch(() => '')).replace(/\/$/, '') === path.replace(/\/$/, '')) break;
  }
  await page.keyboard.press('Enter');
  // Enter on a folder's path may only open that folder in the dialog: then accept with the dialog's OK button.
  for (let i = 0; i < 3; i++) {
    await sleep(800);
    const title = (await page.locator('.quick-input-widget .quick-input-title').innerText().catch(() => '')) ?? '';
    if (!(await input.isVisible().catch(() => false)) || !title.includes(dialogTitle)) return;
    const ok = page.locator('.quick-input-widget .monaco-button', { hasText: openLabel }).first();
    if (await ok.isVisible().catch(() => false)) await ok.click();
    else await page.keyboard.press('Enter');
  }
}

async function watchNotifications(ctx: Ctx): Promise<() => Promise<string[]>> {
  await ctx.wb.page.evaluate(() => {
    const w = window as unknown as { __oodNotes: string[]; __oodObs?: MutationObserver };
    w.__oodNotes = [];
    w.__oodObs?.disconnect();
    w.__oodObs = new MutationObserver(() => {
      for (const e of Array.from(document.querySelectorAll('.notification-list-item'))) {
        const t = (e as HTMLElement).innerText;
        if (t && !w.__oodNotes.includes(t)) w.__oodNotes.push(t);
      }
    });
    w.__oodObs.observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  return () =>
    ctx.wb.page.evaluate(() => {
      const w = window as unknown as { __oodNotes: string[]; __oodObs?: MutationObserver };
      w.__oodObs?.disconnect();
      return w.__oodNotes;
    });
}

async function createPairFlow(ctx: Ctx): Promise<void> {
  const { wb, fx } = ctx;
  const cp = fx.createPair;
  const seen = await watchNotifications(ctx);
  try {
    await wb.explorerContext(cp.model, 'Create OOD pair from this model');

    // 2. The images first (their size is checked against the model's), then what was read from the model.
    await pickRow(ctx, 'A folder of images', 90_000);
    await answerOpenDialog(ctx, cp.data, 'Use Images', 'folder of in-distribution images');
    const continueRow = wb.page.locator('.quick-input-list .monaco-list-row', { hasText: 'Continue' }).first();
    await continueRow.waitFor({ timeout: 90_000 });
    const facts = (await wb.page.locator('.quick-input-list .monaco-list-row').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    ctx.note(`model facts: ${facts.join(' | ')}`);
    for (const want of ['input "image" [?, 1, 32, 32]', 'output "logits" [?, 10]', 'image 32×32 grey, NCHW', '10 classes from "logits"', 'your images: 28×28']) {
      assert(facts.some((f) => f.includes(want)), `the facts step does not show ${want}: ${JSON.stringify(facts)}`);
    }
    await ctx.shot('facts');
    await continueRow.click();
    // 28×28 images for a 32×32 input: padded (as the built-in classifier was trained) or stretched.
    await pickRow(ctx, 'Padded: 28×28 centred in 32×32');

    // 3–7. Scaling, class names, the preview, VAE, folder, and whether to use it.
    await pickRow(ctx, 'x/255 — PyTorch');
    await pickRow(ctx, 'Class indices 0…9');
    const preview = await wb.webviewWith('#model-input', 60_000);
    ctx.note(`preview: ${(await preview.evaluate(() => (document.getElementById('prediction') as HTMLElement).innerText)).trim()}`);
    await pickRow(ctx, 'Looks right: continue');
    await pickRow(ctx, 'No VAE');
    const folderInput = wb.page.locator('.quick-input-widget input.input');
    await until('the pair-folder step', async () => (await wb.page.locator('.quick-input-widget .quick-input-title').innerText().catch(() => '')).includes('where to write the pair') && (await folderInput.inputValue()) !== '', 20_000);
    const suggested = await folderInput.inputValue();
    assert(suggested === `pairs/${cp.pairName}`, `suggested pair folder "${suggested}", expected pairs/${cp.pairName}`);
    await ctx.shot('folder');
    await wb.page.keyboard.press('Enter');
    await pickRow(ctx, 'Use it in this workspace');

    // The result panel: held-out false alarms and a drawn histogram.
    const frame = await wb.webviewWith('#false-alarms', 240_000);
    const view = await until('the histogram to be drawn', async () => {
      const v = await frame.evaluate(() => {
        const canvas = document.querySelector('section.histogram canvas') as HTMLCanvasElement | null;
        let ink = 0;
        if (canvas && canvas.width && canvas.height) {
          const d = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
          for (let i = 3; i < d.length; i += 4) if (d[i]) ink++;
        }
        return {
          falseAlarms: (document.getElementById('false-alarms') as HTMLElement).innerText,
          title: (document.querySelector('h1') as HTMLElement | null)?.innerText ?? '',
          selected: !!document.querySelector('.meta .selected'),
          histograms: Array.from(document.querySelectorAll('section.histogram')).map((h) => (h as HTMLElement).dataset.score),
          ink,
        };
      });
      return v.ink > 200 && v;
    }, 30_000);
    ctx.note(`panel: ${view.title}; ${view.falseAlarms}; histograms ${view.histograms.join(', ')} (${view.ink} inked pixels)`);
    await ctx.shot('result');
    // The picture of the walkthrough's "Bring your own model" step: the editor group that holds the result panel.
    await wb.page.locator('.editor-group-container', { has: wb.page.locator('.tab.active[aria-label^="OOD pair"]') }).first().screenshot({ path: join(RESULTS, 'e2e-shot-create-pair.png') }).catch((err: unknown) => ctx.note(`no create-pair screenshot: ${err}`));
    const checkImages = Math.round(cp.images * 0.1);
    const m = new RegExp(`^Held-out false alarms: (\\d+) of ${checkImages} in-distribution images \\((\\d+\\.\\d+)%\\) at α = 0\\.01$`).exec(view.falseAlarms);
    assert(m, `false-alarm figure "${view.falseAlarms}"`);
    assert(Number(m[1]) <= checkImages && Math.abs((100 * Number(m[1])) / checkImages - Number(m[2])) < 0.01, `false-alarm figure is inconsistent: ${view.falseAlarms}`);
    assert(view.histograms.includes('msp'), `no MSP histogram: ${JSON.stringify(view.histograms)}`);
    assert(view.selected, 'the panel does not say the pair was selected');

    // The pair was written and selected, as the pair picker does it.
    const manifest = join(fx.root, 'pairs', cp.pairName, 'ood-pair.json');
    assert(existsSync(manifest), `${manifest} was not written`);
    const settings = JSON.parse(readFileSync(join(fx.root, '.vscode', 'settings.json'), 'utf8')) as Record<string, unknown>;
    assert(settings['oodLens.pair'] === `pairs/${cp.pairName}`, `oodLens.pair is ${JSON.stringify(settings['oodLens.pair'])}, expected pairs/${cp.pairName}`);
    const status = await until('the status bar to show the new pair', async () => {
      const t = await wb.page.locator('.statusbar-item[id="ood-lens.ood-lens.oodLens.pair"]').innerText();
      return t.includes(cp.pairName) && t;
    }, 60_000);
    ctx.note(`status bar: ${status.replace(/\s+/g, ' ')}`);
    const notes = await seen();
    const progress = notes.find((n) => n.includes(`creating pair ${cp.pairName}`));
    assert(progress, `no progress notification "OOD Lens: creating pair ${cp.pairName}" (seen: ${JSON.stringify(notes).slice(0, 300)})`);
    ctx.note(`progress: ${progress.replace(/\s+/g, ' ').slice(0, 140)}`);

    // An image now scores under the new pair (classifier-only: no reconstruction, so read the verdict only).
    await wb.closeEverything();
  } finally {
    writeWorkspaceSettings(fx.root, {});
    await sleep(2000);
  }
}

/** Create Pair's steps from the Explorer up to the VAE step, for the built-in classifier copy and its digits. */
async function createPairUpToVae(ctx: Ctx, data: 'dialog' | 'last'): Promise<string> {
  const { wb, fx } = ctx;
  const cp = fx.createPair;
  await wb.explorerContext(cp.model, 'Create OOD pair from this model');
  if (data === 'last') await pickRow(ctx, 'The same images as last time', 90_000);
  else {
    await pickRow(ctx, 'A folder of images', 90_000);
    await answerOpenDialog(ctx, cp.data, 'Use Images', 'folder of in-distribution images');
  }
  const continueRow = wb.page.locator('.quick-input-list .monaco-list-row', { hasText: 'Continue' }).first();
  await continueRow.waitFor({ timeout: 90_000 });
  await continueRow.click();
  await pickRow(ctx, 'Padded: 28×28 centred in 32×32');
  await pickRow(ctx, 'x/255 — PyTorch');
  await pickRow(ctx, 'Class indices 0…9');
  await wb.webviewWith('#model-input', 60_000);
  await pickRow(ctx, 'Looks right: continue');
  // The density step offers the VAE with its estimated training time.
  const row = wb.page.locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: 'Train a VAE on my images' }).first();
  await row.waitFor({ timeout: 30_000 });
  const offer = (await row.innerText()).replace(/\s+/g, ' ').trim();
  await row.click();
  return offer;
}

/** Answers the folder step with `folder` (relative to the workspace) and writes the pair folder only. */
async function answerFolderKeepSettings(ctx: Ctx, folder: string): Promise<void> {
  await inputStep(ctx, 'where to write the pair', (s) => s.value !== '');
  await ctx.wb.page.locator('.quick-input-widget input.input').fill(folder);
  await inputStep(ctx, 'where to write the pair', (s) => s.value === folder);
  await ctx.wb.page.keyboard.press('Enter');
  await pickRow(ctx, 'Only write the pair folder');
}

/**
 * Issue 21: Create Pair with the VAE step. The step offers "Train a VAE on my images" with its estimated time;
 * while it trains, the progress notification says the epoch, the loss and the time left; Cancel ends it with
 * nothing written and says so. Run again to the end (1,000 28×28 digits): the result panel shows the VAE's
 * training record and held-out images beside its reconstructions, and the pair records the training.
 */
async function createPairVaeFlow(ctx: Ctx): Promise<void> {
  const { wb, fx } = ctx;
  const folder = 'pairs/my-classifier-vae';
  const pairFolder = join(fx.root, folder);
  const seen = await watchNotifications(ctx);
  // ---- First run: cancelled while the VAE trains ----
  const offer = await createPairUpToVae(ctx, 'dialog');
  ctx.note(`VAE step: ${offer}`);
  assert(/an MLP VAE on 32×32 grey images, trained by fit: about \d+ min for 2,000 images, \d+ min for 20,000/.test(offer), `the VAE step does not estimate the training time: ${offer}`);
  await answerFolderKeepSettings(ctx, folder);
  const training = /training the VAE: epoch (\d+) of (\d+), loss (\d+\.\d), about \d+ (s|min) left/;
  const progress = await wb.waitNotification('the VAE training progress (epoch, loss, time left)', (t) => training.test(t), 240_000);
  ctx.note(`progress: ${progress.replace(/\s+/g, ' ')}`);
  await ctx.shot('vae-progress');
  const cancel = wb.page.locator('.notification-list-item', { hasText: 'training the VAE' }).locator('.monaco-button', { hasText: 'Cancel' }).first();
  await cancel.click();
  const cancelled = await wb.waitNotification('that creating the pair was cancelled', (t) => /creating pair my-classifier-vae was cancelled; nothing was written/.test(t), 60_000);
  ctx.note(`cancelled: ${cancelled}`);
  await ctx.shot('vae-cancelled');
  await sleep(1000);
  assert(!existsSync(join(pairFolder, 'ood-pair.json')), `the cancelled fit wrote ${pairFolder}/ood-pair.json`);
  assert(!existsSync(pairFolder), `the cancelled fit left ${pairFolder} behind: ${existsSync(pairFolder) ? readdirSync(pairFolder).join(', ') : ''}`);
  await wb.closeEverything();

  // ---- Second run, to the end ----
  await createPairUpToVae(ctx, 'last');
  await answerFolderKeepSettings(ctx, folder);
  const frame = await wb.webviewWith('#vae-training', 540_000);
  const view = await until('the reconstructions to be decoded', async () => {
    const v = await frame.evaluate(() => {
      // Bright pixels in each reconstruction as drawn (a digit's strokes), and whether it is the input copied.
      const inked = (img: HTMLImageElement) => {
        const c = document.createElement('canvas');
        c.width = img.naturalWidth;
        c.height = img.naturalHeight;
        if (!c.width) return 0;
        const g = c.getContext('2d')!;
        g.drawImage(img, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 64) n++;
        return n;
      };
      const samples = Array.from(document.querySelectorAll('figure.vae-sample')).map((f) => {
        const input = f.querySelector('img.vae-input') as HTMLImageElement;
        const recon = f.querySelector('img.vae-reconstruction') as HTMLImageElement;
        return { src: recon.src.slice(0, 22), width: recon.naturalWidth, height: recon.naturalHeight, ink: inked(recon), same: recon.src === input.src, caption: (f.querySelector('figcaption') as HTMLElement).innerText };
      });
      return {
        training: (document.getElementById('vae-training') as HTMLElement).innerText,
        loss: (document.getElementById('vae-loss-curve') as HTMLElement | null)?.innerText ?? '',
        falseAlarms: (document.getElementById('false-alarms') as HTMLElement).innerText,
        split: Array.from(document.querySelectorAll('.figure p.muted')).map((p) => (p as HTMLElement).innerText).find((t) => t.startsWith('Split')) ?? '',
        meta: (document.querySelector('.meta') as HTMLElement).innerText,
        samples,
      };
    });
    return v.samples.length > 0 && v.samples.every((s) => s.width > 0) && v;
  }, 30_000);
  ctx.note(`panel: ${view.falseAlarms}; ${view.training}`);
  ctx.note(`loss curve: ${view.loss.slice(0, 160)}; reconstructions: ${view.samples.map((s) => `${s.caption} ${s.width}×${s.height}, ${s.ink} bright px`).join('; ')}`);
  await wb.page.locator('#vae').first().scrollIntoViewIfNeeded().catch(() => undefined);
  await frame.evaluate(() => document.getElementById('vae')?.scrollIntoView()).catch(() => undefined);
  await ctx.shot('vae-result');
  const record = /^VAE trained by fit on (\d+) images: (\d+) epochs in .+ \(\d+ images\/s\), loss [\d.]+ → [\d.]+ nats; held-out ELBO [−-][\d.]+ nats/.exec(view.training);
  assert(record, `the VAE's training record: "${view.training}"`);
  assert(/Classifier \+ VAE pair/.test(view.split), `the split line: ${view.split}`);
  // "Only write the pair folder" was chosen: the panel says so, not that loading failed.
  assert(/not selected, as you chose/.test(view.meta), `the panel's pair line: ${view.meta}`);
  assert(view.loss.split('·').length === Number(record[2]), `the loss curve has not one value per epoch (${record[2]}): ${view.loss}`);
  assert(view.samples.length === 4, `${view.samples.length} reconstructions shown, expected 4`);
  for (const s of view.samples) {
    assert(s.src.startsWith('data:image/png') && s.width === 32 && s.height === 32, `a reconstruction is not a 32×32 PNG: ${JSON.stringify(s)}`);
    assert(s.ink > 10 && !s.same, `a reconstruction is blank or the input copied: ${JSON.stringify(s)}`);
    assert(/ELBO [−-]\d/.test(s.caption), `caption "${s.caption}"`);
  }
  // The pair on disk records the same training.
  const manifest = JSON.parse(readFileSync(join(pairFolder, 'ood-pair.json'), 'utf8')) as { vae?: { training?: { epochs: number; trainImages: number } } };
  assert(manifest.vae?.training?.epochs === Number(record[2]) && manifest.vae.training.trainImages === Number(record[1]), `ood-pair.json's VAE record: ${JSON.stringify(manifest.vae?.training)}`);
  const notes = await seen();
  assert(notes.some((n) => training.test(n)), 'no VAE progress seen');
  await wb.closeEverything();
}

/** The quick input as the user sees it: title, typed value, validation message, focused row. */
async function quickInputState(ctx: Ctx): Promise<{ title: string; value: string; message: string; focused: string }> {
  const q = ctx.wb.page.locator('.quick-input-widget');
  // Elements a step does not have (the list of an input box) answer '' at once instead of waiting.
  const text = (sel: string) => q.locator(sel).first().innerText({ timeout: 300 }).catch(() => '');
  return {
    title: await text('.quick-input-title'),
    value: await q.locator('input.input').inputValue({ timeout: 300 }).catch(() => ''),
    // The prompt or the validation message (shown under the input box, or in place of the prompt).
    message: [await ctx.wb.page.locator('.monaco-inputbox-message:visible').first().innerText({ timeout: 500 }).catch(() => ''), await text('.quick-input-message')].join(' ').replace(/\s+/g, ' ').trim(),
    focused: (await text('.quick-input-list .monaco-list-row.focused')).replace(/\s+/g, ' ').trim(),
  };
}

/** Waits for an input step whose title contains `title` and returns its state once `ready` accepts it. */
async function inputStep(ctx: Ctx, title: string, ready: (s: Awaited<ReturnType<typeof quickInputState>>) => boolean = () => true, timeout = 60_000) {
  return until(`the step "${title}"`, async () => {
    const s = await quickInputState(ctx);
    return s.title.includes(title) && ready(s) && s;
  }, timeout);
}

/** Types into the open input box and waits until its validation message satisfies `ready`. */
async function typeInto(ctx: Ctx, text: string, what: string, ready: (message: string) => boolean): Promise<string> {
  await ctx.wb.page.locator('.quick-input-widget input.input').fill(text);
  return until(what, async () => {
    const { message } = await quickInputState(ctx);
    return ready(message) && (message || ' ');
  }, 15_000);
}

/** A button of the modal dialog that is open now. */
async function dialogButton(ctx: Ctx, label: string): Promise<string> {
  const box = ctx.wb.page.locator('.monaco-dialog-box').first();
  await box.waitFor({ timeout: 20_000 });
  const text = (await box.innerText()).replace(/\s+/g, ' ');
  await box.locator('.monaco-button', { hasText: label }).first().click();
  return text;
}

/**
 * Issue 25: Create Pair with a non-square classifier (text lines, [?, 3, ?, ?], 192×48) as a newcomer meets it.
 * First try: on too few images — the size is asked as width × height and defaults to the images', a height ×
 * width answer is questioned, a mean of the wrong length is refused at its prompt, the preview shows one line as
 * the model sees it; the fit is refused and leaves nothing. Try Again keeps every answer; the pair is made.
 * Then the classifier-only pair's Inspect panel and folder report (no VAE elements, the KNN test), and Select
 * Pair… with each pair's facts and the active one highlighted.
 */
async function createPairNonSquareFlow(ctx: Ctx): Promise<void> {
  const { wb, fx } = ctx;
  const tl = fx.textLine;
  const pairFolder = join(fx.root, 'pairs', tl.pairName);
  const shoot = (name: string) => wb.page.screenshot({ path: join(RESULTS, `e2e-shot-i25-${name}.png`) });
  try {
    // ---- First try, on lines-few/ (30 lines: too few to calibrate) ----
    await wb.explorerContext(tl.model, 'Create OOD pair from this model');
    await pickRow(ctx, 'A folder of images', 90_000);
    await answerOpenDialog(ctx, tl.few, 'Use Images', 'folder of in-distribution images');
    const size = await inputStep(ctx, 'width × height', (s) => s.value !== '', 90_000);
    const prompt = (await wb.page.locator('.quick-input-widget .quick-input-message').first().innerText().catch(() => '')).replace(/\s+/g, ' ');
    ctx.note(`size step: "${size.title}", value ${size.value}; ${prompt.slice(0, 220)}`);
    assert(size.value === '192x48', `the size defaults to ${size.value}, expected the images' 192x48 (width × height)`);
    assert(/\[\?, 3, \?, \?\]/.test(prompt) && /width free, height free/.test(prompt) && /192×48/.test(prompt), `the size prompt does not name the model's dims and the images' size: ${prompt}`);
    await shoot('size-default');
    // A README's "48×192" (height × width) typed as width × height: questioned as it is typed…
    const conflict = await typeInto(ctx, '48x192', 'the size to be questioned', (m) => /squashed/.test(m));
    ctx.note(`48x192: ${conflict}`);
    assert(/Did you mean 192×48/.test(conflict), `the contradicting size is not questioned with the fix: ${conflict}`);
    await shoot('size-questioned');
    // …and once more when accepted: the dialog offers the swapped size.
    await wb.page.keyboard.press('Enter');
    ctx.note(`dialog: ${(await dialogButton(ctx, 'Use 192×48')).slice(0, 200)}`);
    const continueRow = wb.page.locator('.quick-input-list .monaco-list-row', { hasText: 'Continue' }).first();
    await continueRow.waitFor({ timeout: 90_000 });
    const facts = (await wb.page.locator('.quick-input-list .monaco-list-row').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
    ctx.note(`facts: ${facts.join(' | ')}`);
    assert(facts.some((f) => f.includes('image 192×48 RGB, NCHW')), `the model was not read at 192×48: ${JSON.stringify(facts)}`);
    await continueRow.click();
    // Custom scaling: a mean of two values for an RGB model is refused at its prompt.
    await pickRow(ctx, 'Custom…');
    await inputStep(ctx, 'custom input scaling');
    const badMean = await typeInto(ctx, 'range=0,1 mean=0.5,0.5 std=0.5', 'the bad mean to be refused', (m) => /mean:/.test(m));
    ctx.note(`mean=0.5,0.5: ${badMean}`);
    assert(/3 channels/.test(badMean) && /one value for all three, or three/.test(badMean), `the bad mean's message: ${badMean}`);
    await shoot('bad-mean');
    await wb.page.keyboard.press('Enter');
    await sleep(800);
    assert((await quickInputState(ctx)).title.includes('custom input scaling'), 'Enter on a refused mean went on to the next step');
    await typeInto(ctx, 'range=0,1 mean=0.5 std=0.5', 'the mean to be accepted', (m) => !/lies outside|give one value for all three|not a list of numbers|must be above 0/.test(m));
    await wb.page.keyboard.press('Enter');
    await pickRow(ctx, 'Type the class names');
    await inputStep(ctx, 'class names');
    await wb.page.locator('.quick-input-widget input.input').fill(tl.labels.join(', '));
    await wb.page.keyboard.press('Enter');
    // The preview: one line as the model sees it, before anything is written.
    const preview = await wb.webviewWith('#model-input', 90_000);
    const shown = await until('the preview picture', async () => {
      const v = await preview.evaluate(() => {
        const img = document.getElementById('model-input') as HTMLImageElement;
        return { w: img.naturalWidth, h: img.naturalHeight, facts: (document.getElementById('input-facts') as HTMLElement).innerText, prediction: (document.getElementById('prediction') as HTMLElement).innerText, warning: document.getElementById('size-warning')?.innerText ?? '' };
      });
      return v.w > 0 && v;
    }, 20_000);
    ctx.note(`preview: ${shown.w}×${shown.h}; ${shown.facts}; ${shown.prediction}`);
    assert(shown.w === 192 && shown.h === 48, `the preview shows a ${shown.w}×${shown.h} input, expected 192×48`);
    assert(/\(x\/255 − 0\.5\)\/0\.5/.test(shown.facts) && /Predicted (0°|180°) \(/.test(shown.prediction) && !shown.warning, `the preview: ${JSON.stringify(shown)}`);
    await shoot('preview');
    await pickRow(ctx, 'Looks right: continue');
    await pickRow(ctx, 'No VAE');
    await inputStep(ctx, 'where to write the pair', (s) => s.value !== '');
    assert((await quickInputState(ctx)).value === `pairs/${tl.pairName}`, 'unexpected pair folder');
    await wb.page.keyboard.press('Enter');
    await pickRow(ctx, 'Use it in this workspace');
    const failure = await wb.waitNotification('the fit to be refused', (t) => /the pair was not created/.test(t), 120_000);
    ctx.note(`first try: ${failure.replace(/\s+/g, ' ').slice(0, 200)}`);
    await shoot('fit-refused');
    assert(!existsSync(pairFolder), `the failed fit left ${pairFolder} behind`);
    assert(!existsSync(join(fx.root, '.vscode', 'settings.json')) || !readFileSync(join(fx.root, '.vscode', 'settings.json'), 'utf8').includes('oodLens.pair'), 'the failed fit wrote oodLens.pair');

    // ---- Try Again: every answer is remembered ----
    await wb.page.locator('.notification-list-item .monaco-button', { hasText: 'Try Again' }).first().click();
    await pickRow(ctx, 'A folder of images', 90_000);
    await answerOpenDialog(ctx, tl.data, 'Use Images', 'folder of in-distribution images');
    const again = await inputStep(ctx, 'width × height', (s) => s.value !== '', 90_000);
    assert(again.value === '192x48', `Try Again: the size is ${again.value}, expected the answer 192x48`);
    await wb.page.keyboard.press('Enter');
    await continueRow.waitFor({ timeout: 90_000 });
    await continueRow.click();
    const scaling = await inputStep(ctx, 'input scaling', (s) => s.focused !== '');
    ctx.note(`Try Again: scaling step highlights "${scaling.focused}"`);
    assert(/Custom/.test(scaling.focused), `Try Again: the scaling step highlights "${scaling.focused}", expected the answer Custom…`);
    await shoot('retry-scaling');
    await wb.page.keyboard.press('Enter');
    const custom = await inputStep(ctx, 'custom input scaling', (s) => s.value !== '');
    assert(custom.value === 'range=0,1 mean=0.5 std=0.5', `Try Again: the custom scaling is "${custom.value}"`);
    await wb.page.keyboard.press('Enter');
    await inputStep(ctx, 'class names', (s) => /Type the class names/.test(s.focused));
    await wb.page.keyboard.press('Enter');
    const names = await inputStep(ctx, 'class names', (s) => s.value !== '');
    assert(names.value === tl.labels.join(', '), `Try Again: the class names are "${names.value}"`);
    await wb.page.keyboard.press('Enter');
    await wb.webviewWith('#model-input', 90_000);
    await pickRow(ctx, 'Looks right: continue');
    await inputStep(ctx, 'density model', (s) => /No VAE/.test(s.focused));
    await wb.page.keyboard.press('Enter');
    await inputStep(ctx, 'where to write the pair', (s) => s.value !== '');
    await wb.page.keyboard.press('Enter');
    await inputStep(ctx, 'after fitting', (s) => /Use it/.test(s.focused));
    await wb.page.keyboard.press('Enter');

    // The result panel: shares said once, the confidence test flagged as nearly blind on two classes.
    const frame = await wb.webviewWith('#false-alarms', 300_000);
    const result = await until('the result histograms', async () => {
      const v = await frame.evaluate(() => ({
        shares: document.getElementById('shares')?.innerText ?? '',
        blind: document.getElementById('blind-test')?.innerText ?? '',
        histograms: Array.from(document.querySelectorAll('section.histogram')).map((h) => (h as HTMLElement).dataset.score),
        meta: (document.querySelector('.meta') as HTMLElement | null)?.innerText ?? '',
      }));
      return v.histograms.length > 0 && v;
    }, 30_000);
    ctx.note(`result: ${result.shares} | ${result.blind.slice(0, 120)} | histograms ${result.histograms.join(', ')} | ${result.meta}`);
    // fit chooses the shares on synthetic probes (issue 21): each test that decides is named once with its share.
    assert(/KNN distance 0\.\d+/.test(result.shares) && /confidence 0\.\d+/.test(result.shares), `shares: ${result.shares}`);
    assert(/can hardly fire|cannot fire/.test(result.blind), `no warning that the confidence test can hardly fire: ${result.blind}`);
    assert(!result.histograms.includes('elbo') && result.histograms.includes('knn'), `histograms: ${result.histograms}`);
    assert(!result.meta.includes(fx.root), `the result panel shows a machine path: ${result.meta}`);
    await shoot('fit-result');
    const settings = JSON.parse(readFileSync(join(fx.root, '.vscode', 'settings.json'), 'utf8')) as Record<string, unknown>;
    assert(settings['oodLens.pair'] === `pairs/${tl.pairName}`, `oodLens.pair is ${JSON.stringify(settings['oodLens.pair'])}`);
    await until('the status bar to show the new pair', async () => (await wb.page.locator('.statusbar-item[id="ood-lens.ood-lens.oodLens.pair"]').innerText()).includes(tl.pairName), 60_000);
    await wb.closeEverything();

    // ---- The classifier-only pair's Inspect panel: no VAE elements; the KNN test ----
    // A FashionMNIST ankle boot under the text-line pair (a weak pair: its verdict is not asserted, its layout is).
    const line = fx.fashion.name;
    await wb.explorerContext(line, 'Check out-of-distribution');
    const inspect = await wb.webviewWith(`section.row.status-done[data-path$="/${line}"]`, 120_000);
    const panel = await until('the KNN chart', async () => {
      const v = await inspect.evaluate((sel) => {
        const row = document.querySelector(sel) as HTMLElement;
        const canvas = row.querySelector('.knn-histogram canvas') as HTMLCanvasElement | null;
        let ink = 0;
        if (canvas && canvas.width) {
          const d = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
          for (let i = 3; i < d.length; i += 4) if (d[i]) ink++;
        }
        return {
          figures: Array.from(row.querySelectorAll('figure')).map((f) => f.className),
          elbo: !!row.querySelector('.elbo, .elbo-histogram, .heat-legend'),
          knn: (row.querySelector('.knn') as HTMLElement | null)?.innerText ?? '',
          tests: (row.querySelector('.tests') as HTMLElement | null)?.innerText ?? '',
          warning: (row.querySelector('.pair-warning') as HTMLElement | null)?.innerText ?? '',
          verdict: (row.querySelector('p.verdict') as HTMLElement).innerText,
          ink,
        };
      }, `section.row[data-path$="/${line}"]`);
      return v.ink > 100 && v;
    }, 30_000);
    ctx.note(`inspect: figures ${panel.figures.join(', ')}; ${panel.knn.slice(0, 80)}; ${panel.verdict.slice(0, 120)}; tests ${panel.tests.replace(/\s+/g, ' ').slice(0, 200)}`);
    assert(!panel.figures.some((f) => /reconstruction|heatmap/.test(f)) && !panel.elbo, `VAE elements in a classifier-only pair's panel: ${JSON.stringify(panel)}`);
    assert(/KNN distance \d/.test(panel.knn) && /KNN/.test(panel.tests) && /can hardly fire|cannot fire/.test(panel.warning), `the KNN test is not shown: ${JSON.stringify(panel)}`);

    const tabs = await wb.page.locator('.tabs-container .tab').evaluateAll((t) => t.map((x) => x.getAttribute('aria-label') ?? ''));
    assert(tabs.some((t) => t.includes(`${line} — ${tl.pairName}`)), `the panel title does not carry the pair: ${JSON.stringify(tabs)}`);
    await shoot('inspect-classifier-only');
    await wb.closeEverything();

    // ---- Its folder report: KNN barcode, histogram and column; nothing of the ELBO ----
    await wb.explorerContext('lines-few', 'Score folder for out-of-distribution');
    await pickRow(ctx, 'No reference', 20_000);
    const report = await wb.webviewWith('#vbody .vrow', 180_000);
    const rv = await until('the report', async () => {
      const v = await report.evaluate(() => ({
        title: (document.querySelector('h1') as HTMLElement).innerText,
        barcodes: Array.from(document.querySelectorAll('.barcode')).map((b) => (b as HTMLElement).dataset.score),
        histograms: Array.from(document.querySelectorAll('.chart.hist')).map((b) => (b as HTMLElement).dataset.score),
        header: Array.from(document.querySelectorAll('[role="columnheader"], .vhead > *, thead th')).map((h) => (h as HTMLElement).innerText.trim()).filter(Boolean),
        rows: document.querySelectorAll('#vbody .vrow').length,
      }));
      return v.rows >= 20 && v;
    }, 60_000);
    ctx.note(`report: ${rv.title}; barcodes ${rv.barcodes.join(', ')}; histograms ${rv.histograms.join(', ')}; columns ${rv.header.join(' | ')}`);
    assert(rv.barcodes.includes('knn') && !rv.barcodes.includes('elbo') && rv.histograms.includes('knn') && !rv.histograms.includes('elbo'), `report plots: ${JSON.stringify(rv)}`);
    assert(rv.header.some((h) => /KNN/.test(h)) && !rv.header.some((h) => /ELBO/.test(h)), `report columns: ${rv.header.join(' | ')}`);
    assert(rv.title.includes(tl.pairName), `the report title does not name the pair: ${rv.title}`);
    await wb.page.locator('.part.editor').screenshot({ path: join(RESULTS, 'e2e-shot-i25-report-classifier-only.png') });
    await wb.closeEverything();

    // ---- Select Pair…: each pair's facts, the active one highlighted ----
    await wb.command('OOD Lens: Select Pair');
    const pick = await until('the pair list', async () => {
      const rows = (await wb.page.locator('.quick-input-list .monaco-list-row').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
      const focused = (await wb.page.locator('.quick-input-list .monaco-list-row.focused').first().innerText().catch(() => '')).replace(/\s+/g, ' ');
      return rows.some((r) => r.includes(tl.pairName)) && focused !== '' ? { rows, focused } : undefined;
    }, 30_000);
    ctx.note(`select pair: focused "${pick.focused}"; rows ${pick.rows.join(' | ').slice(0, 600)}`);
    const row = pick.rows.find((r) => r.includes(tl.pairName))!;
    for (const want of ['classifier.onnx (2 classes: 0°, 180°)', '192×48 RGB', '(x/255 − 0.5)/0.5', 'tests confidence 0.', ', KNN 0.', 'held-out false alarms', String(new Date().getUTCFullYear())]) assert(row.includes(want), `the ${tl.pairName} row lacks "${want}": ${row}`);
    assert(pick.focused.includes(tl.pairName) && pick.focused.includes('active'), `the highlighted row is not the active pair: ${pick.focused}`);
    await shoot('select-pair');
    await wb.page.keyboard.press('Escape');
  } finally {
    writeWorkspaceSettings(fx.root, {});
    await sleep(2000);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Flows

const flows: Flow[] = [
  {
    name: 'explorer-check-mnist',
    session: 'trusted',
    run: async (ctx) => {
      await checkFromExplorer(ctx, ctx.fx.mnist.name, 'in-distribution', ctx.fx.mnist.label);
    },
  },
  {
    name: 'explorer-check-fashion',
    session: 'trusted',
    run: async (ctx) => {
      await checkFromExplorer(ctx, ctx.fx.fashion.name, 'out-of-distribution');
    },
  },
  {
    name: 'palette-check-open-image',
    session: 'trusted',
    run: async (ctx) => {
      const name = 'mnist-00002.png';
      await ctx.wb.quickOpen(name);
      // VS Code's image preview (a webview custom editor) shows the image.
      await ctx.wb.webviewWith('img', 30_000);
      // Typing "out-of-distribution" in the palette finds the command (it was hidden before).
      await ctx.wb.command('OOD Lens: Check out-of-distribution');
      const v = await readInspect(ctx, name);
      ctx.note(assertScored(v, 'in-distribution', '1'));
    },
  },
  {
    name: 'panel-reuse',
    session: 'trusted',
    run: async (ctx) => {
      const { wb, fx } = ctx;
      const oodTabs = async () => (await wb.page.locator('.tabs-container .tab').evaluateAll((tabs) => tabs.map((t) => t.getAttribute('aria-label') ?? ''))).filter((l) => l.startsWith('OOD'));
      await checkFromExplorer(ctx, fx.mnist.name, 'in-distribution', fx.mnist.label);
      await checkFromExplorer(ctx, fx.fashion.name, 'out-of-distribution');
      let tabs = await oodTabs();
      assert(tabs.length === 1 && tabs[0].includes(fx.fashion.name), `checking a second image should reuse the preview panel: tabs ${JSON.stringify(tabs)}`);
      const frame = await wb.webviewWith(`section.row[data-path$="/${fx.fashion.name}"]`, 30_000);
      const rows = await frame.evaluate(() => document.querySelectorAll('section.row').length);
      assert(rows === 1, `the reused panel shows ${rows} rows, expected only the new image`);
      ctx.note(`after two checks: ${tabs.length} panel (${tabs[0].split(',')[0]})`);
      // Pin it: the next check opens a panel of its own.
      await frame.locator('vscode-button.pin').click();
      await until('the pinned title', async () => (await oodTabs()).some((t) => t.startsWith('OOD (pinned)')), 10_000);
      await checkFromExplorer(ctx, fx.mnist.name, 'in-distribution', fx.mnist.label);
      tabs = await until('two OOD panels', async () => {
        const t = await oodTabs();
        return t.length === 2 && t;
      }, 15_000);
      ctx.note(`after pinning and a third check: ${tabs.map((t) => t.split(',')[0]).join(' | ')}`);
      const buttons = await (await wb.webviewWith(`section.row[data-path$="/${fx.mnist.name}"]`, 30_000)).evaluate(() => Array.from(document.querySelectorAll('vscode-button')).map((b) => (b.textContent ?? '').trim()));
      assert(new Set(buttons).size === buttons.length, `button names repeat: ${buttons.join(', ')}`);
    },
  },
  {
    name: 'same-p-value',
    session: 'trusted',
    run: async (ctx) => {
      const { wb, fx } = ctx;
      // One FashionMNIST image of the folder, in the panel, the manifest hover and the folder report.
      const target = fx.csv.fashion;
      const name = target.path.split('/').pop()!;
      // Expand images/ unless an earlier flow (Quick Open reveals the file) already did.
      if (!(await wb.explorerRow(name).isVisible().catch(() => false))) {
        await wb.page.locator('.explorer-folders-view .monaco-list-row[aria-label^="images"]').first().click();
        await sleep(500);
      }
      const panel = await checkFromExplorer(ctx, name, 'out-of-distribution');
      const fromPanel = /p = (\S+)/.exec(panel.headlineP)?.[1];
      assert(fromPanel, `no headline p in the panel: ${JSON.stringify(panel)}`);
      await ctx.shot('panel');
      await wb.closeEverything();

      await wb.quickOpen(target.file);
      await sleep(1000);
      const hover = await hoverAt(ctx, target);
      const fromHover = /Out-of-distribution · p = (\S+)/.exec(hover)?.[1];
      assert(fromHover, `no p in the hover's verdict line: ${hover}`);
      await shootHover(ctx, 'manifest-hover');
      await wb.page.keyboard.press('Escape');
      await wb.closeEverything();

      await wb.explorerContext('images', 'Score folder for out-of-distribution');
      const noRef = wb.page.locator('.quick-input-list .monaco-list-row', { hasText: 'No reference' }).first();
      await noRef.waitFor({ timeout: 20_000 });
      await noRef.click();
      const frame = await wb.webviewWith('#vbody .vrow', 120_000);
      const fromReport = await until(`${name} in the report`, async () =>
        frame.evaluate((n) => {
          const row = Array.from(document.querySelectorAll('#vbody .vrow')).find((r) => (r.querySelector('.c-path') as HTMLElement).innerText.endsWith(n));
          return (row?.querySelector('.c-p') as HTMLElement | null)?.innerText.trim();
        }, name), 30_000);
      await sleep(1000);
      await wb.page.locator('.part.editor').screenshot({ path: join(RESULTS, 'e2e-shot-report.png') });
      ctx.note(`${name}: panel p = ${fromPanel} · hover p = ${fromHover} · report p = ${fromReport}`);
      assert(fromPanel === fromHover && fromHover === fromReport, `the p-value differs: panel ${fromPanel}, hover ${fromHover}, report ${fromReport}`);
    },
  },
  {
    name: 'walkthrough',
    session: 'trusted',
    run: async (ctx) => {
      const { wb, fx } = ctx;
      const page = wb.page;
      // Shown once by itself on the first activation after install (runSession waited for it and closed it).
      assert(ctx.firstRunWalkthrough, 'the walkthrough did not open by itself on the first activation after install (fresh user data)');
      ctx.note('opened by itself on the first activation after install');
      const container = page.locator('.gettingStartedContainer').first();
      // A step's check mark (VS Code marks it `complete` when one of the step's completionEvents fires).
      const done = (stepId: string) => container.locator(`[data-done-step-id$="#${stepId}"].complete`);
      /** The step whose button was clicked last, checked on the next open (its result may cover the walkthrough). */
      let clicked: { stepId: string; wasDone: boolean } | undefined;
      const open = async () => {
        await wb.closeEverything();
        await wb.command('OOD Lens: Get Started');
        await until('the walkthrough', async () => (await container.innerText().catch(() => '')).includes('Get started with OOD Lens') || undefined, 30_000);
        if (clicked) {
          const { stepId, wasDone } = clicked;
          await done(stepId).first().waitFor({ timeout: 15_000 }).catch(() => {
            throw new Error(`the step ${stepId} is not checked off after its button`);
          });
          ctx.note(`step ${stepId}: ${wasDone ? 'already checked off by an earlier flow' : 'checked off by its button'}`);
          clicked = undefined;
        }
      };
      // Each step's picture (package.json media.image), shown beside the expanded step: the img VS Code makes has
      // the step's altText, and once loaded the PNG's aspect ratio (width and height: bytes 16–23 of the file; Chromium
      // may scale the natural size by the PNG's pixel density).
      const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { contributes: { walkthroughs: { steps: { id: string; media: { image: string; altText: string } }[] }[] } };
      const media = Object.fromEntries(manifest.contributes.walkthroughs[0].steps.map((st) => [st.id, { ...st.media, ratio: ((png) => png.readUInt32BE(20) / png.readUInt32BE(16))(readFileSync(join(REPO, st.media.image))) }]));
      assert(media.ownModel.image === 'media/screenshots/create-pair.png', `step 4's picture is ${media.ownModel.image}`);
      /** Expands a step, checks that its picture is shown, and clicks one of its buttons. */
      const stepButton = async (stepId: string, title: string, button: string): Promise<void> => {
        await container.locator('.getting-started-step', { hasText: title }).first().click();
        const picture = await until(`the picture of the step "${title}"`, async () => {
          const shown = await container.locator('.getting-started-media img').evaluateAll((imgs) => imgs.map((i) => ({ alt: (i as HTMLImageElement).alt, width: (i as HTMLImageElement).naturalWidth, height: (i as HTMLImageElement).naturalHeight })));
          const img = shown.find((i) => i.alt === media[stepId].altText && i.width > 0 && Math.abs(i.height / i.width / media[stepId].ratio - 1) < 0.02);
          if (!img) throw new Error(`shown: ${JSON.stringify(shown.map((i) => `${i.alt.slice(0, 40)}… ${i.width}×${i.height}`))}`);
          return `${media[stepId].image} (${img.width}×${img.height})`;
        }, 15_000);
        ctx.note(`step ${stepId}: picture ${picture}`);
        const b = container.locator('.getting-started-step.expanded .button-container .monaco-button', { hasText: button }).first();
        await b.waitFor({ state: 'visible', timeout: 10_000 });
        clicked = { stepId, wasDone: (await done(stepId).count()) > 0 };
        await b.click();
      };

      await open();
      const text = await container.innerText();
      for (const step of ['Check an image', 'Score a folder', 'Hover a dataset manifest', 'Bring your own model']) assert(text.includes(step), `the walkthrough has no step "${step}": ${text.slice(0, 400)}`);
      await ctx.shot('open');

      // 1. A bundled sample in the Inspect panel.
      await stepButton('checkSample', 'Check an image', 'Check a sample image');
      const sample = await readInspect(ctx, 'fashion-test-00001.png');
      ctx.note(`check a sample: ${assertScored(sample, 'out-of-distribution')}`);
      await ctx.shot('check-sample');
      // The README's and the first step's picture: the editor group that holds the panel.
      await page.locator('.editor-group-container', { has: page.locator('.tab[aria-label^="OOD"]') }).first().screenshot({ path: join(RESULTS, 'e2e-shot-inspect-panel.png') });
      const sampleP = /p = (\S+)/.exec(sample.headlineP)?.[1];
      assert(sampleP, `no headline p in the panel: ${JSON.stringify(sample)}`);

      // 2. The samples folder in the report.
      await open();
      await stepButton('scoreFolder', 'Score a folder', 'Score the samples folder');
      const noRef = page.locator('.quick-input-list .monaco-list-row', { hasText: 'No reference' }).first();
      await noRef.waitFor({ timeout: 20_000 });
      await noRef.click();
      const report = await wb.webviewWith('#vbody .vrow', 120_000);
      const rows = await until('the samples in the report', async () => {
        const n = await report.evaluate(() => document.querySelectorAll('#vbody .vrow').length);
        return n >= 12 && n;
      }, 30_000);
      ctx.note(`score the samples: ${rows} rows in the report`);
      await ctx.shot('score-samples');

      // 3. The sample manifest, with the hover on the FashionMNIST row shown by the button itself (no second try:
      // re-running Show Hover here would hide a hover still being computed).
      await open();
      await stepButton('manifest', 'Hover a dataset manifest', 'Open the sample manifest');
      await page.locator('.tabs-container .tab.active[aria-label^="dataset.csv"]').first().waitFor({ timeout: 30_000 });
      const hover = await until('the hover the button shows on the sample manifest', async () => {
        const hovers = (await page.locator('.monaco-hover:visible').allInnerTexts()).map((t) => t.replace(/\u00a0/g, ' ')); // appendText writes spaces as &nbsp;
        return hovers.find((t) => t.includes('OOD Lens') && /Out-of-distribution · p = /.test(t));
      }, 90_000);
      const hoverP = /Out-of-distribution · p = (\S+)/.exec(hover)?.[1];
      ctx.note(`open the sample manifest: hover ${hover.replace(/\s+/g, ' ').slice(0, 120)}`);
      assert(/Predicted 8 /.test(hover), `the hover is not the pullover's row (the classifier calls it an 8): ${hover}`);
      assert(hoverP === sampleP, `the hover's p (${hoverP}) differs from the panel's (${sampleP}) for fashion-test-00001.png`);
      await ctx.shot('manifest');
      await page.keyboard.press('Escape');

      // 4a. Bring your own model: "Create a pair" starts Create Pair (the classifier, then what it declares).
      await open();
      await stepButton('ownModel', 'Bring your own model', 'Create a pair');
      const title = page.locator('.quick-input-widget .quick-input-title');
      await until('Create Pair to ask for the classifier', async () => (await title.innerText().catch(() => '')).includes('choose the classifier') || undefined, 30_000);
      await answerOpenDialog(ctx, join(fx.root, fx.createPair.model), 'Use Classifier', 'choose the classifier');
      // The images come before what the model declares (their size is checked against it).
      await pickRow(ctx, 'A folder of images', 90_000);
      await answerOpenDialog(ctx, fx.createPair.data, 'Use Images', 'folder of in-distribution images');
      const continueRow = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Continue' }).first();
      await continueRow.waitFor({ timeout: 90_000 });
      const facts = (await page.locator('.quick-input-list .monaco-list-row').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
      assert(facts.some((f) => f.includes('10 classes from "logits"')), `Create Pair from the walkthrough does not show what ${fx.createPair.model} declares: ${JSON.stringify(facts)}`);
      ctx.note(`create a pair: ${fx.createPair.model} → ${facts.slice(0, 3).join(' | ')}`);
      await page.keyboard.press('Escape');
      await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: 10_000 });

      // 4b. "How to make a pair": the README shipped in the extension, at its "Bring your own model" section.
      await open();
      await stepButton('ownModel', 'Bring your own model', 'How to make a pair');
      // (vsce stores README.md as readme.md in the VSIX: the installed extension's tab reads readme.md.)
      const readme = page.locator('.tabs-container .tab.active[aria-label^="readme.md" i]').first();
      if (!(await readme.waitFor({ timeout: 30_000 }).then(() => true, () => false))) {
        const tabs = await page.locator('.tabs-container .tab').evaluateAll((ts) => ts.map((t) => `${t.classList.contains('active') ? '*' : ''}${t.getAttribute('aria-label')}`));
        throw new Error(`"How to make a pair" opened no README.md (tabs: ${tabs.join(' | ')}; notifications: ${(await wb.notifications()).join(' | ') || 'none'})`);
      }
      // At the section: the cursor on its heading line, that line in the top third of the editor.
      const at = await until('the README at its "Bring your own model" section', async () => {
        const cursor = (await page.locator('.statusbar-item', { hasText: /^Ln \d+, Col \d+/ }).first().innerText().catch(() => '')).trim();
        const editor = page.locator('.editor-group-container.active .monaco-editor').first();
        const box = await editor.boundingBox();
        const heading = await editor.locator('.view-line').evaluateAll((ls) => {
          const h = ls.find((l) => /^## Bring your own model\s*$/.test((l as HTMLElement).innerText.replace(/\u00a0/g, ' ')));
          return h ? h.getBoundingClientRect().top : null;
        });
        const cursorTop = await editor.locator('.view-overlays .current-line').first().evaluate((e) => e.getBoundingClientRect().top).catch(() => null);
        const problem = !box || heading === null ? 'the heading is not on screen' : cursorTop === null || Math.abs(cursorTop - heading) > 2 ? 'the cursor is not on the heading' : heading > box.y + box.height / 3 ? `the heading is ${Math.round(heading - box.y)} px down` : '';
        if (problem) throw new Error(`${problem} (${cursor || 'no cursor position'})`);
        return `${cursor}, the heading ${Math.round(heading! - box!.y)} px below the editor's top`;
      }, 15_000);
      ctx.note(`how to make a pair: readme.md at "## Bring your own model" (${at})`);
      await ctx.shot('docs');
    },
  },
  {
    name: 'cold-start-timing',
    session: 'cold',
    run: async (ctx) => {
      const { wb } = ctx;
      const page = wb.page;
      /**
       * After the click on the menu item, polls every ~50 ms and notes when each stage is first seen: the panel's
       * tab, its webview iframe, the row's "Scoring…" (or the finished row: a warm check can finish between two
       * polls), the verdict. Figures are printed, never asserted: the machine is shared and its load varies.
       */
      const timeline = async (name: string, clicked: number) => {
        const row = `section.row[data-path$="/${name}"]`;
        const seen: Record<'tab' | 'iframe' | 'scoring' | 'verdict', number | undefined> = { tab: undefined, iframe: undefined, scoring: undefined, verdict: undefined };
        const end = clicked + 120_000;
        while (seen.verdict === undefined) {
          if (Date.now() > end) throw new Error(`no verdict for ${name} within 120 s (seen: ${JSON.stringify(seen)})`);
          const now = () => Date.now() - clicked;
          if (seen.tab === undefined && (await page.locator(`.tabs-container .tab[aria-label*="${name}"]`).count()) > 0) seen.tab = now();
          if (seen.iframe === undefined && (await page.locator('iframe.webview').count()) > 0) seen.iframe = now();
          for (const frame of page.frames()) {
            if (frame === page.mainFrame()) continue;
            const state = await frame.evaluate((r) => (document.querySelector(`${r}.status-done`) ? 'done' : document.querySelector(`${r} .busy`) ? 'scoring' : null), row).catch(() => null);
            if (state) seen.scoring ??= now();
            if (state === 'done') seen.verdict = now();
          }
          if (seen.verdict === undefined) await sleep(50);
        }
        return seen as Record<'tab' | 'iframe' | 'scoring' | 'verdict', number> & { tab?: number; iframe?: number };
      };
      const measure = async (name: string) => {
        // Right-click, then time from the click on the menu item.
        const row = wb.explorerRow(name);
        await row.waitFor({ timeout: 30_000 });
        const action = page.locator('.context-view .action-label', { hasText: 'Check out-of-distribution' }).first();
        // The first right-click may come before the extension host has read the extension's menus (a loaded
        // machine): open the menu again until the item is there.
        await until('the Explorer menu to offer Check out-of-distribution', async () => {
          await row.click({ button: 'right' });
          if (await action.waitFor({ timeout: 5_000 }).then(() => true, () => false)) {
            await page.keyboard.press('Escape');
            return true;
          }
          await page.keyboard.press('Escape');
          return undefined;
        }, 180_000, 1000);
        // Something that takes the focus (the walkthrough the first activation opens) closes the menu: open it again.
        let t0 = 0;
        await until('the Explorer menu with Check out-of-distribution', async () => {
          t0 = Date.now();
          await row.click({ button: 'right' });
          if (await action.waitFor({ timeout: 5_000 }).then(() => true, () => false)) return true;
          await page.keyboard.press('Escape');
          return undefined;
        }, 60_000, 500);
        await action.hover();
        const clicked = Date.now();
        await action.click();
        const seen = await timeline(name, clicked);
        return { menu: clicked - t0, clicked, ...seen };
      };
      // The extension's own log around a cold check, each line's time from the menu click: activation, the
      // panel's page, the engine worker's start and pair load, the verdict.
      const logAround = async (m: { clicked: number; verdict: number }) => {
        await sleep(1500); // the log channel writes its file in batches
        const logs = spawnSync('find', [join(ctx.server.userDataDir, 'logs'), '-name', '*.log'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
        const stamp = (line: string) => {
          const d = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}\.\d{3})/.exec(line);
          return d ? new Date(`${d[1]}T${d[2]}`).getTime() : NaN;
        };
        const within = (line: string) => {
          const t = stamp(line);
          return Number.isFinite(t) && t >= m.clicked - 30_000 && t <= m.clicked + m.verdict + 1000;
        };
        const host = logs.filter((f) => f.endsWith('remoteexthost.log')).flatMap((f) => readFileSync(f, 'utf8').split('\n'));
        const activation = host.filter(within).find((l) => l.includes('_doActivateExtension ood-lens.'));
        if (activation) ctx.note(`  activated by ${activation.replace(/^.*activationEvent: /, '')} at ${((stamp(activation) - m.clicked) / 1000).toFixed(2)} s`);
        for (const line of logs.filter((f) => f.endsWith('OOD Lens.log')).flatMap((f) => readFileSync(f, 'utf8').split('\n')).filter(within).sort((a, b) => stamp(a) - stamp(b))) {
          ctx.note(`  log ${((stamp(line) - m.clicked) / 1000).toFixed(2).padStart(6)} s  ${line.replace(/^\S+ \S+ /, '').slice(0, 260)}`);
        }
      };
      /** Extension hosts that have finished activating their start-up extensions (remoteexthost.log). */
      const settledHosts = () =>
        spawnSync('find', [join(ctx.server.userDataDir, 'logs'), '-name', 'remoteexthost.log'], { encoding: 'utf8' })
          .stdout.trim()
          .split('\n')
          .filter(Boolean)
          .reduce((n, f) => n + readFileSync(f, 'utf8').split('Eager extensions activated').length - 1, 0);
      const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
      // A user clicks once the window has settled (on a loaded machine a click before that waits in the extension
      // host's queue behind the start-up extensions, whatever this extension does).
      await until('the extension host to settle', async () => settledHosts() > 0 || undefined, 90_000, 500).catch(() => ctx.note('the extension host did not log "Eager extensions activated" within 90 s'));
      const loadBefore = load();
      const cold = await measure('cold-1.png');
      const loadAfter = load();
      ctx.note(`cold: first "Scoring…" ${cold.scoring} ms, verdict ${cold.verdict} ms after the menu click (menu ${cold.menu} ms; tab ${cold.tab ?? '–'} ms, webview iframe ${cold.iframe ?? '–'} ms; load average ${loadBefore} → ${loadAfter})`);
      // Where the webview's time went: each frame's navigation and resources, from the menu click.
      for (const frame of page.frames()) {
        if (frame === page.mainFrame()) continue;
        const t = await frame
          .evaluate(() => {
            const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming | undefined;
            const res = (performance.getEntriesByType('resource') as PerformanceResourceTiming[]).map((r) => ({ name: r.name.split('?')[0].split('/').pop() ?? r.name, start: r.startTime, end: r.responseEnd }));
            return { url: location.pathname.split('/').pop() ?? '', origin: performance.timeOrigin, dcl: nav?.domContentLoadedEventEnd ?? null, load: nav?.loadEventEnd ?? null, res };
          })
          .catch(() => null);
        if (!t) continue;
        const at = (ms: number | null) => (ms === null ? '–' : `${((t.origin + ms - cold.clicked) / 1000).toFixed(2)}`);
        ctx.note(`  frame ${t.url}: started ${at(0)} s, DOMContentLoaded ${at(t.dcl)} s, load ${at(t.load)} s; ${t.res.map((r) => `${r.name} ${at(r.start)}–${at(r.end)}`).join(', ')}`);
      }
      await logAround(cold);
      await sleep(3000);
      const warm1 = await measure('cold-2.png');
      const warm2 = await measure('cold-3.png');
      ctx.note(`warm: "Scoring…" ${warm1.scoring} / ${warm2.scoring} ms, verdict ${warm1.verdict} / ${warm2.verdict} ms after the menu click (load average ${load()})`);

      // Cold again after Reload Window (a fresh extension host; the browser has run a webview before), with no
      // editor open, so that nothing starts the engine before the click.
      await wb.closeEverything();
      const settledBefore = settledHosts();
      await wb.command('Developer: Reload Window');
      await page.waitForLoadState('domcontentloaded');
      await page.locator('.explorer-folders-view .monaco-list-row').first().waitFor({ timeout: 90_000 });
      await until('the reloaded extension host to settle', async () => (settledHosts() > settledBefore) || undefined, 90_000, 500).catch(() => ctx.note('the reloaded extension host did not log "Eager extensions activated" within 90 s'));
      await sleep(2000);
      const reloadLoad = load();
      const reloaded = await measure('cold-4.png');
      ctx.note(`cold after Reload Window: first "Scoring…" ${reloaded.scoring} ms, verdict ${reloaded.verdict} ms after the menu click (menu ${reloaded.menu} ms; tab ${reloaded.tab ?? '–'} ms, webview iframe ${reloaded.iframe ?? '–'} ms; load average ${reloadLoad} → ${load()})`);
      await logAround(reloaded);

      await wb.command('Developer: Show Running Extensions').catch(() => undefined);
      const running = await until('OOD Lens in Running Extensions', async () => {
        const t = await page.locator('.runtime-extensions-editor .monaco-list-row', { hasText: 'OOD Lens' }).first().innerText().catch(() => '');
        return t || undefined;
      }, 15_000).catch(() => '');
      ctx.note(`Running Extensions: ${running.replace(/\s+/g, ' ')}`);
      await ctx.shot('running-extensions');
    },
  },
  {
    name: 'score-folder-export-csv',
    session: 'trusted',
    run: async (ctx) => {
      const { wb, fx } = ctx;
      await wb.page.evaluate(() => {
        const w = window as unknown as { __oodNotes: string[]; __oodObs: MutationObserver };
        w.__oodNotes = [];
        w.__oodObs = new MutationObserver(() => {
          for (const e of Array.from(document.querySelectorAll('.notification-list-item-message, .notification-toast .notification-list-item-details-row, .notification-list-item'))) {
            const t = (e as HTMLElement).innerText;
            if (t && !w.__oodNotes.includes(t)) w.__oodNotes.push(t);
          }
        });
        w.__oodObs.observe(document.body, { subtree: true, childList: true, characterData: true });
      });
      await wb.explorerContext(fx.folder.name, 'Score folder for out-of-distribution');
      // The reference-folder question.
      const noRef = wb.page.locator('.quick-input-list .monaco-list-row', { hasText: 'No reference' }).first();
      await noRef.waitFor({ timeout: 20_000 });
      await noRef.click();
      const frame = await wb.webviewWith('#vbody .vrow', 120_000);
      const notes = await wb.page.evaluate(() => {
        const w = window as unknown as { __oodNotes: string[]; __oodObs: MutationObserver };
        w.__oodObs.disconnect();
        return w.__oodNotes;
      });
      const progress = notes.find((n) => n.includes(`OOD Lens: scoring ${fx.folder.name}`));
      assert(progress, `no progress notification "OOD Lens: scoring ${fx.folder.name}" was shown (seen: ${JSON.stringify(notes).slice(0, 300)})`);
      ctx.note(`progress: ${progress.replace(/\s+/g, ' ').slice(0, 120)}`);
      const rows = await until('every image in the report table', async () => {
        const r = await frame.evaluate(() =>
          Array.from(document.querySelectorAll('#vbody .vrow')).map((row) => ({ path: (row.querySelector('.c-path') as HTMLElement).innerText, verdict: (row.querySelector('.c-verdict') as HTMLElement).innerText })),
        );
        return r.length >= fx.folder.images.length && r;
      }, 30_000);
      const paths = rows.map((r) => r.path.split('/').pop()).sort();
      assert(JSON.stringify(paths) === JSON.stringify([...fx.folder.images].sort()), `report rows ${JSON.stringify(paths)} ≠ folder images ${JSON.stringify(fx.folder.images)}`);
      for (const r of rows) {
        const want = r.path.includes('fashion') ? /out-of-distribution/i : /in-distribution/i;
        assert(want.test(r.verdict) && !(r.path.includes('mnist') && /out/i.test(r.verdict)), `report row ${r.path}: verdict "${r.verdict}"`);
      }
      ctx.note(`report: ${rows.length} rows (${rows.map((r) => `${r.path.split('/').pop()} ${r.verdict}`).join(', ')})`);
      await ctx.shot('report');

      // Export CSV through the save dialog (code-server's simple dialog: type a path, Enter).
      const target = join(fx.root, 'exported-report.csv');
      await frame.locator('vscode-button', { hasText: 'Export CSV' }).first().click();
      const input = wb.page.locator('.quick-input-widget input.input');
      await input.waitFor({ state: 'visible', timeout: 20_000 });
      await ctx.shot('save-dialog');
      await input.fill(target);
      await sleep(500);
      await wb.page.keyboard.press('Enter');
      await until(`${target} to be written`, async () => existsSync(target) && statSync(target).size > 0, 30_000);
      const lines = readFileSync(target, 'utf8').trim().split(/\r?\n/);
      const header = lines[0].split(',');
      assert(header.includes('path') && header.includes('verdict') && header.includes('elbo'), `CSV header: ${lines[0]}`);
      assert(lines.length === fx.folder.images.length + 1, `CSV has ${lines.length - 1} rows, expected ${fx.folder.images.length}`);
      for (const img of fx.folder.images) assert(lines.some((l) => l.includes(img)), `CSV has no row for ${img}`);
      const vcol = header.indexOf('verdict');
      const verdicts = lines.slice(1).map((l) => l.split(',')[vcol]);
      assert(verdicts.filter((v) => v === 'out-of-distribution').length === 3 && verdicts.filter((v) => v === 'in-distribution').length === 3, `CSV verdicts: ${verdicts.join(', ')}`);
      ctx.note(`exported ${lines.length - 1} rows to ${target}`);
      await wb.waitNotification('the export confirmation', (t) => t.includes('exported') && t.includes('results'), 15_000).then(
        (t) => ctx.note(`notification: ${t}`),
        () => ctx.note('no export confirmation notification seen'),
      );
    },
  },
  {
    name: 'manifest-csv',
    session: 'trusted',
    run: (ctx) => manifestFlow(ctx, 'csv'),
  },
  {
    name: 'manifest-jsonl',
    session: 'trusted',
    run: (ctx) => manifestFlow(ctx, 'jsonl'),
  },
  {
    name: 'corrupt-image',
    session: 'trusted',
    run: async (ctx) => {
      const { wb, fx } = ctx;
      await wb.explorerContext(fx.broken, 'Check out-of-distribution');
      const text = await wb.waitNotification(`an error naming ${fx.broken}`, (t) => t.includes(fx.broken), 60_000);
      assert(/could not|cannot|failed/i.test(text) && /decode|corrupt|header|unsupported/i.test(text), `notification does not say what is wrong: ${text}`);
      ctx.note(`notification: ${text}`);
      const v = await readInspect(ctx, fx.broken);
      assert(v.headline.toLowerCase() === 'could not score', `panel headline "${v.headline}" for the corrupt image`);
      ctx.note(`panel: ${v.headline}: ${v.sentence}`);
      await ctx.shot('error');
      await wb.closeEverything();
      await checkFromExplorer(ctx, fx.mnist.name, 'in-distribution', fx.mnist.label);
    },
  },
  {
    name: 'broken-pair-manifest',
    session: 'trusted',
    run: async (ctx) => {
      const { wb, fx } = ctx;
      writeWorkspaceSettings(fx.root, { 'oodLens.pair': fx.brokenPair });
      try {
        const text = await wb.waitNotification('the pair error', (t) => t.includes('could not be loaded') || t.includes('ood-pair.json'), 60_000);
        assert(text.includes('ood-pair.json') && text.includes('classifier.path'), `the notification does not name the file and the field: ${text}`);
        ctx.note(`notification: ${text}`);
        await ctx.shot('error');
      } finally {
        writeWorkspaceSettings(fx.root, {});
      }
      await sleep(3000); // the settings watcher and the engine reload
      await wb.closeEverything();
      const v = await checkFromExplorer(ctx, fx.mnist.name, 'in-distribution', fx.mnist.label);
      assert(/Pair mnist\b/.test(v.pairBar), `after fixing the setting the built-in pair should run: ${v.pairBar}`);
    },
  },
  {
    name: 'create-pair',
    session: 'trusted',
    run: createPairFlow,
  },
  {
    name: 'create-pair-nonsquare',
    session: 'trusted',
    run: createPairNonSquareFlow,
  },
  {
    name: 'create-pair-vae',
    session: 'trusted',
    run: createPairVaeFlow,
  },
  {
    name: 'restricted-mode',
    session: 'restricted',
    run: async (ctx) => {
      const { wb, fx } = ctx;
      const problems: string[] = [];
      // 1. The workspace setting oodLens.pair names a workspace pair: the extension should say it needs trust.
      const notice = await wb.waitNotification('the Restricted Mode notice about oodLens.pair', (t) => t.includes('Restricted Mode') && t.includes(fx.workspacePair), 45_000).catch(() => undefined);
      if (notice) {
        if (!/trust/i.test(notice) || !/built-in/i.test(notice)) problems.push(`the Restricted Mode notice does not say why or what runs instead: ${notice}`);
        ctx.note(`notification: ${notice}`);
      } else {
        problems.push(
          `no notification said that the workspace pair "${fx.workspacePair}" from .vscode/settings.json (oodLens.pair) needs a trusted workspace ` +
            `(notifications: ${JSON.stringify(await wb.notifications())}; see test-results/e2e-restricted-ood-lens.log)`,
        );
      }
      await ctx.shot('notice');
      await wb.command('Notifications: Clear All Notifications');

      // 2. Choosing the workspace pair in the pair picker is refused with the reason.
      await wb.command('OOD Lens: Select Pair');
      const item = wb.page.locator('.quick-input-list .monaco-list-row', { hasText: 'needs a trusted workspace' }).filter({ hasText: fx.workspacePair }).first();
      if (await item.waitFor({ timeout: 20_000 }).then(() => true, () => false)) {
        const label = await item.innerText();
        await item.click();
        const refusal = await wb.waitNotification('the pair picker refusal', (t) => /needs a trusted workspace/.test(t), 30_000).catch(() => undefined);
        if (!refusal) problems.push(`choosing "${label.replace(/\s+/g, ' ')}" in Select Pair showed no notification`);
        else if (!refusal.includes('workspace-mnist') && !refusal.includes(fx.workspacePair)) problems.push(`the pair picker refusal does not name the pair: ${refusal}`);
        else ctx.note(`pair picker: ${refusal}`);
        await ctx.shot('picker');
      } else {
        problems.push(`Select Pair does not list ${fx.workspacePair} as needing a trusted workspace (rows: ${JSON.stringify(await wb.page.locator('.quick-input-list .monaco-list-row').allInnerTexts())})`);
        await wb.page.keyboard.press('Escape');
      }
      await wb.command('Notifications: Clear All Notifications');

      // 3. The built-in pair still inspects an image.
      const v = await checkFromExplorer(ctx, fx.mnist.name, 'in-distribution', fx.mnist.label);
      if (!/Pair mnist\b/.test(v.pairBar) || v.pairBar.includes(fx.workspacePairName)) problems.push(`the built-in pair should run, not ${fx.workspacePairName}: ${v.pairBar}`);
      if (!/Restricted Mode/.test(v.pairBar)) problems.push(`the panel does not say Restricted Mode: ${v.pairBar}`);
      ctx.note(`pair bar: ${v.pairBar.replace(/\s+/g, ' ')}`);
      if (problems.length) throw new Error(problems.join(' | '));
    },
  },
  {
    // Issue 15 item 4: a crafted manifest must not turn into a clickable command, and the command refuses
    // arguments that are not readable rows of an open manifest.
    name: 'restricted-hostile-manifest',
    session: 'restricted',
    run: async (ctx) => {
      const { wb, fx } = ctx;
      const h = fx.hostile;
      await wb.quickOpen('hostile.csv');
      await sleep(1500);

      // 1. The issue's attack: a quoted multi-line path holding a command link. Plain text, no link.
      const multi = await hoverView(ctx, h.multiLine, 'file not found', (t) => /not found/i.test(t));
      await ctx.shot('multiline-hover');
      assert(!multi.links.some((l) => /command:/i.test(l)), `the hover of the multi-line path renders a command link: ${JSON.stringify(multi.links)} (${multi.text})`);
      assert(multi.text.includes('[x](command:oodLens.manifest.inspect?'), `the hover does not show the link text as plain text: ${multi.text}`);
      ctx.note(`multi-line path hover: ${multi.text.replace(/\s+/g, ' ').slice(0, 200)} · links ${JSON.stringify(multi.links)}`);
      await wb.page.keyboard.press('Escape');

      // 2. A symbolic link to an image outside the workspace: refused, no link.
      const sym = await hoverView(ctx, h.symlinkRow, 'the symlink refusal', (t) => /Restricted Mode/.test(t));
      assert(/links to/.test(sym.text) && !sym.links.some((l) => /command:/i.test(l)), `symlink row hover: ${sym.text} · ${JSON.stringify(sym.links)}`);
      ctx.note(`symlink hover: ${sym.text.replace(/\s+/g, ' ').slice(0, 200)}`);
      await wb.page.keyboard.press('Escape');

      // 3. A scored row with a command link in its label: the label is text; the one link is Inspect for this row.
      const scored = await hoverView(ctx, h.scored, 'scores', (t) => /ELBO/.test(t));
      await ctx.shot('scored-hover');
      const commands = scored.links.filter((l) => /command:/i.test(l));
      assert(commands.length === 1 && commands[0].startsWith('command:oodLens.manifest.inspect?'), `the scored hover's command links: ${JSON.stringify(scored.links)}`);
      const args = JSON.parse(decodeURIComponent(commands[0].slice(commands[0].indexOf('?') + 1)));
      assert(JSON.stringify(args) === JSON.stringify([join(fx.root, h.scored.path)]), `the Inspect link's argument ${JSON.stringify(args)} is not the row's image`);
      assert(scored.text.includes(h.link), `the label's link is not shown as text: ${scored.text}`);
      ctx.note(`scored hover links: ${JSON.stringify(scored.links)}`);
      await wb.page.keyboard.press('Escape');
      await wb.command('Notifications: Clear All Notifications');

      // 4. The command itself, called with an image outside the workspace (a keybinding passes the argument).
      const secret = h.outsideImage.split('/').pop()!;
      await wb.page.keyboard.press(HOSTILE_KEYS.outside.press);
      const refusal = await wb.waitNotification('the refusal of an outside path', (t) => t.includes('not inspecting') && t.includes(secret), 30_000);
      ctx.note(`outside path: ${refusal}`);
      await wb.page.keyboard.press(HOSTILE_KEYS.symlink.press);
      const symRefusal = await wb.waitNotification('the refusal of the symlink row', (t) => t.includes('not inspecting') && t.includes('links to'), 30_000);
      ctx.note(`symlink row: ${symRefusal}`);
      await ctx.shot('refused');
      const opened = await wb.webviewWith(`section.row[data-path$="${secret}"], section.row[data-path$="link-to-secret.png"]`, 5_000).then(() => true, () => false);
      assert(!opened, 'an Inspect panel opened the image outside the workspace');
    },
  },
  {
    // Issue 15 item 11: folder scoring in Restricted Mode does not read a symbolic link out of the workspace.
    name: 'restricted-folder-symlink',
    session: 'restricted',
    run: async (ctx) => {
      const { wb, fx } = ctx;
      const lf = fx.linkedFolder;
      await wb.explorerContext(lf.name, 'Score folder for out-of-distribution');
      const noRef = wb.page.locator('.quick-input-list .monaco-list-row', { hasText: 'No reference' }).first();
      await noRef.waitFor({ timeout: 20_000 });
      await noRef.click();
      const frame = await wb.webviewWith('#vbody .vrow', 120_000);
      const rows = await until('both files in the report table', async () => {
        const r = await frame.evaluate(() =>
          Array.from(document.querySelectorAll('#vbody .vrow')).map((row) => ({
            path: (row.querySelector('.c-path') as HTMLElement).innerText,
            verdict: (row.querySelector('.c-verdict') as HTMLElement).innerText,
            title: (row as HTMLElement).title,
            thumb: (row.querySelector('.c-thumb img') as HTMLImageElement | null)?.getAttribute('src') ?? '',
          })),
        );
        return r.length >= 2 && r;
      }, 60_000);
      await ctx.shot('report');
      const link = rows.find((r) => r.path.endsWith(lf.link));
      const digit = rows.find((r) => r.path.endsWith(lf.image));
      assert(link && digit, `report rows: ${JSON.stringify(rows)}`);
      assert(/error/i.test(link.verdict) && /links to .*outside the workspace/.test(link.title), `the symlink row is not refused: ${JSON.stringify(link)}`);
      assert(!link.thumb, `the symlink row shows a thumbnail of the outside image: ${link.thumb}`);
      assert(/in-distribution/i.test(digit.verdict), `the digit next to it is still scored: ${JSON.stringify(digit)}`);
      ctx.note(`rows: ${rows.map((r) => `${r.path} ${r.verdict}${r.title.includes('\n') ? ` (${r.title.split('\n')[1]})` : ''}`).join(' · ')}`);
    },
  },
  {
    name: 'create-pair-restricted',
    session: 'restricted',
    run: async (ctx) => {
      const { wb } = ctx;
      await wb.command('Notifications: Clear All Notifications');
      await wb.command('OOD Lens: Create Pair');
      const text = await wb.waitNotification('the Create Pair refusal in Restricted Mode', (t) => /Creating a pair/.test(t) && /trusted workspace/.test(t), 30_000);
      ctx.note(`notification: ${text}`);
      const button = wb.page.locator('.notification-list-item .monaco-button', { hasText: 'Manage Workspace Trust' }).first();
      assert(await button.isVisible().catch(() => false), 'the refusal has no "Manage Workspace Trust" button');
      await ctx.shot('refusal');
    },
  },
];

// ---------------------------------------------------------------------------------------------------------

function buildVsix(): string {
  if (process.env.OOD_LENS_E2E_VSIX) return resolve(process.env.OOD_LENS_E2E_VSIX);
  const started = Date.now();
  console.log('[e2e] npm run package');
  const r = spawnSync('npm', ['run', 'package'], { cwd: REPO, env: cleanEnv(), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) throw new Error(`npm run package failed:\n${out.slice(-3000)}`);
  const done = /Packaged: (\S+\.vsix) \((\d+) files, ([\d.]+ \w+)\)/.exec(out);
  const version = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version;
  const vsix = done?.[1] ?? join(REPO, `ood-lens-linux-x64-${version}.vsix`);
  console.log(`[e2e] VSIX ${vsix}${done ? ` (${done[2]} files, ${done[3]})` : ''} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return vsix;
}

/** What the VSIX holds: only what runs, this platform's binaries only, within 80 MB. */
function checkVsix(vsix: string): Result {
  const started = Date.now();
  const notes: string[] = [];
  try {
    const size = statSync(vsix).size;
    const list = spawnSync('unzip', ['-Z1', vsix], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    if (list.status !== 0) throw new Error(`unzip -Z1 ${vsix} failed: ${list.stderr}`);
    const files = list.stdout.split('\n').filter((f) => f && !f.endsWith('/'));
    notes.push(`${vsix}: ${(size / 1024 / 1024).toFixed(1)} MiB, ${files.length} entries`);
    assert(size <= 80 * 1024 * 1024, `the VSIX is ${(size / 1024 / 1024).toFixed(1)} MiB, over 80 MiB`);
    const required = [
      'extension/package.json', 'extension/dist/extension.js', 'extension/dist/worker.js', 'extension/dist/webview/inspect.js', 'extension/dist/webview/report.js',
      'extension/dist/tfjs-backend-wasm.wasm', 'extension/media/inspect.css', 'extension/models/mnist/ood-pair.json', 'extension/models/mnist/vae.onnx', 'extension/models/mnist/calibration.json',
      'extension/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node', 'extension/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1',
      'extension/node_modules/@vscode-elements/elements/dist/bundled.js', 'extension/LICENSE.txt',
      // The walkthrough's samples and pictures, and the icon.
      'extension/media/icon.png', 'extension/samples/fashion-test-00001.png', 'extension/samples/dataset.csv',
      'extension/media/screenshots/inspect-panel.png', 'extension/media/screenshots/report.png', 'extension/media/screenshots/manifest-hover.png', 'extension/media/screenshots/create-pair.png',
      // The documentation the docs links open (vsce renames README.md; oodLens.openDocs finds it either way).
      'extension/readme.md',
    ];
    // Every bundle scripts/build.mjs wrote (a new entry point must not be left out by .vscodeignore).
    // (cli.js and the bundles of its commands, cli-fit.js and cli-reproduce.js, are the npm package's command line;
    // the extension never runs them.)
    const bundles = readdirSync(join(REPO, 'dist')).filter((f) => f.endsWith('.js') && !/^cli(-[a-z]+)?\.js$/.test(f)).map((f) => `extension/dist/${f}`);
    for (const r of [...required, ...bundles]) assert(files.includes(r), `the VSIX lacks ${r}`);
    assert(files.some((f) => /^extension\/node_modules\/@img\/sharp-linux-x64\/.*\.node$/.test(f)), 'the VSIX lacks the sharp linux-x64 binary');
    assert(files.some((f) => /^extension\/node_modules\/@img\/sharp-libvips-linux-x64\/lib\/libvips-cpp\.so/.test(f)), 'the VSIX lacks libvips for linux-x64');
    const unwanted = files.filter((f) => /darwin|win32|arm64|musl|\.map$|\.ts$|\/src\/.*\.ts|-weights\.(bin|json)$|training-(log|metrics)|\/test\/|\.github|tsconfig/.test(f.replace(/^extension\/node_modules\/long\/src\//, '')));
    assert(!unwanted.length, `the VSIX holds files that do not run here: ${unwanted.slice(0, 10).join(', ')}${unwanted.length > 10 ? ', …' : ''}`);
    return { name: 'vsix-contents', status: 'passed', seconds: (Date.now() - started) / 1000, detail: '', notes };
  } catch (err) {
    return { name: 'vsix-contents', status: 'failed', seconds: (Date.now() - started) / 1000, detail: err instanceof Error ? err.message : String(err), notes };
  }
}

interface Result {
  name: string;
  status: 'passed' | 'failed' | 'skipped';
  seconds: number;
  detail: string;
  notes: string[];
}

async function runSession(session: Session, selected: Flow[], tools: E2eTools, browser: Browser, vsix: string, tmp: string, fx: Fixture, results: Result[]): Promise<void> {
  const mine = selected.filter((f) => f.session === session);
  if (!mine.length) return;
  const home = join(tmp, session);
  const extensionsDir = join(tmp, 'extensions');
  const userDataDir = join(home, 'user-data');
  mkdirSync(home, { recursive: true });
  if (!existsSync(join(extensionsDir, 'extensions.json'))) {
    const t0 = Date.now();
    installVsix(tools, vsix, extensionsDir, userDataDir, home);
    console.log(`[e2e] VSIX installed in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  let workspace = fx.root;
  if (session === 'cold') {
    // Images only: no manifest, no pair, nothing that activates the extension before the first right-click.
    workspace = join(tmp, 'cold-workspace');
    mkdirSync(workspace, { recursive: true });
    const images = readdirSync(join(fx.root, 'images')).filter((f) => f.startsWith('mnist-')).sort();
    images.forEach((f, i) => copyFileSync(join(fx.root, 'images', f), join(workspace, `cold-${i + 1}.png`)));
    // One more, checked first after Reload Window.
    copyFileSync(join(fx.root, 'images', images[0]), join(workspace, `cold-${images.length + 1}.png`));
  } else writeWorkspaceSettings(fx.root, session === 'restricted' ? { 'oodLens.pair': fx.workspacePair } : {});
  if (session === 'restricted') writeHostileKeybindings(userDataDir, fx);
  const t0 = Date.now();
  const server = await startCodeServer(tools, { workspace, extensionsDir, userDataDir, home, trust: session !== 'restricted' });
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  // tsx (esbuild, keepNames) wraps functions passed to evaluate() in __name(): define it in every frame.
  await context.addInitScript('globalThis.__name = globalThis.__name || ((f) => f);');
  const page = await context.newPage();
  const wb = new Workbench(page);
  try {
    // In the cold session the extension is not active yet: do not wait for its status bar item.
    await wb.open(server.url, session !== 'cold');
    console.log(`[e2e] ${session} session: workbench up in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    let firstRunWalkthrough: boolean | undefined;
    if (session === 'trusted') {
      // The extension opens its walkthrough once, on its first activation after install (these user-data folders are
      // fresh), a moment after activating: wait for it and close it, so that it cannot take the focus in the middle
      // of a flow (the palette, a hover). The walkthrough flow asserts that it came. (Not in the restricted session:
      // its first flow reads the notification shown at start, which closeEverything would clear.)
      firstRunWalkthrough = await until('the first-run walkthrough', async () => (await page.locator('.gettingStartedContainer').first().innerText().catch(() => '')).includes('Get started with OOD Lens'), 60_000).then(
        () => true,
        () => false,
      );
      console.log(`[e2e] ${session} session: the walkthrough ${firstRunWalkthrough ? 'opened by itself (first activation)' : 'did not open by itself within 60 s'}`);
      await wb.closeEverything();
    }
    for (const flow of mine) {
      const started = Date.now();
      const notes: string[] = [];
      const shot = async (suffix?: string) => {
        await wb.screenshot(join(RESULTS, `e2e-${flow.name}${suffix ? `-${suffix}` : ''}.png`)).catch(() => undefined);
      };
      const ctx: Ctx = { wb, fx, server, shot, note: (t) => notes.push(t), firstRunWalkthrough };
      let status: Result['status'] = 'passed';
      let detail = '';
      try {
        await flow.run(ctx);
      } catch (err) {
        status = err instanceof Skip ? 'skipped' : 'failed';
        detail = err instanceof Error ? err.message : String(err);
      }
      await shot();
      const seconds = (Date.now() - started) / 1000;
      results.push({ name: flow.name, status, seconds, detail, notes });
      console.log(`[e2e] ${status === 'passed' ? 'PASS' : status === 'skipped' ? 'SKIP' : 'FAIL'} ${flow.name} (${seconds.toFixed(1)} s)${detail ? `: ${detail}` : ''}`);
      for (const n of notes) console.log(`         ${n}`);
      await wb.closeEverything().catch(() => undefined);
    }
  } catch (err) {
    // The workbench itself did not come up: every flow of this session fails with that reason.
    await wb.screenshot(join(RESULTS, `e2e-${session}-session.png`)).catch(() => undefined);
    const detail = `${session} session: ${err instanceof Error ? err.message : String(err)}`;
    for (const flow of mine) if (!results.some((r) => r.name === flow.name)) results.push({ name: flow.name, status: 'failed', seconds: 0, detail, notes: [] });
    console.log(`[e2e] ${detail}`);
  } finally {
    await context.close().catch(() => undefined);
    await server.stop();
    writeFileSync(join(RESULTS, `e2e-${session}-code-server.log`), server.log());
    const logs = join(userDataDir, 'logs');
    if (existsSync(logs)) {
      // The extension's own log channel (OOD Lens.log) of this session, for failures.
      const found = spawnSync('find', [logs, '-name', '*OOD Lens*.log'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
      if (found.length) writeFileSync(join(RESULTS, `e2e-${session}-ood-lens.log`), found.map((f) => readFileSync(f, 'utf8')).join('\n'));
    }
  }
}

async function main(): Promise<number> {
  const t0 = Date.now();
  mkdirSync(RESULTS, { recursive: true });
  for (const f of readdirSync(RESULTS)) if (f.startsWith('e2e-')) rmSync(join(RESULTS, f), { force: true });
  const only = (process.env.OOD_LENS_E2E_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = only.filter((n) => n !== 'vsix-contents' && !flows.some((f) => f.name === n));
  if (unknown.length) throw new Error(`OOD_LENS_E2E_ONLY: unknown flows ${unknown.join(', ')} (known: vsix-contents, ${flows.map((f) => f.name).join(', ')})`);
  // OOD_LENS_E2E_SKIP: flows left out and named in the output (CI skips a flow only while it is a known, filed gap).
  const skip = (process.env.OOD_LENS_E2E_SKIP ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of skip) console.log(`[e2e] SKIPPED ${n} (OOD_LENS_E2E_SKIP)`);
  const selected = (only.length ? flows.filter((f) => only.includes(f.name)) : flows).filter((f) => !skip.includes(f.name));

  const tools = ensureTools();
  const tSetup = Date.now();
  let pw: typeof import('playwright-core');
  try {
    pw = require('playwright-core');
  } catch {
    console.log('[e2e] playwright-core is missing: npm install -D playwright-core');
    const r = spawnSync('npm', ['install', '-D', '--no-audit', '--no-fund', 'playwright-core'], { cwd: REPO, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm install -D playwright-core failed');
    pw = require('playwright-core');
  }
  const vsix = buildVsix();
  const tBuild = Date.now();

  const tmp = mkdtempSync(join(tmpdir(), 'ood-lens-e2e-'));
  const fx = await writeFixture(join(tmp, 'workspace'));
  const browser = await pw.chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  const results: Result[] = [];
  if (!only.length || only.includes('vsix-contents')) {
    const r = checkVsix(vsix);
    results.push(r);
    console.log(`[e2e] ${r.status === 'passed' ? 'PASS' : 'FAIL'} vsix-contents${r.detail ? `: ${r.detail}` : ''}`);
    for (const n of r.notes) console.log(`         ${n}`);
  }
  try {
    await runSession('trusted', selected, tools, browser, vsix, tmp, fx, results);
    await runSession('restricted', selected, tools, browser, vsix, tmp, fx, results);
    await runSession('cold', selected, tools, browser, vsix, tmp, fx, results);
  } finally {
    await browser.close().catch(() => undefined);
    if (process.env.OOD_LENS_E2E_KEEP) console.log(`[e2e] kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }

  const passed = results.filter((r) => r.status === 'passed').length;
  const failed = results.filter((r) => r.status === 'failed').length;
  const skipped = results.filter((r) => r.status === 'skipped');
  console.log('');
  console.log(`[e2e] setup ${((tSetup - t0) / 1000).toFixed(0)} s · VSIX ${((tBuild - tSetup) / 1000).toFixed(0)} s · flows ${((Date.now() - tBuild) / 1000).toFixed(0)} s · screenshots in ${RESULTS}`);
  for (const r of results) console.log(`  ${r.status.padEnd(7)} ${r.name}${r.detail ? ` — ${r.detail.split('\n')[0]}` : ''}`);
  if (skipped.length) console.log(`${skipped.length} skipped`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed || results.length === 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`[e2e] ${err instanceof Error ? err.stack ?? err.message : err}`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  },
);
