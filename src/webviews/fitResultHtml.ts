/**
 * HTML of the Create Pair result panel. Pure (no vscode), so that its Content-Security-Policy is testable:
 * the shared webview shell (html.ts) — nothing by default, the one script by nonce, styles from the
 * extension's media folder.
 */
import { escapeHtml, webviewPage } from './html';

export interface FitResultHtmlOptions {
  cspSource: string;
  nonce: string;
  /** Webview URIs of dist/webview/fitResult.js and media/fitResult.css. */
  scriptUri: string;
  styleUri: string;
  title: string;
}

export function buildFitResultHtml(o: FitResultHtmlOptions): string {
  return webviewPage('buildFitResultHtml', {
    ...o,
    body: `<main id="app" aria-busy="true"><p class="loading">Loading the new pair's results…</p></main>
<script nonce="${escapeHtml(o.nonce)}" src="${escapeHtml(o.scriptUri)}"></script>`,
  });
}
