/**
 * HTML of the Inspect panel's webview. Pure (no vscode): the caller passes the webview's CSP source and the
 * webview URIs as strings, so the Content-Security-Policy can be unit-tested. Only nonce'd scripts run;
 * nothing is loaded from outside the extension; images are the extension's own files or data: PNGs.
 */
import { randomBytes } from 'node:crypto';

export interface InspectHtmlOptions {
  /** `webview.cspSource`. */
  cspSource: string;
  /** A fresh nonce per page load (see makeNonce). */
  nonce: string;
  /** Webview URI of dist/webview/inspect.js (the bundled browser script with Chart.js). */
  scriptUri: string;
  /** Webview URI of media/inspect.css. */
  styleUri: string;
  /** Webview URI of @vscode-elements/elements' dist/bundled.js (an ES module). */
  elementsUri: string;
  /** Panel title (shown until the script renders). */
  title: string;
}

/** 128 random bits, base64: a CSP nonce. */
export function makeNonce(): string {
  return randomBytes(16).toString('base64');
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function inspectCsp(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `img-src ${cspSource} data:`,
    `style-src ${cspSource}`,
    `script-src 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
  ].join('; ');
}

export function buildInspectHtml(o: InspectHtmlOptions): string {
  if (!/^[A-Za-z0-9+/=]{16,}$/.test(o.nonce)) throw new Error('buildInspectHtml: the nonce must be base64 with at least 16 characters');
  const nonce = escapeHtml(o.nonce);
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta http-equiv="Content-Security-Policy" content="${escapeHtml(inspectCsp(o.cspSource, o.nonce))}">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  <link rel="stylesheet" href="${escapeHtml(o.styleUri)}">
  <title>${escapeHtml(o.title)}</title>
</head>
<body>
  <div id="pair-bar" class="pair-bar" role="status"></div>
  <main id="rows" class="rows" aria-live="polite">
    <p class="placeholder">Scoring ${escapeHtml(o.title)}…</p>
  </main>
  <script type="module" nonce="${nonce}" src="${escapeHtml(o.elementsUri)}"></script>
  <script nonce="${nonce}" src="${escapeHtml(o.scriptUri)}"></script>
</body>
</html>`;
}
