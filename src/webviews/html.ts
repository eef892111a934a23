/**
 * HTML of the Inspect panel's webview, and the page shell both webviews share (CSP, nonce check, escaping;
 * the report page in reportHtml.ts). Pure (no vscode): the caller passes the webview's CSP source and the
 * webview URIs as strings, so the Content-Security-Policy can be unit-tested. Only nonce'd scripts run;
 * nothing is loaded from outside the extension; images are the extension's own files or data: PNGs.
 */
import { randomBytes } from 'node:crypto';

export interface InspectHtmlOptions {
  /** `webview.cspSource`. */
  cspSource: string;
  /** A fresh nonce per page load (see makeNonce). */
  nonce: string;
  /** Webview URI of dist/webview/inspect.js (the bundled browser script with Chart.js and its two @vscode-elements controls). */
  scriptUri: string;
  /** Webview URI of media/inspect.css. */
  styleUri: string;
  /** Panel title (shown until the script renders). */
  title: string;
  /** The images, drawn as "Scoring…" rows before the script runs, so the layout is there at once. */
  rows?: { path: string; name: string; displayPath: string }[];
}

/** 128 random bits, base64: a CSP nonce. */
export function makeNonce(): string {
  return randomBytes(16).toString('base64');
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes & < > " ' for text and attribute values: as named entities, or as numeric ones (`&#60;`) when `numeric`. */
export function escapeHtml(text: string, numeric = false): string {
  return text.replace(/[&<>"']/g, (c) => (numeric ? `&#${c.charCodeAt(0)};` : ENTITIES[c]));
}

/** Throws unless the nonce is base64 with at least 16 characters (nothing that could widen the CSP). */
function checkNonce(nonce: string, caller: string): void {
  if (!/^[A-Za-z0-9+/=]{16,}$/.test(nonce)) throw new Error(`${caller}: the nonce must be base64 with at least 16 characters`);
}

export interface CspOptions {
  /** Image sources beyond the webview origin and data: (the report adds `blob:`). */
  extraImgSrc?: string[];
  /** Also allow stylesheets that carry the nonce. */
  styleNonce?: boolean;
}

/** The webviews' Content-Security-Policy: nothing by default, scripts only by nonce, the rest only from the webview origin. */
export function webviewCsp(cspSource: string, nonce: string, o: CspOptions = {}): string {
  return [
    "default-src 'none'",
    ['img-src', cspSource, 'data:', ...(o.extraImgSrc ?? [])].join(' '),
    ['style-src', cspSource, ...(o.styleNonce ? [`'nonce-${nonce}'`] : [])].join(' '),
    `script-src 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
  ].join('; ');
}

export function inspectCsp(cspSource: string, nonce: string): string {
  return webviewCsp(cspSource, nonce);
}

export interface WebviewPageOptions {
  cspSource: string;
  nonce: string;
  csp?: CspOptions;
  styleUri: string;
  title: string;
  /** The page's body, already escaped. */
  body: string;
  /** Escape with numeric entities (the report page's spelling). */
  numericEntities?: boolean;
}

/** A webview page: the nonce checked, the CSP, the stylesheet (with the nonce when the CSP asks for it) and the title. */
export function webviewPage(caller: string, o: WebviewPageOptions): string {
  checkNonce(o.nonce, caller);
  const esc = (s: string) => escapeHtml(s, o.numericEntities);
  const styleNonce = o.csp?.styleNonce ? ` nonce="${esc(o.nonce)}"` : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta http-equiv="Content-Security-Policy" content="${esc(webviewCsp(o.cspSource, o.nonce, o.csp))}">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  <link rel="stylesheet" href="${esc(o.styleUri)}"${styleNonce}>
  <title>${esc(o.title)}</title>
</head>
<body>
${o.body}
</body>
</html>`;
}

export function buildInspectHtml(o: InspectHtmlOptions): string {
  const nonce = escapeHtml(o.nonce);
  const skeleton = o.rows?.length
    ? o.rows
        .map(
          (r) => `    <section class="row status-scoring skeleton" data-path="${escapeHtml(r.path)}">
      <header class="row-header"><div class="row-title"><h2 class="file-name">${escapeHtml(r.name)}</h2><span class="file-path">${escapeHtml(r.displayPath)}</span></div></header>
      <div class="busy"><span class="spinner" aria-hidden="true"></span><span>Scoring…</span></div>
      <div class="images">${'<div class="no-image"></div>'.repeat(4)}</div>
    </section>`,
        )
        .join('\n')
    : `    <p class="placeholder">Scoring ${escapeHtml(o.title)}…</p>`;
  return webviewPage('buildInspectHtml', {
    ...o,
    // The live region is one short line (announce), not the whole panel: updates are read as "name: verdict, p".
    body: `  <div id="pair-bar" class="pair-bar"><span class="pair-text">Loading the pair…</span></div>
  <div id="announce" class="sr-only" role="status" aria-live="polite"></div>
  <main id="rows" class="rows">
${skeleton}
  </main>
  <script nonce="${nonce}" src="${escapeHtml(o.scriptUri)}"></script>`,
  });
}
