/**
 * The shared formatter: one spelling per quantity wherever it is shown. Values are the p-values the built-in
 * MNIST pair produces (5,000 calibration images: 1/5001, and combined p-values over the `all` rule's shares).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatBitsPerDim, formatMsp, formatNats, formatP, headlineP, testPLabel } from '../../src/shared/format';

describe('shared number formatter', () => {
  test('p-values: two significant digits, scientific below 0.0001, "–" when missing', () => {
    assert.equal(formatP(1 / 5001), '0.0002');
    // The smallest combined p of the `all` rule: (1/5001) / 0.45.
    assert.equal(formatP(1 / 5001 / 0.45), '0.00044');
    assert.equal(formatP(0.2246), '0.22');
    assert.equal(formatP(0.0164), '0.016');
    assert.equal(formatP(1 / 50001 / 0.45), '4.4e-5');
    assert.equal(formatP(1), '1');
    assert.equal(formatP(1.2), '1');
    assert.equal(formatP(0), '0');
    assert.equal(formatP(null), '–');
    assert.equal(formatP(undefined), '–');
  });

  test('MSP: never a rounded-up 100.0% below 1', () => {
    assert.equal(formatMsp(0.99996), '>99.9%');
    assert.equal(formatMsp(0.9994), '99.9%');
    assert.equal(formatMsp(1), '100%');
    assert.equal(formatMsp(0.1855), '18.6%');
    assert.equal(formatMsp(null), '–');
  });

  test('nats and bits/dim', () => {
    assert.equal(formatNats(-105.44), '−105.4');
    assert.equal(formatNats(-0.04), '0.0');
    assert.equal(formatNats(-2.52e5), '−2.52e+5');
    assert.equal(formatBitsPerDim(0.19234), '0.192');
  });

  test('labels: the headline p is unnamed, every per-test p carries its test', () => {
    assert.equal(headlineP(1 / 5001 / 0.45), 'p = 0.00044');
    assert.equal(testPLabel('elbo', 1 / 5001), 'ELBO test p = 0.0002');
    assert.equal(testPLabel('confidence', 0.0164), 'confidence test p = 0.016');
  });
});
