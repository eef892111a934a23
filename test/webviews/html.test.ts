/** The Inspect panel's HTML: a strict CSP with a fresh nonce, only the extension's own resources, no inline code. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildInspectHtml, escapeHtml, inspectCsp, makeNonce } from '../../src/webviews/html';

const cspSource = 'https://file+.vscode-resource.vscode-cdn.net';
const base = `${cspSource}/ext`;

function page(title = 'cat.png', nonce = makeNonce()) {
  const html = buildInspectHtml({
    cspSource,
    nonce,
    scriptUri: `${base}/dist/webview/inspect.js`,
    styleUri: `${base}/media/inspect.css`,
    title,
  });
  return { html, nonce };
}

function cspOf(html: string): Map<string, string[]> {
  const m = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html);
  assert.ok(m, 'no CSP meta tag');
  const decoded = m[1].replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, '&');
  return new Map(decoded.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));
}

describe('inspect panel HTML', () => {
  test('CSP: nothing by default, scripts only by nonce, images/styles/fonts only from the webview origin', () => {
    const { html, nonce } = page();
    const csp = cspOf(html);
    assert.deepEqual(csp.get('default-src'), ["'none'"]);
    assert.deepEqual(csp.get('script-src'), [`'nonce-${nonce}'`]);
    assert.deepEqual(csp.get('img-src'), [cspSource, 'data:']);
    assert.deepEqual(csp.get('style-src'), [cspSource]);
    assert.deepEqual(csp.get('font-src'), [cspSource]);
    for (const values of csp.values()) {
      for (const v of values) {
        assert.ok(!/unsafe-(inline|eval)|^\*$|^https?:$/.test(v), `permissive source ${v}`);
        if (/^https?:\/\//.test(v)) assert.equal(v, cspSource, `remote source ${v}`);
      }
    }
    assert.equal(inspectCsp(cspSource, 'abc'), `default-src 'none'; img-src ${cspSource} data:; style-src ${cspSource}; script-src 'nonce-abc'; font-src ${cspSource}`);
  });

  test('every script tag carries the nonce and loads a file of the extension; no inline script', () => {
    const { html, nonce } = page();
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    assert.equal(scripts.length, 1);
    for (const [, attrs, body] of scripts) {
      assert.match(attrs, new RegExp(`nonce="${nonce.replace(/[+/=]/g, (c) => `\\${c}`)}"`));
      const src = /src="([^"]+)"/.exec(attrs)?.[1];
      assert.ok(src?.startsWith(`${base}/`), `script from ${src}`);
      assert.equal(body.trim(), '', 'inline script body');
    }
    // One script: the panel's own bundle, with its two @vscode-elements controls inside (no second, 233 KB script to parse on a cold start).
    assert.match(html, /<script nonce="[^"]+" src="[^"]+\/dist\/webview\/inspect\.js"><\/script>/);
    assert.doesNotMatch(html, /bundled\.js/);
  });

  test('every URL in the page is the extension\'s own; no inline handlers or style attributes', () => {
    const { html } = page();
    const urls = [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.equal(urls.length, 2); // the stylesheet and the script
    for (const u of urls) assert.ok(u.startsWith(`${base}/`), u);
    assert.doesNotMatch(html, /\son[a-z]+\s*=/i);
    assert.doesNotMatch(html, /\sstyle\s*=/i);
    assert.doesNotMatch(html, /<style\b/i);
    assert.doesNotMatch(html, /javascript:/i);
  });

  test('the title is escaped and each page gets a fresh nonce', () => {
    const { html } = page('<img src=x onerror=alert(1)>.png');
    assert.ok(!html.includes('<img src=x'));
    assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;.png'));
    const nonces = new Set(Array.from({ length: 50 }, () => makeNonce()));
    assert.equal(nonces.size, 50);
    for (const n of nonces) assert.match(n, /^[A-Za-z0-9+/]{22}==$/);
    assert.throws(() => page('x', "abc' 'unsafe-inline"), /nonce/);
    assert.equal(escapeHtml(`"a" & 'b'`), '&quot;a&quot; &amp; &#39;b&#39;');
  });
});
