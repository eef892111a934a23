/**
 * The CSV text every result file and report export is written with (output.ts `csvText`, d3-dsv): RFC 4180
 * quoting, numbers and empty cells as the result files have always had them, and what csv-parse reads back.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse } from 'csv-parse/sync';
import { csvText } from '../../../src/inference/datasets/output';

describe('csvText', () => {
  test('quotes a cell with a comma, a quote or a line break, and only those', () => {
    assert.equal(csvText([['a,b', 'say "hi"', 'line\nbreak', 'cr\rx', 'plain', ' spaced ', "'=1+2", 'ünï 🐔', 'tab\tx']]), '"a,b","say ""hi""","line\nbreak","cr\rx",plain, spaced ,\'=1+2,ünï 🐔,tab\tx\n');
  });

  test('numbers as JavaScript writes them, null and undefined as empty cells, one newline a row', () => {
    assert.equal(csvText([[0, -0, 1.5e-7, 1e21, -14.932887822017571, NaN, Infinity, null, undefined, '']]), '0,0,1.5e-7,1e+21,-14.932887822017571,NaN,Infinity,,,\n');
    assert.equal(csvText([['path', 'msp'], ['a.png', 0.5], ['b.png', null]]), 'path,msp\na.png,0.5\nb.png,\n');
  });

  test('csv-parse reads back every cell as written', () => {
    const rows = [['x"y,z\n', 'a\r\nb', '"', ',', 'ok'], ['', ' ', '\u2028', "'+1", '∑']];
    assert.deepEqual(parse(csvText(rows)), rows);
  });
});
