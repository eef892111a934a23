/** Messages from the Inspect webview are untrusted input; persisted state may come from an older version. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { browserShows, isImagePath, isInspectToHost, oneLine, persistedPaths } from '../../src/shared/inspectProtocol';

test('webview messages are validated before the host acts on them', () => {
  assert.ok(isInspectToHost({ type: 'ready' }));
  assert.ok(isInspectToHost({ type: 'rerun' }));
  assert.ok(isInspectToHost({ type: 'rerun', path: '/w/a.png' }));
  assert.ok(isInspectToHost({ type: 'openImage', path: '/w/a.png' }));
  assert.ok(!isInspectToHost({ type: 'openImage' }));
  assert.ok(!isInspectToHost({ type: 'revealInExplorer', path: 3 }));
  assert.ok(!isInspectToHost({ type: 'rerun', path: {} }));
  assert.ok(!isInspectToHost({ type: 'runCommand', command: 'workbench.action.terminal.new' }));
  assert.ok(!isInspectToHost(null));
  assert.ok(!isInspectToHost('ready'));
});

test('persisted state yields the image paths, or nothing when it is foreign', () => {
  assert.deepEqual(persistedPaths({ version: 1, paths: ['/w/a.png', '/w/b.jpg'] }), ['/w/a.png', '/w/b.jpg']);
  assert.deepEqual(persistedPaths({ version: 1, paths: ['/w/a.png', 7, ''] }), ['/w/a.png']);
  assert.deepEqual(persistedPaths({ version: 2, paths: ['/w/a.png'] }), []);
  assert.deepEqual(persistedPaths(undefined), []);
  assert.deepEqual(persistedPaths({ paths: 'x' }), []);
});

test('image files and the formats a browser shows', () => {
  for (const p of ['a.png', 'B.JPG', 'c.jpeg', 'd.webp', 'e.gif', 'f.bmp', 'g.tif', 'h.TIFF', 'i.avif']) assert.ok(isImagePath(`/w/${p}`), p);
  for (const p of ['a.txt', 'png', '/w/.png/x', 'a.png.csv', 'a.svg']) assert.ok(!isImagePath(p), p);
  assert.ok(browserShows('/w/a.png'));
  assert.ok(browserShows('/w/a.AVIF'));
  assert.ok(!browserShows('/w/a.tiff'));
});

test('a manifest error list reads on one line in a notification', () => {
  const msg = '/w/p/ood-pair.json: invalid pair manifest:\n  - input.width: is required\n  - vae: needs either path (one model) or encoder and decoder';
  assert.equal(oneLine(msg), '/w/p/ood-pair.json: invalid pair manifest: input.width: is required; vae: needs either path (one model) or encoder and decoder');
  assert.equal(oneLine('file not found'), 'file not found');
});
