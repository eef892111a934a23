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
  // A flat vector (issue 22): layout "flat" and the image size it was made from; given, nothing is open.
  assert.deepEqual(openDimensions(model([null, 784])), ['layout', 'size']);
  assert.deepEqual(openDimensions(model([null, 784]), { layout: 'flat', size: { width: 28, height: 28 } }), []);
  // A two-input model: its other inputs are fixed to numbers first (extraInputs), not by layout or size.
  assert.deepEqual(openDimensions(model([null, 1, 28, 28], 2)), []);
  assert.deepEqual(openDimensions(model(null)), []);
});

test('Create Pair reads a flat uint8 model with a temperature input: the extra input is named, then the image is read', async () => {
  const { inspectModel } = await import('../../../src/inference/fit/modelInspection');
  const { thirdPartyModels } = await import('../../thirdParty');
  const path = (await thirdPartyModels()).flatUint8.classifier;
  const first = await inspectModel(path);
  assert.equal(first.image, null);
  assert.deepEqual(first.extraInputs?.map((t) => t.name), ['temperature']);
  const open = await inspectModel(path, { constants: { temperature: 1 } });
  assert.deepEqual(open.imageNeeds, ['layout', 'size']);
  const read = await inspectModel(path, { constants: { temperature: 1 }, layout: 'flat', size: { width: 28, height: 28 } });
  assert.deepEqual(read.image, { name: 'pixels', width: 28, height: 28, channels: 1, layout: 'flat', staticBatch: null, dtype: 'uint8' });
  assert.equal(read.classOutput?.classes, 10);
});
