/**
 * Folder report webview (bundled by esbuild into dist/webview/report.js). Renders the data the host posts:
 * per-verdict counts, the reference comparison (metrics table + ROC curves), the MSP and ELBO barcodes,
 * histograms, and a virtualised table (only the rows in view are in the DOM; their thumbnails load as they
 * scroll in). Sort, filter, colouring and scroll position are kept with setState for restoration.
 *
 * No innerHTML with data: every text goes through textContent; styles are set via CSSOM (CSP-safe).
 */
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-textfield/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-badge/index.js';
import '@vscode-elements/elements/dist/vscode-collapsible/index.js';
import {
  BarController, BarElement, CategoryScale, Chart, Filler, Legend, LinearScale, LineController, LineElement, PointElement, ScatterController, Tooltip,
} from 'chart.js';
import { formatMsp, formatNats, formatP } from '../../shared/format';
import { barcodeOrder, filterRows, reportScoreKeys, SCORE_VIEWS, verdictWithTests, formatDuration, formatNumber, histogram, robustRange, sortRows, thumbnailUrl, verdictCounts, visibleWindow, type BarcodeLine } from '../../shared/reportModel';
import type { FilterState, HostToReport, ReportData, ReportRow, ReportToHost, ReportViewState, ScoreKey, SortColumn, SortState, Verdict } from '../../shared/reportProtocol';
import { VERDICTS } from '../../shared/reportProtocol';
import { cssVar, el } from './dom';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement, ScatterController, Tooltip, Legend, Filler);

declare function acquireVsCodeApi(): { postMessage(m: ReportToHost): void; getState(): ReportViewState | undefined; setState(s: ReportViewState): void };
const vscode = acquireVsCodeApi();
const post = (m: ReportToHost) => vscode.postMessage(m);

const ROW_HEIGHT = 44;
const VERDICT_TEXT: Record<Verdict, string> = {
  'out-of-distribution': 'Out-of-distribution',
  'in-distribution': 'In-distribution',
  uncalibrated: 'Uncalibrated',
  error: 'Error',
};

interface State {
  data: ReportData;
  thumbBase: { target: string; reference: string | null };
  sort: SortState;
  filter: FilterState;
  colorBy: 'verdict' | 'set';
  view: ReportRow[];
  selected: number | null;
}

let state: State | null = null;
const charts: Chart[] = [];

function palette() {
  return {
    'out-of-distribution': cssVar('--vscode-charts-red', '#f14c4c'),
    'in-distribution': cssVar('--vscode-charts-green', '#89d185'),
    uncalibrated: cssVar('--vscode-charts-yellow', '#cca700'),
    error: cssVar('--vscode-disabledForeground', '#888888'),
    target: cssVar('--vscode-charts-orange', '#d18616'),
    reference: cssVar('--vscode-charts-blue', '#3794ff'),
    foreground: cssVar('--vscode-foreground', '#cccccc'),
    grid: cssVar('--vscode-editorWidget-border', 'rgba(128,128,128,0.35)'),
    lines: [
      cssVar('--vscode-charts-blue', '#3794ff'), cssVar('--vscode-charts-orange', '#d18616'), cssVar('--vscode-charts-green', '#89d185'),
      cssVar('--vscode-charts-red', '#f14c4c'), cssVar('--vscode-charts-purple', '#b180d7'), cssVar('--vscode-charts-yellow', '#cca700'),
    ],
  };
}

// ---------------------------------------------------------------------------------------------------------
// A second cue beside colour (for colour-blind readers and greyscale prints): a glyph and a hatch per group
// in legends and histograms, and in the barcodes a line height (out-of-distribution and errors full height).

type Hatch = 'diagonal' | 'cross' | 'dots' | null;
const HATCH: Record<string, Hatch> = { 'out-of-distribution': 'diagonal', error: 'cross', uncalibrated: 'dots', 'in-distribution': null, target: null, reference: 'diagonal' };
const GLYPH: Record<string, string> = { 'out-of-distribution': '⚠', error: '✕', uncalibrated: '?', 'in-distribution': '✓', target: '●', reference: '○' };
/** Share of the barcode's height a line of this group fills. */
const BARCODE_HEIGHT: Record<string, number> = { 'out-of-distribution': 1, error: 1, uncalibrated: 0.8, 'in-distribution': 0.55, target: 1, reference: 0.55 };

/** The group's colour with its hatch (a CanvasPattern for Chart.js), or the plain colour. */
function hatchFill(group: string, colour: string): string | CanvasPattern {
  const kind = HATCH[group];
  if (!kind) return colour;
  const tile = document.createElement('canvas');
  const dpr = window.devicePixelRatio || 1;
  tile.width = tile.height = Math.round(8 * dpr);
  const ctx = tile.getContext('2d')!;
  ctx.fillStyle = colour;
  ctx.fillRect(0, 0, tile.width, tile.height);
  // Dark ink on the light chart colours of every theme.
  ctx.strokeStyle = ctx.fillStyle = 'rgba(0, 0, 0, 0.55)';
  ctx.lineWidth = 1.5 * dpr;
  const n = tile.width;
  ctx.beginPath();
  if (kind === 'diagonal' || kind === 'cross') {
    ctx.moveTo(0, n);
    ctx.lineTo(n, 0);
    ctx.moveTo(-n / 2, n / 2);
    ctx.lineTo(n / 2, -n / 2);
    ctx.moveTo(n / 2, n * 1.5);
    ctx.lineTo(n * 1.5, n / 2);
  }
  if (kind === 'cross') {
    ctx.moveTo(0, 0);
    ctx.lineTo(n, n);
  }
  ctx.stroke();
  if (kind === 'dots') {
    ctx.beginPath();
    ctx.arc(n / 2, n / 2, 1.5 * dpr, 0, Math.PI * 2);
    ctx.fill();
  }
  return ctx.createPattern(tile, 'repeat') ?? colour;
}

/** A legend swatch: the colour, the same hatch as the charts, and the group's glyph before the text. */
function swatch(group: string, colour: string): HTMLElement[] {
  const sw = el('span', 'swatch');
  sw.style.backgroundColor = colour;
  const kind = HATCH[group];
  if (kind === 'diagonal') sw.style.backgroundImage = 'repeating-linear-gradient(-45deg, rgba(0,0,0,0.55) 0 1.5px, transparent 1.5px 4px)';
  else if (kind === 'cross') sw.style.backgroundImage = 'repeating-linear-gradient(-45deg, rgba(0,0,0,0.55) 0 1.5px, transparent 1.5px 4px), repeating-linear-gradient(45deg, rgba(0,0,0,0.55) 0 1.5px, transparent 1.5px 4px)';
  else if (kind === 'dots') sw.style.backgroundImage = 'radial-gradient(rgba(0,0,0,0.55) 1px, transparent 1.5px)';
  if (kind === 'dots') sw.style.backgroundSize = '4px 4px';
  const glyph = el('span', 'glyph', GLYPH[group] ?? '');
  glyph.setAttribute('aria-hidden', 'true');
  return [sw, glyph];
}

function saveState(extra: Partial<ReportViewState> = {}): void {
  if (!state) return;
  const prev = vscode.getState();
  vscode.setState({ ...prev, reportId: state.data.id, sort: state.sort, filter: state.filter, colorBy: state.colorBy, ...extra });
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

// ---------------------------------------------------------------------------------------------------------
// Layout

function renderAll(): void {
  const s = state!;
  const app = document.getElementById('app')!;
  app.replaceChildren();
  app.setAttribute('aria-busy', 'false');
  for (const c of charts.splice(0)) c.destroy();
  const d = s.data;

  const header = el('header', 'report-header');
  header.append(el('h1', undefined, d.title));
  const meta = el('p', 'meta');
  const images = d.referenceFolder ? `${d.rows.filter((r) => r.set === 'target').length.toLocaleString('en-US')} images + ${d.rows.filter((r) => r.set === 'reference').length.toLocaleString('en-US')} reference` : `${d.rows.length.toLocaleString('en-US')} images`;
  meta.textContent = `${d.folderLabel ?? d.folder}${d.referenceFolder ? `  ·  reference: ${d.referenceLabel ?? d.referenceFolder}` : ''}  ·  ${images}  ·  pair ${d.pair.name} (${d.pair.backend}, ${d.pair.provider})  ·  α = ${d.pair.alpha}, rule ${d.pair.rule}  ·  ${formatDuration(d.seconds)}${d.cached ? `  ·  ${d.cached.toLocaleString('en-US')} from cache` : ''}`;
  header.append(meta);
  if (d.cancelled) header.append(el('p', 'banner warning', `Cancelled after ${d.done.toLocaleString('en-US')} of ${d.total.toLocaleString('en-US')} images: the report shows the images scored before the cancel.`));
  if (!d.pair.calibrated) header.append(el('p', 'banner warning', 'The pair is not calibrated: there are no p-values or verdicts (run `ood-lens calibrate`).'));
  app.append(header);

  app.append(renderCounts());
  if (d.comparison) app.append(renderComparison());
  app.append(renderPlots());
  app.append(renderTableSection());
  refreshView(false);
  const saved = vscode.getState();
  if (saved?.scrollTop) document.getElementById('scroller')!.scrollTop = saved.scrollTop;
  renderRows();
  wireBarcodes();
}

function renderCounts(): HTMLElement {
  const s = state!;
  const section = el('section', 'counts');
  section.setAttribute('aria-label', 'Counts per verdict');
  const rows = s.data.referenceFolder ? s.data.rows.filter((r) => r.set === 'target') : s.data.rows;
  const counts = verdictCounts(rows);
  const colors = palette();
  for (const v of VERDICTS) {
    if (v !== 'out-of-distribution' && v !== 'in-distribution' && !counts[v]) continue;
    const b = el('button', `count verdict-${v}`);
    b.type = 'button';
    b.title = `Show only ${VERDICT_TEXT[v].toLowerCase()} rows`;
    b.append(...swatch(v, colors[v]), el('strong', undefined, counts[v].toLocaleString('en-US')), el('span', undefined, ` ${VERDICT_TEXT[v].toLowerCase()}`));
    if (rows.length) b.append(el('span', 'muted', ` (${pct(counts[v] / rows.length)})`));
    b.addEventListener('click', () => setFilter({ verdict: s.filter.verdict === v ? 'all' : v }));
    section.append(b);
  }
  if (s.data.referenceFolder) section.append(el('span', 'muted', 'counts are for the scored folder'));
  return section;
}

function renderComparison(): HTMLElement {
  const s = state!;
  const c = s.data.comparison!;
  const section = el('section', 'comparison');
  section.append(el('h2', undefined, 'Scored folder vs reference (in-distribution)'));
  section.append(
    el(
      'p',
      'muted',
      `${c.inCount.toLocaleString('en-US')} reference images (negatives) vs ${c.oodCount.toLocaleString('en-US')} scored images (positives). ` +
        `Verdict at α = ${s.data.pair.alpha}: ${pct(c.falseAlarmRate)} of the reference flagged (false alarms), ${pct(c.detectionRate)} of the scored folder flagged.`,
    ),
  );
  const wrap = el('div', 'comparison-grid');
  const table = el('table', 'metrics');
  const thead = el('thead');
  const hr = el('tr');
  for (const h of ['Score', 'AUROC ↑', 'AUPR-in ↑', 'AUPR-out ↑', 'FPR@95%TPR ↓']) hr.append(el('th', undefined, h));
  thead.append(hr);
  const tbody = el('tbody');
  const best = {
    auroc: Math.max(...c.detectors.map((m) => m.auroc)),
    auprIn: Math.max(...c.detectors.map((m) => m.auprIn)),
    auprOut: Math.max(...c.detectors.map((m) => m.auprOut)),
    fprAt95Tpr: Math.min(...c.detectors.map((m) => m.fprAt95Tpr)),
  };
  for (const m of c.detectors) {
    const tr = el('tr');
    tr.append(el('th', undefined, m.name));
    for (const k of ['auroc', 'auprIn', 'auprOut', 'fprAt95Tpr'] as const) {
      const td = el('td', m[k] === best[k] ? 'num best' : 'num', m[k].toFixed(4));
      tr.append(td);
    }
    tbody.append(tr);
  }
  table.append(thead, tbody);
  const rocBox = el('div', 'chart roc');
  const canvas = el('canvas');
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', 'ROC curves per score');
  rocBox.append(canvas);
  wrap.append(table, rocBox);
  section.append(wrap);
  queueMicrotask(() => {
    const colors = palette();
    charts.push(
      new Chart(canvas, {
        type: 'scatter',
        data: {
          datasets: [
            ...c.detectors.map((m, i) => ({
              label: `${m.name} (${m.auroc.toFixed(3)})`,
              data: m.roc.map((p) => ({ x: p.fpr, y: p.tpr })),
              showLine: true,
              pointRadius: 0,
              borderWidth: 2,
              borderColor: colors.lines[i % colors.lines.length],
              backgroundColor: colors.lines[i % colors.lines.length],
            })),
            { label: 'chance', data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], showLine: true, pointRadius: 0, borderDash: [4, 4], borderWidth: 1, borderColor: colors.grid, backgroundColor: colors.grid },
          ],
        },
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: {
            x: { min: 0, max: 1, title: { display: true, text: 'false positive rate (reference flagged)', color: colors.foreground }, ticks: { color: colors.foreground }, grid: { color: colors.grid } },
            y: { min: 0, max: 1, title: { display: true, text: 'true positive rate (scored flagged)', color: colors.foreground }, ticks: { color: colors.foreground }, grid: { color: colors.grid } },
          },
          plugins: { legend: { labels: { color: colors.foreground, boxWidth: 12 } }, tooltip: { callbacks: { label: (ctx) => `${ctx.dataset.label}: FPR ${(ctx.parsed.x ?? 0).toFixed(3)}, TPR ${(ctx.parsed.y ?? 0).toFixed(3)}` } } },
        },
      }),
    );
  });
  return section;
}

function renderPlots(): HTMLElement {
  const s = state!;
  const section = el('section', 'plots');
  const head = el('div', 'plots-head');
  head.append(el('h2', undefined, 'Distribution'));
  if (s.data.referenceFolder) {
    const colourOptions: [string, string][] = [['verdict', 'Colour by verdict'], ['set', 'Colour by folder']];
    head.append(
      singleSelect('Colour by', colourOptions, s.colorBy, (v) => {
        s.colorBy = v === 'set' ? 'set' : 'verdict';
        saveState();
        drawBarcodes();
        drawHistograms();
      }),
    );
  }
  section.append(head);
  const legend = el('div', 'legend');
  legend.id = 'legend';
  section.append(legend);
  for (const key of scoreKeys()) {
    const box = el('div', 'barcode');
    box.dataset.score = key;
    const label = el('div', 'barcode-label', SCORE_VIEWS[key].barcode);
    const canvas = el('canvas');
    canvas.id = `barcode-${key}`;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `Barcode of every image sorted by ${SCORE_VIEWS[key].column}, coloured by verdict; click a line to find the image in the table`);
    canvas.tabIndex = 0;
    box.append(label, canvas);
    section.append(box);
  }
  const hist = el('div', 'histograms');
  for (const key of scoreKeys()) {
    const box = el('div', 'chart hist');
    box.dataset.score = key;
    const canvas = el('canvas');
    canvas.id = `hist-${key}`;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `Histogram of ${SCORE_VIEWS[key].column}`);
    box.append(canvas);
    hist.append(box);
  }
  section.append(hist);
  queueMicrotask(() => {
    drawBarcodes();
    drawHistograms();
  });
  return section;
}

/** The scores this report draws: the MSP, and each test of the pair that can decide a verdict (reportScoreKeys). */
function scoreKeys(): ScoreKey[] {
  return reportScoreKeys(state!.data);
}

function groupOf(r: ReportRow): string {
  return state!.colorBy === 'set' ? r.set : r.verdict;
}

function drawLegend(): void {
  const s = state!;
  const legend = document.getElementById('legend');
  if (!legend) return;
  legend.replaceChildren();
  const colors = palette();
  const keys: string[] = s.colorBy === 'set' ? ['target', 'reference'] : VERDICTS.filter((v) => s.data.rows.some((r) => r.verdict === v));
  for (const k of keys) {
    const item = el('span', 'legend-item');
    item.append(...swatch(k, (colors as unknown as Record<string, string>)[k]), document.createTextNode(k === 'target' ? 'scored folder' : k === 'reference' ? 'reference folder' : VERDICT_TEXT[k as Verdict].toLowerCase()));
    legend.append(item);
  }
}

const barcodeLines: Partial<Record<ScoreKey, BarcodeLine[]>> = {};

function drawBarcodes(): void {
  drawLegend();
  const s = state!;
  const colors = palette() as unknown as Record<string, string>;
  for (const key of scoreKeys()) {
    const canvas = document.getElementById(`barcode-${key}`) as HTMLCanvasElement | null;
    if (!canvas) continue;
    const lines = (barcodeLines[key] = barcodeOrder(s.data.rows, key));
    const dpr = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 600;
    const height = canvas.clientHeight || 40;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    const ctx = canvas.getContext('2d')!;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const n = lines.length;
    if (!n) continue;
    const w = canvas.width / n;
    // Every image gets a line; where lines are thinner than a pixel, later ones overdraw (colours still show density).
    for (let i = 0; i < n; i++) {
      const l = lines[i];
      const group = s.colorBy === 'set' ? l.set : l.verdict;
      ctx.fillStyle = colors[group];
      // Height is the second cue: out-of-distribution lines reach the top, in-distribution ones stop short of it.
      const h = Math.round(canvas.height * (BARCODE_HEIGHT[group] ?? 1));
      ctx.fillRect(Math.floor(i * w), canvas.height - h, Math.max(1, Math.ceil(w)), h);
    }
    if (s.selected !== null) {
      const i = lines.findIndex((l) => l.id === s.selected);
      if (i >= 0) {
        ctx.fillStyle = colors.foreground;
        ctx.fillRect(Math.floor(i * w + w / 2) - dpr, 0, 2 * dpr, canvas.height);
      }
    }
  }
}

function barcodeHit(key: ScoreKey, canvas: HTMLCanvasElement, clientX: number): BarcodeLine | undefined {
  const lines = barcodeLines[key] ?? [];
  if (!lines.length) return undefined;
  const rect = canvas.getBoundingClientRect();
  const i = Math.min(lines.length - 1, Math.max(0, Math.floor(((clientX - rect.left) / rect.width) * lines.length)));
  return lines[i];
}

function drawHistograms(): void {
  const s = state!;
  const colors = palette() as unknown as Record<string, string> & { foreground: string; grid: string };
  for (const c of charts.filter((ch) => (ch.canvas.id ?? '').startsWith('hist-'))) {
    c.destroy();
    charts.splice(charts.indexOf(c), 1);
  }
  for (const key of scoreKeys()) {
    const canvas = document.getElementById(`hist-${key}`) as HTMLCanvasElement | null;
    if (!canvas) continue;
    const view = SCORE_VIEWS[key];
    const bins = key === 'msp' ? 20 : 40;
    // Long tails are folded into the first bin (ELBO: a few images far below the rest).
    const range = key === 'msp' ? ([0, 1] as [number, number]) : key === 'elbo' ? robustRange(s.data.rows.map((r) => r.elbo)) : undefined;
    const h = histogram(s.data.rows, key, bins, groupOf, range, true);
    const clipped = key === 'elbo' && range ? s.data.rows.filter((r) => r.elbo !== null && r.elbo < range[0]).length : 0;
    const groups = s.colorBy === 'set' ? ['target', 'reference'] : VERDICTS.filter((v) => h.counts[v]);
    const labels = h.edges.slice(0, -1).map((e, i) => formatNumber((e + h.edges[i + 1]) / 2, view.digits));
    charts.push(
      new Chart(canvas, {
        type: 'bar',
        data: {
          labels,
          datasets: groups.filter((g) => h.counts[g]).map((g) => ({
            label: g === 'target' ? 'scored folder' : g === 'reference' ? 'reference' : VERDICT_TEXT[g as Verdict],
            data: h.counts[g],
            backgroundColor: hatchFill(g, colors[g]),
            borderWidth: 0,
            barPercentage: 1,
            categoryPercentage: 1,
          })),
        },
        options: {
          animation: false,
          maintainAspectRatio: false,
          scales: {
            x: { stacked: true, title: { display: true, text: `${view.axis}${clipped ? ` — the ${clipped.toLocaleString('en-US')} lowest in the first bin` : ''}`, color: colors.foreground }, ticks: { color: colors.foreground, maxRotation: 0, autoSkip: true }, grid: { display: false } },
            y: { stacked: true, title: { display: true, text: 'images', color: colors.foreground }, ticks: { color: colors.foreground, precision: 0 }, grid: { color: colors.grid } },
          },
          plugins: {
            legend: { display: false },
            tooltip: {
              callbacks: {
                title: (items) => {
                  const i = items[0]?.dataIndex ?? 0;
                  if (i === 0 && clipped) return `${view.column} ≤ ${formatNumber(h.edges[1], 3)}`;
                  return `${view.column} ${formatNumber(h.edges[i], 3)} – ${formatNumber(h.edges[i + 1], 3)}`;
                },
              },
            },
          },
        },
      }),
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// The virtualised table

interface Column {
  id: SortColumn | 'thumb';
  title: string;
  cls: string;
  sortable: boolean;
}

function columns(): Column[] {
  const cols: Column[] = [
    { id: 'thumb', title: '', cls: 'c-thumb', sortable: false },
    { id: 'rel', title: 'Path', cls: 'c-path', sortable: true },
  ];
  if (state!.data.referenceFolder) cols.push({ id: 'set', title: 'Folder', cls: 'c-set', sortable: true });
  cols.push(
    { id: 'label', title: 'Predicted', cls: 'c-label', sortable: true },
    ...scoreKeys().map((key): Column => ({ id: key, title: SCORE_VIEWS[key].column, cls: 'c-num', sortable: true })),
    { id: 'pValue', title: 'p-value', cls: 'c-num c-p', sortable: true },
    { id: 'verdict', title: 'Verdict', cls: 'c-verdict', sortable: true },
  );
  return cols;
}

/** A vscode-single-select of [value, text] options, `selected` chosen; `onChange` gets the new value. */
function singleSelect(label: string, options: [string, string][], selected: string, onChange: (value: string) => void, id?: string): HTMLElement {
  const box = document.createElement('vscode-single-select') as HTMLElement & { value: string };
  if (id) box.id = id;
  box.setAttribute('aria-label', label);
  for (const [v, text] of options) {
    const o = document.createElement('vscode-option');
    o.setAttribute('value', v);
    o.textContent = text;
    if (v === selected) o.setAttribute('selected', '');
    box.append(o);
  }
  box.addEventListener('change', () => onChange(box.value));
  return box;
}

function renderTableSection(): HTMLElement {
  const s = state!;
  const section = el('section', 'table-section');
  const toolbar = el('div', 'toolbar');
  const search = document.createElement('vscode-textfield') as HTMLElement & { value: string };
  search.setAttribute('placeholder', 'Filter by path, label (exact) or error');
  search.setAttribute('aria-label', 'Filter rows');
  search.id = 'filter-text';
  search.value = s.filter.text;
  let t: number | undefined;
  search.addEventListener('input', () => {
    clearTimeout(t);
    t = window.setTimeout(() => setFilter({ text: search.value }), 120);
  });
  const verdictOptions: [string, string][] = [['all', 'All verdicts'], ...VERDICTS.map((x): [string, string] => [x, VERDICT_TEXT[x]])];
  toolbar.append(search, singleSelect('Filter by verdict', verdictOptions, s.filter.verdict, (v) => setFilter({ verdict: v as FilterState['verdict'] }), 'filter-verdict'));
  if (s.data.referenceFolder) {
    const setOptions: [string, string][] = [['all', 'Both folders'], ['target', 'Scored folder'], ['reference', 'Reference folder']];
    toolbar.append(singleSelect('Filter by folder', setOptions, s.filter.set, (v) => setFilter({ set: v as FilterState['set'] }), 'filter-set'));
  }
  const count = el('span', 'row-count muted');
  count.id = 'row-count';
  count.setAttribute('aria-live', 'polite');
  const spacer = el('span', 'grow');
  const csv = document.createElement('vscode-button');
  csv.textContent = 'Export CSV';
  csv.setAttribute('secondary', '');
  csv.addEventListener('click', () => post({ type: 'export', format: 'csv' }));
  const json = document.createElement('vscode-button');
  json.textContent = 'Export JSON';
  json.setAttribute('secondary', '');
  json.addEventListener('click', () => post({ type: 'export', format: 'json' }));
  toolbar.append(count, spacer, csv, json);
  section.append(toolbar);

  const table = el('div', s.data.referenceFolder ? 'vtable with-set' : 'vtable');
  table.setAttribute('role', 'grid');
  table.setAttribute('aria-label', 'Scored images');
  const head = el('div', 'vrow vhead');
  head.setAttribute('role', 'row');
  head.style.gridTemplateColumns = gridColumns();
  for (const c of columns()) {
    const cell = el('div', `vcell ${c.cls}`);
    cell.setAttribute('role', 'columnheader');
    if (c.sortable) {
      const b = el('button', 'sort', c.title);
      b.type = 'button';
      b.dataset.column = c.id;
      b.addEventListener('click', () => {
        const col = c.id as SortColumn;
        s.sort = s.sort.column === col ? { column: col, descending: !s.sort.descending } : { column: col, descending: false };
        refreshView(true);
      });
      cell.append(b);
    } else cell.textContent = c.title;
    head.append(cell);
  }
  const scroller = el('div', 'vscroll');
  scroller.id = 'scroller';
  scroller.tabIndex = 0;
  const sizer = el('div', 'vsizer');
  sizer.id = 'sizer';
  const body = el('div', 'vbody');
  body.id = 'vbody';
  body.setAttribute('role', 'rowgroup');
  sizer.append(body);
  scroller.append(sizer);
  let frame = 0;
  scroller.addEventListener('scroll', () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      renderRows();
      saveState({ scrollTop: scroller.scrollTop });
    });
  });
  scroller.addEventListener('keydown', (e) => onTableKey(e));
  table.append(head, scroller);
  section.append(table);
  return section;
}

function setFilter(change: Partial<FilterState>): void {
  const s = state!;
  s.filter = { ...s.filter, ...change };
  const v = document.getElementById('filter-verdict') as (HTMLElement & { value: string }) | null;
  if (v && change.verdict) v.value = change.verdict;
  refreshView(true);
}

/** Recomputes the filtered+sorted view; `resetScroll` jumps to the top. */
function refreshView(resetScroll: boolean): void {
  const s = state!;
  s.view = sortRows(filterRows(s.data.rows, s.filter), s.sort);
  document.getElementById('sizer')!.style.height = `${s.view.length * ROW_HEIGHT}px`;
  const count = document.getElementById('row-count')!;
  count.textContent = s.view.length === s.data.rows.length ? `${s.view.length.toLocaleString('en-US')} rows` : `${s.view.length.toLocaleString('en-US')} of ${s.data.rows.length.toLocaleString('en-US')} rows`;
  document.querySelectorAll<HTMLButtonElement>('.vhead button.sort').forEach((b) => {
    const active = b.dataset.column === s.sort.column;
    b.classList.toggle('active', active);
    b.parentElement!.setAttribute('aria-sort', active ? (s.sort.descending ? 'descending' : 'ascending') : 'none');
    b.dataset.dir = active ? (s.sort.descending ? '▼' : '▲') : '';
  });
  if (resetScroll) document.getElementById('scroller')!.scrollTop = 0;
  saveState();
  renderRows();
}

const pool: HTMLElement[] = [];

/** The table's column widths: one score column per test the pair has (set through the CSSOM: the CSP allows no inline styles). */
function gridColumns(): string {
  const width: Record<string, string> = { thumb: '52px', rel: 'minmax(200px, 1fr)', set: '90px', label: '90px', pValue: '90px', verdict: '210px' };
  return columns().map((c) => width[c.id] ?? (c.id === 'msp' ? '80px' : '90px')).join(' ');
}

function rowElement(): HTMLElement {
  const row = el('div', 'vrow');
  row.setAttribute('role', 'row');
  row.style.gridTemplateColumns = gridColumns();
  for (const c of columns()) {
    const cell = el('div', `vcell ${c.cls}`);
    cell.setAttribute('role', 'gridcell');
    if (c.id === 'thumb') {
      const img = el('img');
      img.alt = '';
      img.decoding = 'async';
      img.addEventListener('error', () => img.classList.add('broken'));
      cell.append(img);
    }
    row.append(cell);
  }
  row.addEventListener('click', () => {
    const id = Number(row.dataset.id);
    select(id);
    post({ type: 'open', id });
  });
  return row;
}

function renderRows(): void {
  const s = state!;
  const scroller = document.getElementById('scroller');
  const body = document.getElementById('vbody');
  if (!scroller || !body) return;
  const { first, last } = visibleWindow(scroller.scrollTop, scroller.clientHeight || 600, ROW_HEIGHT, s.view.length);
  const needed = last - first;
  while (pool.length < needed) pool.push(rowElement());
  const cols = columns();
  const children: HTMLElement[] = [];
  for (let k = 0; k < needed; k++) {
    const r = s.view[first + k];
    const row = pool[k];
    row.dataset.id = String(r.id);
    row.style.transform = `translateY(${(first + k) * ROW_HEIGHT}px)`;
    row.setAttribute('aria-rowindex', String(first + k + 2));
    row.className = `vrow verdict-${r.verdict}${s.selected === r.id ? ' selected' : ''}`;
    row.setAttribute('aria-selected', String(s.selected === r.id));
    row.title = r.error ? `${r.rel}\n${r.error}` : `${r.rel} — click to inspect`;
    const cells = row.children;
    cols.forEach((c, i) => {
      const cell = cells[i] as HTMLElement;
      switch (c.id) {
        case 'thumb': {
          const img = cell.firstElementChild as HTMLImageElement;
          const base = r.set === 'reference' ? s.thumbBase.reference : s.thumbBase.target;
          // No thumbnail for a row that could not be scored: the file may be refused (a link out of the
          // workspace in Restricted Mode) or hostile to decoders; the error says what happened.
          const src = base && !r.error ? thumbnailUrl(base, r.rel) : '';
          if (img.dataset.src !== src) {
            img.classList.remove('broken');
            img.dataset.src = src;
            img.src = src;
          }
          break;
        }
        case 'rel':
          cell.textContent = r.rel;
          break;
        case 'set':
          cell.textContent = r.set === 'reference' ? 'reference' : 'scored';
          break;
        case 'label':
          cell.textContent = r.label ?? '–';
          break;
        case 'msp':
          cell.textContent = formatMsp(r.msp);
          break;
        case 'elbo':
          cell.textContent = formatNats(r.elbo);
          break;
        case 'knn':
        case 'complexity':
        case 'energy':
          cell.textContent = formatNumber(r[c.id] ?? null, SCORE_VIEWS[c.id].digits);
          break;
        case 'pValue':
          cell.textContent = formatP(r.pValue);
          break;
        case 'verdict':
          cell.textContent = r.verdict === 'error' ? `Error: ${r.error ?? ''}` : verdictWithTests(VERDICT_TEXT[r.verdict], r);
          break;
      }
    });
    children.push(row);
  }
  body.replaceChildren(...children);
}

function select(id: number | null, scroll = false): void {
  const s = state!;
  s.selected = id;
  if (scroll && id !== null) {
    let i = s.view.findIndex((r) => r.id === id);
    if (i < 0) {
      // Not in the filtered view: clear the filters so the row can be shown.
      s.filter = { text: '', verdict: 'all', set: 'all' };
      const t = document.getElementById('filter-text') as (HTMLElement & { value: string }) | null;
      if (t) t.value = '';
      const v = document.getElementById('filter-verdict') as (HTMLElement & { value: string }) | null;
      if (v) v.value = 'all';
      const st = document.getElementById('filter-set') as (HTMLElement & { value: string }) | null;
      if (st) st.value = 'all';
      refreshView(false);
      i = s.view.findIndex((r) => r.id === id);
    }
    const scroller = document.getElementById('scroller')!;
    if (i >= 0) {
      const top = i * ROW_HEIGHT;
      if (top < scroller.scrollTop || top + ROW_HEIGHT > scroller.scrollTop + scroller.clientHeight) scroller.scrollTop = Math.max(0, top - scroller.clientHeight / 2);
    }
  }
  renderRows();
  drawBarcodes();
}

function onTableKey(e: KeyboardEvent): void {
  const s = state!;
  if (!s.view.length) return;
  let i = s.selected === null ? -1 : s.view.findIndex((r) => r.id === s.selected);
  const page = Math.max(1, Math.floor((document.getElementById('scroller')!.clientHeight || 600) / ROW_HEIGHT) - 1);
  switch (e.key) {
    case 'ArrowDown':
      i = Math.min(s.view.length - 1, i + 1);
      break;
    case 'ArrowUp':
      i = Math.max(0, i - 1);
      break;
    case 'PageDown':
      i = Math.min(s.view.length - 1, i + page);
      break;
    case 'PageUp':
      i = Math.max(0, i - page);
      break;
    case 'Home':
      i = 0;
      break;
    case 'End':
      i = s.view.length - 1;
      break;
    case 'Enter':
      if (s.selected !== null) post({ type: 'open', id: s.selected });
      e.preventDefault();
      return;
    default:
      return;
  }
  e.preventDefault();
  select(s.view[i].id, true);
}

// ---------------------------------------------------------------------------------------------------------
// Wiring

function wireBarcodes(): void {
  for (const key of scoreKeys()) {
    const canvas = document.getElementById(`barcode-${key}`) as HTMLCanvasElement | null;
    if (!canvas) continue;
    canvas.addEventListener('mousemove', (e) => {
      const hit = barcodeHit(key, canvas, e.clientX);
      const row = hit && state!.data.rows[hit.id];
      canvas.title = row ? `${row.rel}\n${SCORE_VIEWS[key].column} ${formatNumber(hit.value, SCORE_VIEWS[key].digits + 1)} · ${verdictWithTests(VERDICT_TEXT[row.verdict], row)}` : '';
    });
    canvas.addEventListener('click', (e) => {
      const hit = barcodeHit(key, canvas, e.clientX);
      if (hit) select(hit.id, true);
    });
  }
}

window.addEventListener('message', (event: MessageEvent<HostToReport>) => {
  const m = event.data;
  switch (m.type) {
    case 'load': {
      const saved = vscode.getState();
      const sameReport = saved?.reportId === m.data.id;
      state = {
        data: m.data,
        thumbBase: m.thumbBase,
        sort: (sameReport && saved?.sort) || { column: 'pValue', descending: false },
        filter: (sameReport && saved?.filter) || { text: '', verdict: 'all', set: 'all' },
        colorBy: (sameReport && saved?.colorBy) || (m.data.referenceFolder ? 'set' : 'verdict'),
        view: [],
        selected: null,
      };
      if (!sameReport) vscode.setState({ reportId: m.data.id });
      renderAll();
      break;
    }
    case 'missing': {
      const app = document.getElementById('app')!;
      app.replaceChildren(el('p', 'banner warning', m.message));
      app.setAttribute('aria-busy', 'false');
      break;
    }
    case 'exported':
      break;
  }
});

let resizeFrame = 0;
window.addEventListener('resize', () => {
  if (resizeFrame || !state) return;
  resizeFrame = requestAnimationFrame(() => {
    resizeFrame = 0;
    drawBarcodes();
    renderRows();
  });
});

// Theme changes (body class) → redraw with the new colours.
new MutationObserver(() => {
  if (state) renderAll();
}).observe(document.body, { attributes: true, attributeFilter: ['class'] });

post({ type: 'ready' });
