/**
 * The Create Pair result panel's script (bundled by esbuild into dist/webview/fitResult.js): the held-out
 * false-alarm figure, accuracy and split, one Chart.js histogram per calibrated score (calibration part, and
 * the held-out check part when fit reports it) with the score at which that test fires drawn as a line, what
 * fit read and decided, and buttons for what comes next. All text through textContent.
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip, type Plugin } from 'chart.js';
import { blindConfidenceWarning, cannotFireWarning, sharesSentence, falseAlarmSentence, type FitReport, type FitResultToHost, type FitResultViewState, type HostToFitResult, percent, type ScoreHistogram } from '../../shared/fitReport';
import { cssVar, el } from './dom';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip, Legend);

declare function acquireVsCodeApi(): { postMessage(m: FitResultToHost): void; getState(): FitResultViewState | undefined; setState(s: FitResultViewState): void };
const vscode = acquireVsCodeApi();
const post = (m: FitResultToHost) => vscode.postMessage(m);
const charts: Chart[] = [];

const nf = new Intl.NumberFormat('en-US');

function fmt(x: number): string {
  const a = Math.abs(x);
  if (a !== 0 && (a < 0.001 || a >= 1e5)) return x.toExponential(2);
  return a >= 100 ? x.toFixed(0) : a >= 1 ? x.toFixed(2) : x.toFixed(3);
}

/** The manifest as "pairs/text-lines/ood-pair.json": the pair folder's parent and below, never a machine's full path. */
function shortPath(r: FitReport): string {
  const parts = r.manifestPath.split(/[/\\]/);
  return parts.slice(-3).join('/');
}

function button(text: string, message: FitResultToHost, secondary = true): HTMLElement {
  const b = document.createElement('vscode-button');
  if (secondary) b.setAttribute('secondary', '');
  b.textContent = text;
  b.addEventListener('click', () => post(message));
  return b;
}

/** Draws the firing threshold as a vertical dashed line at its position along the bins. */
function thresholdLine(h: ScoreHistogram, colour: string): Plugin<'bar'> {
  return {
    id: `threshold-${h.score}`,
    afterDatasetsDraw(chart) {
      if (h.threshold === null) return;
      const x = chart.scales.x;
      const pos = (h.threshold - h.min) / h.binWidth; // in bins from the left edge
      const left = x.getPixelForValue(0) - (x.getPixelForValue(1) - x.getPixelForValue(0)) / 2;
      const px = left + pos * (x.getPixelForValue(1) - x.getPixelForValue(0));
      const { top, bottom } = chart.chartArea;
      const ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = colour;
      ctx.setLineDash([5, 4]);
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(px, top);
      ctx.lineTo(px, bottom);
      ctx.stroke();
      ctx.restore();
    },
  };
}

function histogramCard(h: ScoreHistogram, alpha: number): HTMLElement {
  const card = el('section', 'histogram');
  card.dataset.score = h.score;
  card.append(el('h3', undefined, h.label));
  const side = h.oodWhen === 'low' ? 'Low' : 'High';
  const rule =
    h.share <= 0
      ? `${side} is out-of-distribution; this score is not part of the pair's verdict rule.`
      : `${side} is out-of-distribution; it fires at p < ${fmt(h.share * alpha)}: ${
          h.threshold === null ? 'the calibration part is too small for it ever to fire' : `images ${h.oodWhen === 'low' ? 'below' : 'above'} ${fmt(h.threshold)} are flagged (dashed line)`
        }.`;
  card.append(el('p', 'muted', rule));
  const wrap = el('div', 'chart');
  const canvas = el('canvas');
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `Histogram of ${h.label}: ${h.calibrationCount} calibration images${h.check ? ` and ${h.checkCount} held-out images` : ''}`);
  wrap.append(canvas);
  card.append(wrap);
  const fg = cssVar('--vscode-foreground', '#ccc');
  const grid = cssVar('--vscode-editorWidget-border', 'rgba(128,128,128,0.3)');
  const calColour = cssVar('--vscode-charts-blue', '#3794ff');
  const checkColour = cssVar('--vscode-charts-orange', '#d18616');
  const lineColour = cssVar('--vscode-charts-red', '#f14c4c');
  const labels = Array.from({ length: h.bins }, (_, i) => fmt(h.min + (i + 0.5) * h.binWidth));
  // Shares of each part, so that parts of different sizes compare.
  const norm = (counts: number[], n: number) => counts.map((c) => (n ? c / n : 0));
  const datasets = [{ label: `calibration (${nf.format(h.calibrationCount)})`, data: norm(h.calibration, h.calibrationCount), backgroundColor: calColour, borderWidth: 0, barPercentage: 1, categoryPercentage: 1 }];
  if (h.check) datasets.push({ label: `held-out check (${nf.format(h.checkCount)})`, data: norm(h.check, h.checkCount), backgroundColor: checkColour + 'b0', borderWidth: 0, barPercentage: 1, categoryPercentage: 1 });
  charts.push(
    new Chart(canvas, {
      type: 'bar',
      data: { labels, datasets },
      plugins: [thresholdLine(h, lineColour)],
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: false, ticks: { color: fg, maxRotation: 0, autoSkip: true }, grid: { display: false }, title: { display: true, text: h.label, color: fg } },
          y: { ticks: { color: fg, callback: (v) => `${Math.round(Number(v) * 100)}%` }, grid: { color: grid }, title: { display: true, text: 'share of images', color: fg } },
        },
        plugins: {
          legend: { display: true, labels: { color: fg } },
          tooltip: {
            callbacks: {
              title: (items) => {
                const i = items[0]?.dataIndex ?? 0;
                return `${fmt(h.min + i * h.binWidth)} – ${fmt(h.min + (i + 1) * h.binWidth)}`;
              },
              label: (item) => `${item.dataset.label}: ${percent(Number(item.raw))}`,
            },
          },
        },
      },
    }),
  );
  return card;
}

/** The VAE: fit's training record (epochs, loss per epoch, time, held-out ELBO) and held-out images beside their reconstructions. */
function vaeSection(r: FitReport): HTMLElement {
  const v = r.vae!;
  const section = el('section', 'vae');
  section.id = 'vae';
  section.append(el('h2', undefined, v.training ? 'The VAE fit trained' : 'The VAE'));
  if (v.training) {
    const line = el('p', 'vae-training', v.training.line);
    line.id = 'vae-training';
    section.append(line);
    const curve = el('p', 'muted', `Loss per epoch (negative ELBO, nats): ${v.training.lossCurve.map((l) => fmt(l)).join(' · ')}`);
    curve.id = 'vae-loss-curve';
    section.append(curve);
  }
  if (!v.samples.length) {
    section.append(el('p', 'muted', `No reconstruction to show${v.samplesError ? `: ${v.samplesError}` : ''}.`));
    return section;
  }
  section.append(el('p', 'muted', 'Held-out images (never trained on) as the VAE sees them, and its reconstruction of each:'));
  const row = el('div', 'vae-samples');
  for (const s of v.samples) {
    const fig = el('figure', 'vae-sample');
    const name = s.path.split(/[/\\]/).pop() ?? s.path;
    const scale = Math.max(1, Math.floor(96 / Math.max(s.width, s.height)));
    for (const [png, cls, what] of [[s.inputPng, 'vae-input', 'the image'], [s.reconstructionPng, 'vae-reconstruction', 'its reconstruction']] as const) {
      const img = document.createElement('img');
      img.className = cls;
      img.src = `data:image/png;base64,${png}`;
      img.width = s.width * scale;
      img.height = s.height * scale;
      img.alt = `${name}: ${what} (${s.width}×${s.height})`;
      fig.append(img);
    }
    fig.append(el('figcaption', undefined, `${name}${s.elbo !== null ? ` · ELBO ${fmt(s.elbo)}` : ''}`));
    row.append(fig);
  }
  section.append(row);
  return section;
}

function render(s: FitResultViewState): void {
  const r: FitReport = s.report;
  for (const c of charts.splice(0)) c.destroy();
  const app = document.getElementById('app')!;
  app.replaceChildren();
  app.setAttribute('aria-busy', 'false');

  app.append(el('h1', undefined, `Pair ${r.name}`));
  const meta = el('p', 'meta');
  const state = s.selected ? ['selected', 'Selected as the active pair'] : s.kept ? ['kept', 'Written; not selected, as you chose (Select Pair… chooses it)'] : ['not-selected', 'Written, but not loaded (see the OOD Lens log)'];
  meta.append(el('span', state[0], state[1]), document.createTextNode(` · ${shortPath(r)}`));
  app.append(meta);

  const figure = el('section', 'figure');
  const fa = el('p', 'false-alarms', falseAlarmSentence(r));
  fa.id = 'false-alarms';
  fa.dataset.rate = String(r.falseAlarmRate);
  figure.append(fa);
  const expected = el('p', 'muted', `Conformal calibration keeps false alarms at about α or below (${percent(r.alpha)}) on images like the calibration part; the check part was never used for calibration.`);
  figure.append(expected);
  const shares = el('p', 'shares', sharesSentence(r.histograms, r.alpha));
  shares.id = 'shares';
  figure.append(shares);
  const cannotFire = cannotFireWarning(r);
  if (cannotFire) {
    const b = el('p', 'banner', cannotFire);
    b.id = 'cannot-fire';
    figure.append(b);
  }
  const msp = r.histograms.find((h) => h.score === 'msp');
  const blind = msp ? blindConfidenceWarning(msp.threshold, msp.share, r.classes, { count: r.parts.calibration, alpha: r.alpha }) : null;
  if (blind) {
    const b = el('p', 'banner', blind);
    b.id = 'blind-test';
    figure.append(b);
  }
  if (r.falseAlarmRate > 2 * r.alpha + 0.01) {
    figure.append(el('p', 'banner', `The false-alarm rate is well above α: the held-out images may differ from the calibration part (different sources mixed in the data?), or there are too few of them for a stable figure.`));
  }
  if (r.heldOutAccuracy !== null) {
    const acc = el('p', r.heldOutAccuracy < 0.5 ? 'banner' : 'accuracy', `Classifier accuracy on the held-out part: ${percent(r.heldOutAccuracy)}${r.heldOutAccuracy < 0.5 ? ' — far below what a working classifier gets: check the input scaling and the class order' : ''}`);
    acc.id = 'accuracy';
    figure.append(acc);
  }
  figure.append(el('p', 'muted', `Split (seeded, recorded in split.json): ${nf.format(r.parts.fit)} fit · ${nf.format(r.parts.calibration)} calibration · ${nf.format(r.parts.check)} held-out check. ${r.classifierOnly ? 'Classifier-only pair (no VAE).' : 'Classifier + VAE pair.'} Took ${r.seconds.toFixed(1)} s.`));
  if (r.failed) figure.append(el('p', 'banner', `${nf.format(r.failed)} image(s) could not be scored and were left out, e.g. ${r.failures.slice(0, 3).map((f) => `${f.path}: ${f.error}`).join('; ')}`));
  app.append(figure);

  const actions = el('div', 'actions');
  actions.append(button('Open ood-pair.json', { type: 'openManifest' }, false), button('Score a folder…', { type: 'scoreFolder' }), button('Select another pair…', { type: 'selectPair' }));
  app.append(actions);

  if (r.vae) app.append(vaeSection(r));

  const hs = el('section', 'histograms');
  hs.append(el('h2', undefined, 'Scores'));
  if (!r.histograms.length) hs.append(el('p', 'muted', 'No calibrated scores to show.'));
  for (const h of r.histograms) hs.append(histogramCard(h, r.alpha));
  app.append(hs);

  const details = el('details', 'decisions');
  details.append(el('summary', undefined, 'What fit read and decided'));
  const ol = el('ul');
  for (const line of r.decisions) ol.append(el('li', undefined, line));
  details.append(ol);
  app.append(details);
}

window.addEventListener('message', (event: MessageEvent<HostToFitResult>) => {
  const m = event.data;
  if (m?.type !== 'load') return;
  const s: FitResultViewState = { report: m.report, selected: m.selected, kept: m.kept === true };
  vscode.setState(s);
  render(s);
});

const saved = vscode.getState();
if (saved) render(saved);
post({ type: 'ready' });
