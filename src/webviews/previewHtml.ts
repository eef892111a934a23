/**
 * Create Pair's preview page: one of the user's images exactly as the classifier will see it (resized to the
 * size given, with the scaling given) and what the classifier answers, before anything is fitted or written.
 * A static page (no script): the picture is a data: URL, every text escaped. Pure (no vscode), unit-tested.
 */
import { basename } from 'node:path';
import type { PreviewResult } from '../shared/engineProtocol';
import { escapeHtml, webviewPage } from './html';

export interface PreviewPageOptions {
  cspSource: string;
  nonce: string;
  styleUri: string;
  title: string;
  modelName: string;
  /** The scaling in model-card words ("(x/255 − 0.5)/0.5"). */
  scalingText: string;
  /** Why the picture may be squashed (the size contradicts the image), or null. */
  sizeWarning: string | null;
  /** Class names in output order (the indices when absent). */
  labels?: string[];
}

const pct = (p: number) => `${(100 * p).toFixed(p > 0.999 || p < 0.001 ? 2 : 1)}%`;
const num = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2));

/** The picture's on-screen size: scaled up by a whole factor to about 480 pixels wide (pixels kept sharp). */
export function previewScale(width: number, height: number): number {
  return Math.max(1, Math.min(Math.floor(480 / width), Math.floor(320 / height)) || 1);
}

export function buildPreviewHtml(o: PreviewPageOptions, p: PreviewResult): string {
  const e = (s: string) => escapeHtml(s);
  const scale = previewScale(p.width, p.height);
  const top = p.probabilities
    .map((prob, i) => ({ prob, i }))
    .sort((a, b) => b.prob - a.prob)
    .slice(0, 5);
  const source = p.source ? `${p.source.width}×${p.source.height}` : 'size unknown';
  const body = `<main id="preview">
<h1>${e(o.title)}</h1>
<p class="muted">Nothing is written yet. This is one of your images as <strong>${e(o.modelName)}</strong> will see it, with what it answers. If the picture is squashed or the answer is wrong on an image the model should know, change the size or the scaling before fitting.</p>
<figure class="model-input">
  <img id="model-input" src="data:image/png;base64,${e(p.modelInputPng)}" width="${p.width * scale}" height="${p.height * scale}" alt="${e(`${basename(p.image)} as the model sees it, ${p.width}×${p.height}`)}">
  <figcaption id="input-facts">Model input ${p.width}×${p.height} (width × height), ${p.channels === 1 ? 'grey' : 'RGB'}, from ${e(basename(p.image))} (${source}); scaled ${e(o.scalingText)}: values from ${num(p.tensorRange[0])} to ${num(p.tensorRange[1])}</figcaption>
</figure>
${o.sizeWarning ? `<p id="size-warning" class="warning">${e(o.sizeWarning)}</p>` : ''}
<h2>The classifier's answer</h2>
<p id="prediction" class="prediction">Predicted ${e(p.label)} (${pct(p.msp)})</p>
<table id="probabilities"><tbody>
${top.map((t) => `<tr><td>${e(o.labels?.[t.i] ?? String(t.i))}</td><td>${pct(t.prob)}</td></tr>`).join('\n')}
</tbody></table>
</main>`;
  return webviewPage('buildPreviewHtml', { cspSource: o.cspSource, nonce: o.nonce, styleUri: o.styleUri, title: o.title, body });
}
