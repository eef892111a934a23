/**
 * HTML of the folder report webview. Pure (no vscode) so that the Content-Security-Policy is testable and a
 * browser harness can load the same page: only the nonce'd script runs, styles come from the extension's
 * media folder, images from the webview's resource roots (the scored folders) or data: URLs.
 */
import { randomBytes } from 'node:crypto';

export interface ReportHtmlOptions {
  /** `webview.cspSource`. */
  cspSource: string;
  nonce: string;
  /** Webview URIs of dist/webview/report.js and media/report.css. */
  scriptUri: string;
  styleUri: string;
  title: string;
}

export function makeReportNonce(): string {
  return randomBytes(16).toString('base64');
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function reportCsp(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `img-src ${cspSource} data: blob:`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
}

export function buildReportHtml(o: ReportHtmlOptions): string {
  if (!/^[A-Za-z0-9+/=]{16,}$/.test(o.nonce)) throw new Error('buildReportHtml: the nonce must be base64 with at least 16 characters');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${esc(reportCsp(o.cspSource, o.nonce))}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${esc(o.styleUri)}" nonce="${esc(o.nonce)}">
<title>${esc(o.title)}</title>
</head>
<body>
<main id="app" aria-busy="true"><p class="loading">Loading report…</p></main>
<script nonce="${esc(o.nonce)}" src="${esc(o.scriptUri)}"></script>
</body>
</html>`;
}
