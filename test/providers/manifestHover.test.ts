/**
 * Issue 15 item 4: a dataset manifest's text is untrusted. The hostile CSV from the issue — a quoted,
 * multi-line path holding a Markdown command link — must render in the hover as plain text: no link, no
 * command, nothing outside the hover's own Inspect link (to this extension's command, with the row's path).
 * The hover Markdown is built by the real hover code with VS Code's MarkdownString escaping and rendered
 * with marked (the Markdown library VS Code's renderer uses).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { marked } from 'marked';
import type { ImageResult } from '../../src/inference/engine';
import { parseManifest } from '../../src/providers/datasetManifest';
import { commandLink, commandUri, HOVER_COMMANDS, thumbnailMarkdown, visibleText } from '../../src/providers/hoverMarkdown';
import { fileUriString, installVscodeStub, MarkdownString } from './vscodeStub';

installVscodeStub();
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ManifestController } = require('../../src/providers/manifestFeatures') as typeof import('../../src/providers/manifestFeatures');

const OUTSIDE = '/etc/ood-lens-secret.png';
const LINK = `[x](command:oodLens.manifest.inspect?${encodeURIComponent(JSON.stringify([OUTSIDE]))})`;

/** The hostile manifest of issue 15: the path field is quoted and spans lines so that a code span breaks. */
const HOSTILE_CSV = [
  'path,label',
  `"images/a\`b.png\`\n\n${LINK}\n\n\`.png","7 ${LINK} <img src=x onerror=alert(1)> $(gear)"`,
  `"images/ok.png","${LINK.replace(/"/g, '""')}"`,
  '',
].join('\n');

function result(path: string, over: Partial<ImageResult> = {}): ImageResult {
  return {
    path, prediction: 7, label: `seven ${LINK}`, msp: 0.99, entropy: 0.05, energy: -12, elbo: -88.2, reconstructionLogLik: -80, kl: 8.2, elboBitsPerDim: 0.12,
    logPxBound: null, complexityBits: 1234, complexityScore: 10.5, pValue: 0.42, pValues: { elbo: 0.42, complexity: 0.6, confidence: 0.3 }, firedBy: [], verdict: 'in-distribution', error: null,
    ...over,
  };
}

interface Rendered {
  html: string;
  links: string[];
  images: string[];
  text: string;
}

function render(md: MarkdownString): Rendered {
  const html = marked.parse(md.value, { async: false }) as string;
  const links = [...html.matchAll(/<a\s[^>]*href="([^"]*)"/g)].map((m) => m[1].replace(/&amp;/g, '&'));
  // VS Code reads a `|height=N` suffix off image URLs before rendering; marked keeps it (as %7C).
  const images = [...html.matchAll(/<img\s[^>]*src="([^"]*)"/g)].map((m) => m[1].replace(/(\||%7C)height=\d+$/, ''));
  const text = html.replace(/<br\s*\/?>/g, '\n').replace(/<[^>]+>/g, '').replace(/&nbsp;/g, ' ').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')
    // VS Code's renderer shows an escaped theme icon `\$(name)` as the literal `$(name)`.
    .replace(/\\\$\(/g, '$(');
  return { html, links, images, text };
}

function hoverMarkdown(): MarkdownString {
  const md = new MarkdownString(undefined, true);
  md.isTrusted = { enabledCommands: [...HOVER_COMMANDS] };
  return md;
}

describe('manifest hover with hostile text (issue 15 item 4)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'oodlens-hover-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the hostile CSV parses into a row whose path holds the link and newlines', async () => {
    const parsed = await parseManifest(HOSTILE_CSV, { format: 'csv', baseDir: dir, roots: [dir], restricted: true });
    assert.ok(parsed.isManifest);
    const row = parsed.rows.find((r) => r.path?.includes('command:'));
    assert.ok(row?.path, `a row with the hostile path: ${JSON.stringify(parsed.rows)}`);
    assert.match(row.path, /\n\n\[x\]\(command:/);
  });

  test('an unreadable hostile path renders as plain text with no link (file not found)', async () => {
    const parsed = await parseManifest(HOSTILE_CSV, { format: 'csv', baseDir: dir, roots: [dir], restricted: true });
    const row = parsed.rows.find((r) => r.path?.includes('command:'))!;
    const md = hoverMarkdown();
    md.appendMarkdown('**OOD Lens**  \n');
    ManifestController.renderProblem(md, 'File not found', row.path);
    const out = render(md);
    assert.deepEqual(out.links, [], `no link at all: ${out.html}`);
    assert.ok(!/<a[\s>]/.test(out.html), `no anchor element: ${out.html}`);
    // The path is shown whole, on one line, with its newlines written as \n.
    assert.ok(out.text.includes(`images/a\`b.png\`\\n\\n${LINK}\\n\\n\`.png`), `the path as text: ${out.text}`);
    assert.equal(out.text.trim().split("\n").length, 3, `three lines (title, problem, path): ${JSON.stringify(out.text)}`);
  });

  test('a scored row: hostile path, row label and model label stay text; the only link is Inspect with the row path', async () => {
    const parsed = await parseManifest(HOSTILE_CSV, { format: 'csv', baseDir: dir, roots: [dir], restricted: true });
    for (const row of parsed.rows.filter((r) => r.path)) {
      const md = hoverMarkdown();
      ManifestController.renderHover(md, row, result(row.path!), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'], fileUriString(row.path!));
      const out = render(md);
      assert.equal(out.links.length, 1, `exactly one link (Inspect): ${out.html}`);
      assert.equal(out.links[0], commandUri('oodLens.manifest.inspect', [row.path]));
      const args = JSON.parse(decodeURIComponent(out.links[0].slice('command:oodLens.manifest.inspect?'.length)));
      assert.deepEqual(args, [row.path], 'the Inspect link carries the row path and nothing else');
      assert.equal(out.images.length, 1, `the thumbnail only: ${out.html}`);
      assert.equal(out.images[0], fileUriString(row.path!));
      assert.ok(!/<img[^>]*onerror/.test(out.html) && !/<script/.test(out.html), 'no HTML from the label');
      assert.ok(out.text.includes(`seven ${LINK}`), `the model label as text: ${out.text}`);
      if (row.label) assert.ok(out.text.includes(visibleText(row.label)), `the row label as text: ${out.text}`);
      // Theme icons written in a label are not rendered as icons.
      if (row.label?.includes('$(gear)')) assert.ok(out.html.includes('\\$(gear)'), `the icon syntax from the label reaches the icon renderer escaped: ${out.html}`);
    }
  });

  test('an error result quoting the path stays text', () => {
    const path = join(dir, `x)\n\n${LINK}.png`);
    const md = hoverMarkdown();
    ManifestController.renderHover(md, { line: 1, start: 0, end: 1, rawPath: path, path, label: null, problem: null } as never, result(path, { verdict: 'error', error: `cannot decode ${path}` }), [], fileUriString(path));
    const out = render(md);
    assert.deepEqual(out.links, []);
    assert.ok(out.text.includes(visibleText(`cannot decode ${path}`)));
  });

  test('command links: own commands only, arguments that cannot end the link', () => {
    assert.throws(() => commandUri('workbench.action.terminal.new', []), /not a hover command/);
    const tricky = '/w/a) [y](command:evil) "t".png';
    const link = commandLink('Inspect', 'oodLens.manifest.inspect', [tricky], 'Open it');
    const out = render(new MarkdownString().appendMarkdown(link));
    assert.equal(out.links.length, 1);
    assert.deepEqual(JSON.parse(decodeURIComponent(out.links[0].split('?')[1])), [tricky]);
    assert.throws(() => commandLink('x', 'oodLens.manifest.inspect', [], 'a "quoted" tip'), /plain words/);
  });

  test('thumbnails: only URIs in the percent-encoded form', () => {
    assert.equal(thumbnailMarkdown('file:///w/a%20b.png', 96), '![thumbnail](file:///w/a%20b.png|height=96)');
    assert.equal(thumbnailMarkdown('file:///w/a) [x](command:y.png', 96), '');
    assert.equal(thumbnailMarkdown('command:oodLens.manifest.inspect', 96), '');
  });

  test('visibleText: controls and bidi overrides as escapes, long text cut', () => {
    assert.equal(visibleText('a\nb\r\tc\u202e\u0000'), 'a\\nb\\r\\tc\\u202e\\u0000');
    assert.equal(visibleText('x'.repeat(1000)).length, 400);
  });
});
