/**
 * One formatter per quantity, shared by every place a user reads a number: the Inspect panel, manifest hovers
 * and row notes, Explorer badges, the folder report, notifications, the log and the CLI table. Pure (no vscode,
 * no DOM), so the webview bundles use it too. Exports (CSV/JSON) carry the unrounded values of the same fields.
 *
 * The headline p-value of an image is always `ImageResult.pValue`: the verdict's combined p-value (the smallest
 * test p-value over its share of α), so that the image is out-of-distribution exactly when it is below α.
 * Per-test p-values are always shown with their test's name (`testPLabel`).
 */
import type { TestName } from './rules';

/**
 * A p-value with two significant digits: "0.41", "0.034", "0.002", "0.00044"; below 0.0001 in scientific
 * notation ("5.0e-5"). `–` for a missing value.
 */
export function formatP(p: number | null | undefined): string {
  if (p === null || p === undefined) return '–';
  if (!Number.isFinite(p)) return String(p);
  if (p >= 1) return '1';
  if (p <= 0) return '0';
  if (p < 1e-4) return p.toExponential(1);
  return String(Number(p.toPrecision(2)));
}

/** Classifier confidence (MSP): "99.2%", ">99.9%" — never a rounded-up "100.0%" for a probability below 1. */
export function formatMsp(msp: number | null | undefined): string {
  if (msp === null || msp === undefined || !Number.isFinite(msp)) return '–';
  if (msp >= 1) return '100%';
  if (msp >= 0.9995) return '>99.9%';
  return `${(msp * 100).toFixed(1)}%`;
}

/** A share as a percentage with one decimal, more where one would round up to 100% ("99.98%"). */
export function formatPercent(share: number): string {
  const pct = share * 100;
  for (let digits = 1; digits <= 3; digits++) {
    const text = pct.toFixed(digits);
    if (Number(text) < 100 || pct >= 100) return `${Number(text).toFixed(pct >= 100 ? 0 : digits)}%`;
  }
  return '>99.999%';
}

/** A number of nats with one decimal and a real minus sign ("−105.4"); scientific from 100,000 on. */
export function formatNats(v: number | null | undefined): string {
  if (v === null || v === undefined) return '–';
  if (!Number.isFinite(v)) return String(v);
  const text = Math.abs(v) >= 1e5 ? Math.abs(v).toExponential(2) : Math.abs(v).toFixed(1);
  return `${v < 0 && Number(text) !== 0 ? '−' : ''}${text}`;
}

/** Bits per dimension, three decimals. */
export function formatBitsPerDim(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(3);
}

/** The name a per-test p-value is shown under: "ELBO test p", "complexity test p", "confidence test p". */
export const TEST_P_LABEL: Record<TestName, string> = {
  elbo: 'ELBO test p',
  complexity: 'complexity test p',
  confidence: 'confidence test p',
  energy: 'energy test p',
  knn: 'KNN test p',
  mahalanobis: 'Mahalanobis test p',
  layers: 'earlier-layer test p',
  fisher: 'Fisher combination test p',
};

/** "ELBO test p = 0.0002": a per-test p-value, always with its test's name. */
export function testPLabel(test: TestName, p: number | null | undefined): string {
  return `${TEST_P_LABEL[test]} = ${formatP(p)}`;
}

/** "p = 0.00044": the headline (combined, verdict) p-value as every view writes it. */
export function headlineP(p: number | null | undefined): string {
  return `p = ${formatP(p)}`;
}
