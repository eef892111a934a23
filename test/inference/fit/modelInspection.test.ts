/** What the user must supply when a model file leaves its input layout or size open. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openDimensions } from '../../../src/inference/fit/modelInspection';

const model = (shape: (number | null)[] | null, inputs = 1) => ({ inputs: Array.from({ length: inputs }, (_, i) => ({ name: `x${i}`, shape, dtype: 'float32' })) });

test('layout and size: asked only where the file leaves them open', () => {
  assert.deepEqual(openDimensions(model([null, 1, 28, 28])), []);
  assert.deepEqual(openDimensions(model([1, 28, 28, 1])), []);
  // torchvision export with dynamic axes: channels first, size free.
  assert.deepEqual(openDimensions(model([null, 3, null, null])), ['size']);
  assert.deepEqual(openDimensions(model([null, null, null, 3])), ['size']);
  // Nothing fixed at all: both.
  assert.deepEqual(openDimensions(model([null, null, null, null])), ['layout', 'size']);
  // 3×…×3: either axis could hold the channels.
  assert.deepEqual(openDimensions(model([null, 3, 32, 3])), ['layout']);
  // Given answers close them.
  assert.deepEqual(openDimensions(model([null, null, null, null]), { layout: 'NCHW', size: { width: 64, height: 64 } }), []);
  assert.deepEqual(openDimensions(model([null, null, null, null]), { layout: 'NHWC' }), ['size']);
  // Nothing the user can give makes a flat vector or a two-input model an image classifier.
  assert.deepEqual(openDimensions(model([null, 784])), []);
  assert.deepEqual(openDimensions(model([null, 1, 28, 28], 2)), []);
  assert.deepEqual(openDimensions(model(null)), []);
});
