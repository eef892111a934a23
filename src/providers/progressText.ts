/** Progress text for long scans: count, rate (smoothed over the last seconds) and time left. No `vscode`. */
import { formatDuration } from '../shared/reportModel';

/** Images per second over a sliding window of recent updates. */
export class RateMeter {
  private readonly samples: { t: number; n: number }[] = [];
  constructor(private readonly windowMs = 5000, private readonly now: () => number = Date.now) {}

  update(count: number): void {
    const t = this.now();
    this.samples.push({ t, n: count });
    while (this.samples.length > 2 && t - this.samples[0].t > this.windowMs) this.samples.shift();
  }

  /** Items per second, or null before two updates a moment apart. */
  get rate(): number | null {
    if (this.samples.length < 2) return null;
    const a = this.samples[0];
    const b = this.samples[this.samples.length - 1];
    const dt = (b.t - a.t) / 1000;
    return dt > 0.2 ? (b.n - a.n) / dt : null;
  }
}

const nf = new Intl.NumberFormat('en-US');

/** "1,234 of 10,000 · 850 images/s · about 0:11 left · 200 from cache". */
export function progressMessage(done: number, total: number, cached: number, meter: RateMeter): string {
  const parts = [`${nf.format(done)} of ${nf.format(total)}`];
  const rate = meter.rate;
  if (rate !== null && rate > 0) {
    parts.push(`${rate >= 10 ? nf.format(Math.round(rate)) : rate.toFixed(1)} images/s`);
    parts.push(`about ${formatDuration((total - done) / rate)} left`);
  }
  if (cached) parts.push(`${nf.format(cached)} from cache`);
  return parts.join(' · ');
}
