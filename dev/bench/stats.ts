/** Latency recording and summaries. */

/** Latency samples in milliseconds, up to a fixed capacity (later samples are counted, not kept). */
export class Latencies {
  private readonly samples: Float64Array;
  private n = 0;

  constructor(capacity: number) {
    this.samples = new Float64Array(Math.max(1, capacity));
  }

  add(ms: number): void {
    if (this.n < this.samples.length) this.samples[this.n] = ms;
    this.n++;
  }

  /** p50 and p99 of the samples kept (NaN when there are none). */
  summary(): { p50Ms: number; p99Ms: number } {
    const kept = this.samples.subarray(0, Math.min(this.n, this.samples.length)).sort();
    return { p50Ms: quantile(kept, 0.5), p99Ms: quantile(kept, 0.99) };
  }
}

/** The q-quantile of sorted values (nearest rank), NaN for none. */
export function quantile(sorted: Float64Array | readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/** The median of `values` (NaN for none). */
export function median(values: readonly number[]): number {
  return quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}
