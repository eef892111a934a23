/**
 * HTML of the folder report webview. Pure (no vscode) so that the Content-Security-Policy is testable and a
 * browser harness can load the same page: only the nonce'd script runs, styles come from the extension's
 * media folder, images from the webview's resource roots (the scored folders) or data: URLs.
 */
import { type CspOptions, escapeHtml, makeNonce, webviewCsp, webviewPage } from './html';

export interface ReportHtmlOptions {
  /** `webview.cspSource`. */
  cspSource: string;
  nonce: string;
  /** Webview URIs of dist/webview/report.js and media/report.css. */
  scriptUri: string;
  styleUri: string;
  title: string;
}

export const makeReportNonce = makeNonce;

/** Images may also be blob: URLs; the stylesheet carries the nonce. */
const REPORT_CSP: CspOptions = { extraImgSrc: ['blob:'], styleNonce: true };

export function reportCsp(cspSource: string, nonce: string): string {
  return webviewCsp(cspSource, nonce, REPORT_CSP);
}

export function buildReportHtml(o: ReportHtmlOptions): string {
  return webviewPage('buildReportHtml', {
    ...o,
    csp: REPORT_CSP,
    numericEntities: true,
    body: `<main id="app" aria-busy="true"><p class="loading">Loading report…</p></main>
<script nonce="${escapeHtml(o.nonce, true)}" src="${escapeHtml(o.scriptUri, true)}"></script>`,
  });
}
