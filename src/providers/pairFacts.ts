/**
 * What tells one pair from another in Select Pair…: the model, its input size and scaling, the tests that
 * decide a verdict with their shares of α, the held-out false alarms fit measured and the date, read from
 * the pair's ood-pair.json. Pure (no vscode, no file access), unit-tested in test/providers/pairFacts.test.ts.
 */
import { basename } from 'node:path';
import { scalingWords } from './createPairOptions';

const TEST_WORDS: Record<string, string> = { elbo: 'ELBO', complexity: 'S', confidence: 'confidence', energy: 'energy', knn: 'KNN', mahalanobis: 'Mahalanobis', layers: 'earlier layers' };

type Json = Record<string, unknown>;
const obj = (x: unknown): Json => (x && typeof x === 'object' && !Array.isArray(x) ? (x as Json) : {});
const nums = (x: unknown): number[] | undefined => (Array.isArray(x) && x.every((v) => typeof v === 'number') ? (x as number[]) : undefined);

/** One line of facts: "classifier.onnx (2 classes: 0°, 180°) · 192×48 RGB · (x/255 − 0.5)/0.5 · tests KNN 0.5, confidence 0.5 · held-out false alarms 1.8% at α = 0.01 · 2026-12-06". */
export function pairFactsLine(manifest: unknown, fallbackDate?: Date): string {
  const m = obj(manifest);
  const input = obj(m.input);
  const classifier = obj(m.classifier);
  const parts: string[] = [];
  // The model: its file in the pair and what it scores (fit copies any model in as classifier.onnx / .json).
  const labels = Array.isArray(classifier.labels) ? classifier.labels.filter((l): l is string => typeof l === 'string') : [];
  const scores = labels.length ? ` (${labels.length} classes${labels.length <= 4 ? `: ${labels.join(', ')}` : ''})` : '';
  if (typeof classifier.path === 'string') parts.push(`${basename(classifier.path)}${scores}`);
  if (typeof input.width === 'number' && typeof input.height === 'number') parts.push(`${input.width}×${input.height} ${input.channels === 3 ? 'RGB' : 'grey'}`);
  const range = nums(classifier.range) ?? nums(input.range);
  parts.push(scalingWords({ range: range?.length === 2 ? (range as [number, number]) : undefined, mean: nums(classifier.mean) ?? nums(input.mean), std: nums(classifier.std) ?? nums(input.std) }));
  const detectors = Array.isArray(m.detectors) ? m.detectors.map(obj).filter((d) => typeof d.test === 'string' && typeof d.share === 'number' && (d.share as number) > 0) : [];
  if (detectors.length) parts.push(`tests ${detectors.map((d) => `${TEST_WORDS[d.test as string] ?? d.test} ${+(d.share as number).toFixed(3)}`).join(', ')}`);
  else parts.push(m.vae ? 'tests ELBO, S, confidence' : 'test confidence');
  const fit = obj(m.fit);
  if (typeof fit.heldOutFalseAlarmRate === 'number') parts.push(`held-out false alarms ${(100 * fit.heldOutFalseAlarmRate).toFixed(1)}%${typeof fit.alpha === 'number' ? ` at α = ${fit.alpha}` : ''}`);
  else parts.push('held-out false alarms not recorded');
  const date = typeof fit.createdAt === 'string' && !Number.isNaN(Date.parse(fit.createdAt)) ? new Date(fit.createdAt) : fallbackDate;
  if (date) parts.push(date.toISOString().slice(0, 10));
  return parts.join(' · ');
}

/**
 * The configured pair's name before it is loaded (nothing is read: the folder name, which Create Pair and
 * `ood-lens fit` give the pair too; "mnist" for the built-in default).
 */
export function configuredPairName(setting: string | undefined): string {
  if (!setting) return 'mnist';
  const parts = setting.split(/[\\/]/).filter(Boolean);
  if (parts[parts.length - 1]?.toLowerCase().endsWith('.json')) parts.pop();
  return parts[parts.length - 1] ?? setting;
}
