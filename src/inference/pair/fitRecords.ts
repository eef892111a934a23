/** What `fit` recorded in a pair (the VAE it trained, the tests it chose), in lines for `info`, `eval` and the panels. */
import type { TestChoiceRecord, VaeTrainingRecord } from './manifest';

/** The trained VAE's record in one line, for `info` and the panels. */
export function vaeTrainingLine(r: VaeTrainingRecord): string {
  const time = r.seconds < 90 ? `${Math.round(r.seconds)} s` : `${Math.floor(r.seconds / 60)} min ${Math.round(r.seconds % 60)} s`;
  return `VAE trained by fit on ${r.trainImages.toLocaleString('en-US')} images: ${r.epochs} epochs in ${time} (${r.imagesPerSecond} images/s), loss ${r.lossCurve[0]} → ${r.lossCurve.at(-1)} nats; held-out ELBO ${r.heldOutElbo} nats${r.heldOutBitsPerDim !== undefined ? ` (${r.heldOutBitsPerDim} bits/dim)` : ''}${r.stoppedBy ? `; stopped by the ${r.stoppedBy}` : ''}`;
}

/** One line per test for `fit`'s output, `info` and `eval`. */
export function testChoiceLines(choice: TestChoiceRecord): string[] {
  return choice.tests.map((t) => `${t.test}: ${t.used ? `share ${t.share}` : 'not used'} — probe AUROC ${t.auroc.toFixed(3)}, catches ${(100 * t.caughtAt1Percent).toFixed(0)}% of probes at 1% false alarms${t.benignAlarms !== undefined ? `, flags ${benignPercent(t.benignAlarms)} of benign-shift probes${benignWorst(t.benignByKind)}` : ''}${t.reason ? `; ${t.reason}` : ''}`);
}

function benignPercent(rate: number): string {
  return `${(100 * rate).toFixed(1)}%`;
}

/** The benign kind a test flags most, when it stands out (above 2%): what the test sees that it should not. */
function benignWorst(byKind: Record<string, number> | undefined): string {
  const worst = Object.entries(byKind ?? {}).sort((a, b) => b[1] - a[1])[0];
  return worst && worst[1] > 0.02 ? ` (${worst[0]} ${benignPercent(worst[1])})` : '';
}
