/** The Create Pair result page: CSP (nothing by default, the one script by nonce), escaping, the bundle exists. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildFitResultHtml } from '../../src/webviews/fitResultHtml';
import { makeNonce } from '../../src/webviews/html';

test('the page allows only its nonce script and the webview origin, and escapes the title', () => {
  const nonce = makeNonce();
  const html = buildFitResultHtml({ cspSource: 'https://x.vscode-cdn.net', nonce, scriptUri: 'https://x.vscode-cdn.net/dist/webview/fitResult.js', styleUri: 'https://x.vscode-cdn.net/media/fitResult.css', title: 'OOD pair: <img src=x onerror=alert(1)>' });
  const csp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)![1].replace(/&#39;/g, "'");
  assert.match(csp, /^default-src 'none'; /);
  assert.ok(csp.includes(`script-src 'nonce-${nonce}'`));
  assert.ok(!/unsafe-(inline|eval)/.test(csp));
  assert.equal((html.match(/<script /g) ?? []).length, 1);
  assert.ok(html.includes(`<script nonce="${nonce}" src="https://x.vscode-cdn.net/dist/webview/fitResult.js">`));
  assert.ok(!html.includes('<img src=x'));
  assert.throws(() => buildFitResultHtml({ cspSource: 'x', nonce: "'unsafe-inline'", scriptUri: '', styleUri: '', title: '' }), /nonce/);
});

test('the panel script and stylesheet it names ship', () => {
  const root = join(__dirname, '..', '..');
  assert.ok(existsSync(join(root, 'src', 'webviews', 'ui', 'fitResult.ts')), 'src/webviews/ui/fitResult.ts (bundled to dist/webview/fitResult.js by scripts/build.mjs)');
  assert.ok(existsSync(join(root, 'media', 'fitResult.css')));
});
