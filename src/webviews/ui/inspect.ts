/**
 * Browser side of the Inspect panel: renders one row per image (original, model input, reconstruction,
 * error heatmap, softmax chart, ELBO on the calibration histogram, p-values and the verdict sentence).
 * Bundled by esbuild (IIFE) with Chart.js; no eval, no inline styles, so it runs under the panel's CSP.
 */
import { BarController, BarElement, CategoryScale, Chart, type ChartConfiguration, LinearScale, type Plugin, Tooltip } from 'chart.js';
// The two @vscode-elements controls this panel uses, bundled here: the library's whole bundle (233 KB, a second
// script) was parsed before the panel could show its first verdict on a cold start.
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-progress-ring/index.js';
import type { CalibrationHistogram, InspectResult } from '../../shared/engineProtocol';
import type { HostToInspect, InspectPersistedState, InspectRow, InspectToHost, InspectViewState } from '../../shared/inspectProtocol';
import { ruleShares, TEST_LABELS, TEST_NAMES } from '../../shared/rules';
import { formatMsp, formatNats, headlineP, testPLabel } from '../../shared/format';
import { elboBreakdown, predictionText, verdictText } from './verdictText';
import { cssVar, el } from './dom';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip);

interface VsCodeApi {
  postMessage(message: InspectToHost): void;
  getState(): InspectPersistedState | undefined;
  setState(state: InspectPersistedState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();
let view: InspectViewState = vscode.getState()?.view ?? { version: 1, rows: [], pair: null, pairError: null, restricted: false };
const charts = new Map<string, Chart[]>();

function post(message: InspectToHost): void {
  vscode.postMessage(message);
}

function save(): void {
  // Large originals stay out of the saved state (the host sends them again when the panel comes back).
  const rows = view.rows.map((r) => (r.originalSrc && r.originalSrc.length > 1_500_000 ? { ...r, originalSrc: null } : r));
  vscode.setState({ version: 1, paths: view.rows.map((r) => r.path), view: { ...view, rows } });
}

// ---------- small DOM helpers (textContent only: file names and messages are never parsed as HTML) ----------

function button(label: string, onClick: () => void, options: { secondary?: boolean; title?: string; className?: string } = {}): HTMLElement {
  const b = document.createElement('vscode-button');
  b.textContent = label;
  if (options.secondary) b.setAttribute('secondary', '');
  if (options.title) b.setAttribute('title', options.title);
  if (options.className) b.className = options.className;
  b.addEventListener('click', onClick);
  return b;
}

function themeColours() {
  return {
    foreground: cssVar('--vscode-foreground', '#cccccc'),
    muted: cssVar('--vscode-descriptionForeground', '#999999'),
    grid: cssVar('--vscode-editorWidget-border', cssVar('--vscode-panel-border', 'rgba(128,128,128,0.35)')),
    bar: cssVar('--vscode-charts-blue', '#3794ff'),
    highlight: cssVar('--vscode-charts-orange', '#d18616'),
    ok: cssVar('--vscode-charts-green', '#89d185'),
    warn: cssVar('--vscode-charts-red', '#f14c4c'),
    font: cssVar('--vscode-font-family', 'sans-serif'),
  };
}

function pngSrc(base64: string | undefined): string | null {
  return base64 ? `data:image/png;base64,${base64}` : null;
}

function figure(kind: string, caption: string, src: string | null, alt: string, pixelated: boolean): HTMLElement {
  const f = el('figure', `image ${kind}`);
  if (src) {
    const img = el('img', pixelated ? 'pixelated' : undefined);
    img.src = src;
    img.alt = alt;
    f.append(img);
  } else {
    f.append(el('div', 'no-image', 'not available'));
  }
  f.append(el('figcaption', undefined, caption));
  return f;
}

// ---------- charts ----------

function softmaxChart(canvas: HTMLCanvasElement, labels: string[], probabilities: number[], predicted: number | null): Chart {
  const c = themeColours();
  const config: ChartConfiguration<'bar'> = {
    type: 'bar',
    data: {
      labels,
      datasets: [
        {
          label: 'softmax probability',
          data: probabilities,
          backgroundColor: probabilities.map((_, i) => (i === predicted ? c.highlight : c.bar)),
          borderWidth: 0,
        },
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      // Many classes (ImageNet) read better as horizontal bars.
      indexAxis: labels.length > 20 ? 'y' : 'x',
      scales: {
        x: { ticks: { color: c.muted, autoSkip: true, maxRotation: 60 }, grid: { color: c.grid } },
        y: { ticks: { color: c.muted }, grid: { color: c.grid }, ...(labels.length > 20 ? {} : { min: 0, max: 1 }) },
      },
      plugins: {
        tooltip: { callbacks: { label: (ctx) => `${(Number(ctx.raw) * 100).toFixed(2)}%` } },
      },
    },
  };
  return new Chart(canvas, config);
}

/** Where the image's ELBO falls: a vertical marker with its value, clamped to the plot when far outside. */
/** What a calibration chart shows: the ELBO (nats, low is suspicious) or the KNN distance (high is suspicious). */
interface ChartScore {
  name: string;
  axis: string;
  format: (x: number) => string;
}
const ELBO_SCORE: ChartScore = { name: 'ELBO', axis: 'ELBO (nats) — higher is more typical', format: formatNats };
const KNN_SCORE: ChartScore = { name: 'KNN distance', axis: 'KNN distance in feature space — lower is more typical', format: (x) => (Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(3)) };

function markerPlugin(elbo: number, colour: string, font: string, score: ChartScore = ELBO_SCORE): Plugin<'bar'> {
  const formatNats = score.format;
  return {
    id: 'elboMarker',
    afterDatasetsDraw(chart) {
      const x = chart.scales.x;
      const area = chart.chartArea;
      const ctx = chart.ctx;
      let px = x.getPixelForValue(elbo);
      let label = `this image: ${formatNats(elbo)}`;
      if (px < area.left) {
        px = area.left + 1;
        label = `◀ this image: ${formatNats(elbo)} (far below)`;
      } else if (px > area.right) {
        px = area.right - 1;
        label = `this image: ${formatNats(elbo)} (above) ▶`;
      }
      ctx.save();
      ctx.strokeStyle = colour;
      ctx.lineWidth = 2;
      ctx.setLineDash([5, 3]);
      ctx.beginPath();
      ctx.moveTo(px, area.top);
      ctx.lineTo(px, area.bottom);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = colour;
      ctx.font = `12px ${font}`;
      const width = ctx.measureText(label).width;
      const textX = px + 4 + width > area.right ? px - 4 - width : px + 4;
      ctx.fillText(label, textX, area.top + 12);
      ctx.restore();
    },
  };
}

function elboChart(canvas: HTMLCanvasElement, hist: CalibrationHistogram, elbo: number | null, tone: 'ok' | 'warn' | 'info' | 'error', score: ChartScore = ELBO_SCORE): Chart {
  const c = themeColours();
  const formatNats = score.format;
  const centres = hist.counts.map((_, i) => hist.min + (i + 0.5) * hist.binWidth);
  const span = hist.max - hist.min;
  let min = hist.min - 0.02 * span;
  let max = hist.max + 0.02 * span;
  // Stretch the axis to show the image's ELBO when it is near; far outliers are drawn at the edge.
  if (elbo !== null && elbo < min && elbo > hist.min - 0.6 * span) min = elbo - 0.04 * span;
  if (elbo !== null && elbo > max && elbo < hist.max + 0.6 * span) max = elbo + 0.04 * span;
  const markerColour = tone === 'warn' ? c.warn : tone === 'ok' ? c.ok : c.highlight;
  const config: ChartConfiguration<'bar', { x: number; y: number }[]> = {
    type: 'bar',
    data: {
      datasets: [
        {
          label: 'held-out training images',
          data: centres.map((x, i) => ({ x, y: hist.counts[i] })),
          backgroundColor: c.bar,
          borderWidth: 0,
          barPercentage: 1,
          categoryPercentage: 1,
        },
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        x: {
          type: 'linear',
          min,
          max,
          title: { display: true, text: score.axis, color: c.muted },
          // Round labels; the axis ends (min/max) would otherwise show every decimal.
          ticks: { color: c.muted, callback: (value) => (score === ELBO_SCORE ? formatNats(Math.round(Number(value))).replace(/\.0$/, '') : formatNats(Number(value))) },
          grid: { color: c.grid },
        },
        y: { title: { display: true, text: 'calibration images', color: c.muted }, ticks: { color: c.muted, precision: 0 }, grid: { color: c.grid } },
      },
      plugins: {
        tooltip: {
          callbacks: {
            title: (items) => {
              const i = items[0]?.dataIndex ?? 0;
              const lo = hist.min + i * hist.binWidth;
              return `${score.name} ${formatNats(lo)} … ${formatNats(lo + hist.binWidth)}`;
            },
            label: (ctx) => `${(ctx.raw as { y: number }).y} calibration images`,
          },
        },
      },
    },
    plugins: elbo !== null ? [markerPlugin(elbo, markerColour, c.font, score)] : [],
  };
  return new Chart(canvas, config);
}

// ---------- rendering ----------

function renderPairBar(): void {
  const bar = document.getElementById('pair-bar')!;
  bar.replaceChildren();
  const p = view.pair;
  const text = el('span', 'pair-text');
  if (view.pairError) {
    bar.classList.add('error');
    text.append(el('strong', undefined, 'The pair could not be loaded: '), document.createTextNode(view.pairError), document.createTextNode(' — choose a working pair (Change pair…) or see how to make one.'));
  } else if (p) {
    bar.classList.remove('error');
    text.append(el('span', 'pair-label', 'Pair '), el('strong', 'pair-name', p.name));
    const facts = [
      `backend ${p.backend}`,
      `execution provider ${p.provider.toUpperCase()}`,
      `α = ${p.alpha}`,
      `rule: ${p.rule}`,
      p.calibrated ? `calibrated on ${p.calibrationCount.toLocaleString('en-US')} images` : 'not calibrated',
    ];
    text.append(el('span', 'pair-facts', ` · ${facts.join(' · ')}`));
    // fit's feeding check: a pair written with --force, or whose classifier read its check images badly.
    if (p.fitCheck?.warning) text.append(el('div', 'pair-warning', `⚠ ${p.fitCheck.warning}`));
    text.title = p.manifestPath;
  } else {
    text.append(el('span', undefined, 'Loading the pair…'));
  }
  if (view.restricted) text.append(el('span', 'restricted', ' · Restricted Mode: the built-in pair runs'));
  const actions = el('span', 'actions');
  const pinned = !!view.pinned;
  actions.append(
    button(view.rows.length > 1 ? 'Score all again' : 'Score again', () => post({ type: 'rerun' }), { title: 'Score every image in this panel again', className: 'rerun-all' }),
    button(pinned ? 'Unpin panel' : 'Pin panel', () => post({ type: 'togglePin' }), {
      secondary: true,
      className: 'pin',
      title: pinned ? 'Let the next check reuse this panel' : 'Keep these images here: the next check opens its own panel',
    }),
    button('Change pair…', () => post({ type: 'selectPair' }), { secondary: true }),
    ...(view.pairError ? [button('How to make a pair', () => post({ type: 'openDocs' }), { secondary: true, className: 'docs' })] : []),
    button('Show log', () => post({ type: 'showLog' }), { secondary: true }),
  );
  bar.append(text, actions);
}

function destroyCharts(path: string): void {
  for (const c of charts.get(path) ?? []) c.destroy();
  charts.delete(path);
}

function rowId(path: string): string {
  let h = 0;
  for (let i = 0; i < path.length; i++) h = (Math.imul(h, 31) + path.charCodeAt(i)) | 0;
  return `row-${(h >>> 0).toString(36)}`;
}

/** "p = 0.00044 (verdict) · ELBO test p = 0.0002 · …": the verdict's p-value first, each test's under its name. */
function pValueText(r: InspectResult): string {
  const tests: string[] = [];
  for (const test of TEST_NAMES) {
    const p = r.pValues[test];
    if (p !== null && p !== undefined) tests.push(testPLabel(test, p));
  }
  if (r.pValue === null && !tests.length) return 'p-value: none (the pair is not calibrated)';
  const several = !!view.pair && Object.keys(view.pair.shares ?? ruleShares(view.pair.rule, undefined)).length > 1;
  const parts = [`${headlineP(r.pValue)} (verdict)`, ...(several ? tests : [])];
  const fired = r.firedBy.length ? `fired: ${r.firedBy.map((f) => TEST_LABELS[f].name).join(' and ')}` : 'no test fired';
  return `${parts.join(' · ')} · ${fired}`;
}

function renderRow(row: InspectRow): HTMLElement {
  destroyCharts(row.path);
  const section = el('section', `row status-${row.status}`);
  section.id = rowId(row.path);
  section.dataset.path = row.path;

  const header = el('header', 'row-header');
  const title = el('div', 'row-title');
  title.append(el('h2', 'file-name', row.name), el('span', 'file-path', row.displayPath));
  const actions = el('div', 'actions');
  actions.append(
    ...(view.rows.length > 1 ? [button('Score this image again', () => post({ type: 'rerun', path: row.path }), { secondary: true, className: 'rerun' })] : []),
    button('Open image', () => post({ type: 'openImage', path: row.path }), { secondary: true, className: 'open-image' }),
    button('Reveal in Explorer', () => post({ type: 'revealInExplorer', path: row.path }), { secondary: true }),
  );
  header.append(title, actions);
  section.append(header);

  if (row.status === 'queued' || row.status === 'scoring') {
    const busy = el('div', 'busy');
    busy.append(document.createElement('vscode-progress-ring'), el('span', undefined, row.status === 'queued' ? 'Waiting…' : 'Scoring…'));
    section.append(busy);
    if (!row.result) return section;
  }

  if (row.status === 'failed' || !row.result) {
    const banner = el('div', 'verdict-banner tone-error');
    banner.append(el('span', 'verdict-headline', 'Could not score'), el('p', 'verdict', row.failure ?? 'No result.'));
    section.append(banner);
    return section;
  }

  const r = row.result;
  const pair = view.pair;
  const ctx = { alpha: pair?.alpha ?? 0.01, rule: pair?.rule ?? 'all', shares: pair?.shares, calibrationCount: pair?.calibrationCount ?? 0, pairDir: pair ? pair.manifestPath.replace(/[/\\]ood-pair\.json$/, '') : undefined };
  const v = verdictText(r, ctx);
  const banner = el('div', `verdict-banner tone-${v.tone}`);
  banner.dataset.verdict = r.verdict;
  const sentence = el('p', 'verdict');
  // Backticks mark a command line in the uncalibrated sentence.
  v.sentence.split('`').forEach((part, i) => sentence.append(i % 2 ? el('code', undefined, part) : document.createTextNode(part)));
  const headline = el('div', 'verdict-head');
  // A shape beside the colour, so the verdict does not rest on colour alone.
  const icon = el('span', 'verdict-icon', v.tone === 'ok' ? '✓' : v.tone === 'warn' ? '⚠' : v.tone === 'error' ? '✕' : 'ℹ');
  icon.setAttribute('aria-hidden', 'true');
  headline.append(icon, el('span', 'verdict-headline', v.headline));
  if (v.p) headline.append(el('span', 'verdict-p', v.p));
  banner.append(headline, sentence);
  section.append(banner);
  if (r.verdict === 'error') return section;

  const { width, height } = pair?.input ?? { width: 0, height: 0 };
  // A VAE of its own size reconstructs at that size.
  const vaeSize = pair?.vaeInput ? ` (${pair.vaeInput.width}×${pair.vaeInput.height})` : '';
  const images = el('div', 'images');
  const original = row.originalSrc ?? pngSrc(r.modelInputPng);
  // A classifier-only pair has no reconstruction, error heatmap or ELBO: none of their frames is drawn.
  const withVae = pair?.hasVae !== false;
  images.append(
    figure('original', row.originalSrc ? 'Original' : 'Original (model input shown: format or size not displayable here)', original, `${row.name} as stored`, !row.originalSrc),
    figure('model-input', `Model input${width ? ` (${width}×${height}, width × height)` : ''}`, pngSrc(r.modelInputPng), 'the image as the model sees it', true),
  );
  if (withVae) {
    images.append(
      figure('reconstruction', `VAE reconstruction${vaeSize}`, pngSrc(r.reconstructionPng), 'the VAE reconstruction', true),
      figure('heatmap', '|input − reconstruction|', pngSrc(r.errorHeatmapPng), 'per-pixel reconstruction error heatmap', true),
    );
    const legend = el('div', 'heat-legend');
    legend.append(el('span', undefined, '0'), el('span', 'heat-gradient'), el('span', undefined, '255'));
    images.querySelector('.heatmap')?.append(legend);
  }
  section.append(images);
  if (pair?.vaeTraining) section.append(el('p', 'vae-training', pair.vaeTraining));

  const panels = el('div', 'panels');
  const classifier = el('div', 'panel classifier');
  classifier.append(el('h3', undefined, 'Classifier'));
  const prediction = el('p', 'prediction');
  prediction.append(el('span', 'prediction-label', `Predicted ${r.label ?? '?'}`), document.createTextNode(` · MSP ${formatMsp(r.msp)}`));
  classifier.append(prediction);
  const labels = pair?.labels ?? (r.probabilities ?? []).map((_, i) => String(i));
  const softmaxBox = el('div', `chart-box softmax${labels.length > 20 ? ' tall' : ''}`);
  const softmaxCanvas = el('canvas');
  softmaxCanvas.setAttribute('role', 'img');
  softmaxCanvas.setAttribute('aria-label', `Softmax probabilities over ${labels.length} classes`);
  softmaxBox.append(softmaxCanvas);
  classifier.append(softmaxBox);
  if (r.probabilities) {
    const top = r.probabilities
      .map((p, i) => ({ p, label: labels[i] ?? String(i) }))
      .sort((a, b) => b.p - a.p)
      .slice(0, 3);
    classifier.append(el('p', 'softmax-top', `Top classes: ${top.map((t) => `${t.label} ${formatMsp(t.p)}`).join(' · ')}`));
  }
  if (r.entropy !== null && r.energy !== null) classifier.append(el('p', 'muted', `Entropy ${r.entropy.toFixed(3)} nats · energy ${r.energy.toFixed(2)}`));

  // The second panel shows the pair's own distance test: the VAE's ELBO, or (no VAE) the KNN distance.
  const vae = el('div', withVae ? 'panel vae' : 'panel knn');
  const histBox = el('div', `chart-box ${withVae ? 'elbo-histogram' : 'knn-histogram'}`);
  const knnHist = pair?.calibrationKnn ?? null;
  const hist = withVae ? pair?.calibrationElbo ?? null : knnHist;
  const chartValue = withVae ? r.elbo : r.knnDistance ?? null;
  if (withVae) {
    vae.append(el('h3', undefined, 'VAE likelihood'));
    vae.append(el('p', 'elbo', elboBreakdown(r)));
  } else {
    vae.append(el('h3', undefined, knnHist ? 'Feature distance (KNN test)' : 'Tests'));
    if (knnHist) vae.append(el('p', 'knn', `KNN distance ${r.knnDistance === null || r.knnDistance === undefined ? 'not available' : KNN_SCORE.format(r.knnDistance)}: how far the classifier's features for this image are from the nearest training image's`));
  }
  if (hist) {
    const canvas = el('canvas');
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `Histogram of ${hist.count} calibration ${withVae ? 'ELBOs' : 'KNN distances'} with this image's marked`);
    histBox.append(canvas);
    vae.append(histBox);
    const f = withVae ? formatNats : KNN_SCORE.format;
    vae.append(el('p', 'muted calibration-range', `Held-out training images: median ${withVae ? 'ELBO' : 'KNN distance'} ${f(hist.p50)}, 1st–99th percentile ${f(hist.p01)} … ${f(hist.p99)}`));
  }
  for (const w of pair?.warnings ?? []) vae.append(el('p', 'pair-warning', `⚠ ${w}`));
  vae.append(el('p', 'p-value', pValueText(r)));
  if (v.tests.length) {
    const list = el('ul', 'tests');
    for (const t of v.tests) list.append(el('li', undefined, t));
    vae.append(list);
  }
  if (r.logPxBound !== null) vae.append(el('p', 'muted', `Importance-weighted bound log p(x) ≥ ${formatNats(r.logPxBound)} nats`));
  panels.append(classifier, vae);
  section.append(panels);

  const footer = el('p', 'provenance muted');
  footer.textContent = `Scored by pair ${pair?.name ?? '?'} · ${pair?.backend ?? '?'} · ${(pair?.provider ?? '?').toUpperCase()}${row.scoredAt ? ` · ${new Date(row.scoredAt).toLocaleTimeString()}` : ''} · prediction ${predictionText(r)}`;
  section.append(footer);

  // Charts need the canvas in the document: drawn after insertion.
  queueMicrotask(() => {
    if (!softmaxCanvas.isConnected) return;
    const made: Chart[] = [];
    if (r.probabilities) made.push(softmaxChart(softmaxCanvas, labels, r.probabilities, r.prediction));
    const canvas = histBox.querySelector('canvas');
    if (hist && canvas) made.push(elboChart(canvas, hist, chartValue, v.tone, withVae ? ELBO_SCORE : KNN_SCORE));
    charts.set(row.path, made);
  });
  return section;
}

function renderAll(): void {
  renderPairBar();
  const main = document.getElementById('rows')!;
  for (const path of [...charts.keys()]) destroyCharts(path);
  main.replaceChildren(...(view.rows.length ? view.rows.map(renderRow) : [el('p', 'placeholder', 'No images.')]));
}

/** One short line for screen readers when a row finishes: "mnist-00001.png: In-distribution, p = 0.71". */
function announce(row: InspectRow): void {
  const region = document.getElementById('announce');
  if (!region || (row.status !== 'done' && row.status !== 'failed')) return;
  if (row.status === 'failed' || !row.result) {
    region.textContent = `${row.name}: could not score`;
    return;
  }
  const pair = view.pair;
  const v = verdictText(row.result, { alpha: pair?.alpha ?? 0.01, rule: pair?.rule ?? 'all', calibrationCount: pair?.calibrationCount ?? 0 });
  region.textContent = `${row.name}: ${v.headline}${v.p ? `, ${v.p}` : ''}`;
}

function updateRow(row: InspectRow): void {
  const index = view.rows.findIndex((r) => r.path === row.path);
  if (index < 0) view.rows.push(row);
  else view.rows[index] = row;
  const existing = document.getElementById(rowId(row.path));
  const fresh = renderRow(row);
  if (existing) existing.replaceWith(fresh);
  else document.getElementById('rows')!.append(fresh);
  document.querySelector('#rows > .placeholder')?.remove();
}

window.addEventListener('message', (event: MessageEvent<HostToInspect>) => {
  const m = event.data;
  if (!m || typeof m !== 'object') return;
  switch (m.type) {
    case 'state':
      view = m.state;
      renderAll();
      break;
    case 'row':
      updateRow(m.row);
      announce(m.row);
      break;
    case 'pinned':
      view = { ...view, pinned: m.pinned };
      renderPairBar();
      break;
    case 'pair':
      view = { ...view, pair: m.pair, pairError: m.pairError, restricted: m.restricted };
      renderAll();
      break;
  }
  save();
});

// Charts take their colours from the theme: redraw when it changes (body class vscode-light/dark/high-contrast).
new MutationObserver(() => renderAll()).observe(document.body, { attributes: true, attributeFilter: ['class', 'data-vscode-theme-kind'] });

if (view.rows.length) renderAll();
post({ type: 'ready' });

