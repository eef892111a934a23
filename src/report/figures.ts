/**
 * Report figures: Vega-Lite specs rendered to SVG by Vega's headless view and rasterised to PNG by sharp.
 * No canvas or browser needed, so figures render the same in CI, the CLI and tests.
 */
import sharp from '../inference/io/lazySharp';
import type { TopLevelSpec } from 'vega-lite';

export async function renderPng(spec: TopLevelSpec, path: string, scale = 2): Promise<void> {
  const vega = await import('vega');
  const vl = await import('vega-lite');
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG(scale);
  view.finalize();
  await sharp(Buffer.from(svg), { density: 72 * scale, limitInputPixels: false }).flatten({ background: '#ffffff' }).png().toFile(path);
}

const SET_COLOURS = { domain: ['MNIST', 'FashionMNIST', 'hen'], range: ['#1f77b4', '#ff7f0e', '#d62728'] };

/** Every image a thin vertical line, sorted by a score; one row per score. */
export function barcodeSpec(rows: { score: string; rank: number; set: string }[], title: string): TopLevelSpec {
  return {
    title,
    data: { values: rows },
    width: 900,
    height: 50,
    mark: { type: 'rect' },
    encoding: {
      row: { field: 'score', type: 'nominal', title: null, sort: ['sorted by MSP', 'sorted by ELBO'], header: { labelAngle: 0, labelAlign: 'left', labelFontSize: 12 } },
      x: { field: 'rank', type: 'quantitative', title: 'images sorted by score (left: most in-distribution-looking)', axis: { labels: false, ticks: false, grid: false } },
      x2: { field: 'next' },
      color: { field: 'set', type: 'nominal', scale: SET_COLOURS, title: 'set' },
    },
    transform: [{ calculate: 'datum.rank + 1', as: 'next' }],
    config: { view: { stroke: null } },
  } as TopLevelSpec;
}

export function histogramSpec(values: { value: number; set: string }[], field: string, title: string, maxbins = 60): TopLevelSpec {
  return {
    title,
    data: { values },
    width: 420,
    height: 220,
    mark: { type: 'bar', opacity: 0.65, binSpacing: 0 },
    encoding: {
      x: { field: 'value', type: 'quantitative', bin: { maxbins }, title: field },
      y: { aggregate: 'count', type: 'quantitative', stack: null, title: 'images' },
      color: { field: 'set', type: 'nominal', scale: SET_COLOURS },
    },
  } as TopLevelSpec;
}

export function rocSpec(points: { fpr: number; tpr: number; score: string }[], title: string): TopLevelSpec {
  return {
    title,
    data: { values: points },
    width: 360,
    height: 360,
    layer: [
      { mark: { type: 'line', interpolate: 'step-after' }, encoding: { x: { field: 'fpr', type: 'quantitative', title: 'false positive rate (in-distribution flagged)' }, y: { field: 'tpr', type: 'quantitative', title: 'true positive rate (OOD flagged)' }, color: { field: 'score', type: 'nominal', title: 'score' } } },
      { data: { values: [{ a: 0 }, { a: 1 }] }, mark: { type: 'line', strokeDash: [4, 4], color: '#999' }, encoding: { x: { field: 'a', type: 'quantitative' }, y: { field: 'a', type: 'quantitative' } } },
    ],
  } as TopLevelSpec;
}

/** Greyscale images as heat-map panels (one facet per image), e.g. inputs beside reconstructions. */
export function imagePanelsSpec(images: { title: string; width: number; height: number; pixels: Uint8Array }[], title: string): TopLevelSpec {
  const values: { panel: string; x: number; y: number; v: number; order: number }[] = [];
  images.forEach((img, order) => {
    for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) values.push({ panel: img.title, x, y, v: img.pixels[y * img.width + x], order });
  });
  return {
    title,
    data: { values },
    facet: { column: { field: 'panel', type: 'nominal', title: null, sort: { field: 'order' }, header: { labelFontSize: 11 } } },
    spec: {
      width: 128,
      height: 128,
      mark: { type: 'rect' },
      encoding: {
        x: { field: 'x', type: 'ordinal', axis: null },
        y: { field: 'y', type: 'ordinal', axis: null },
        color: { field: 'v', type: 'quantitative', scale: { domain: [0, 255], range: ['#000000', '#ffffff'] }, legend: null },
      },
    },
    config: { view: { stroke: null } },
  } as TopLevelSpec;
}
