// A histogram of durations in microseconds, log-linear like HdrHistogram:
// exact below 128 µs, then 64 buckets per power of two (a relative error
// under 1.6 %). Recording is a few integer operations and one array store,
// so it can run for every task; `perf_hooks.createHistogram` would cost a
// call into C++ per value, and is missing where weft may run (Deno, Bun).
// A value equal to the one before it only counts a repeat: the tasks of a
// batch of tiny ones mostly run 0 or 1 µs, and wait the same (they share a
// round trip), in runs of about 15, so most records are one comparison.

const SUB_BITS = 6;
const SUB = 1 << SUB_BITS;
// Values below this are their own bucket.
const LINEAR = 2 * SUB;
// Durations of 2^31 µs (about 36 minutes) and more count as MAX_VALUE.
const TOP_EXPONENT = 30;
const BUCKETS = LINEAR + (TOP_EXPONENT - SUB_BITS) * SUB;

// The largest value recorded as it is (an int32): about 36 minutes.
const MAX_VALUE = 2 ** 31 - 1;

/** The bucket of `us`, an integer from LINEAR to MAX_VALUE. */
function bucketAbove(us: number): number {
  const exponent = 31 - Math.clz32(us);
  return LINEAR + (exponent - SUB_BITS - 1) * SUB + ((us >>> (exponent - SUB_BITS)) & (SUB - 1));
}

/** The middle of bucket `bucket`: what a value in it is reported as. */
function middleOf(bucket: number): number {
  if (bucket < LINEAR) return bucket;
  const width = 2 ** Math.floor((bucket - LINEAR) / SUB + 1);
  return (SUB + ((bucket - LINEAR) % SUB)) * width + (width - 1) / 2;
}

/**
 * A summary of durations in milliseconds, with piscina's field names
 * (`p99_9` is the 99.9th percentile). Percentiles are within 1.6 % of the
 * recorded values; `min`, `max`, `mean` and `stddev` are exact to the
 * microsecond. All zero when nothing was recorded.
 */
export interface DurationSummary {
  readonly count: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly stddev: number;
  readonly p50: number;
  readonly p75: number;
  readonly p90: number;
  readonly p99: number;
  readonly p99_9: number;
}

/** The percentiles a summary names: field name, percentile, and the quantile as Prometheus writes it. */
export const PERCENTILES = [
  ['p50', 50, '0.5'],
  ['p75', 75, '0.75'],
  ['p90', 90, '0.9'],
  ['p99', 99, '0.99'],
  ['p99_9', 99.9, '0.999'],
] as const;

export class Histogram {
  private counts = new Float64Array(BUCKETS);
  private count = 0;
  private min = Infinity;
  private max = 0;
  private sum = 0;
  private squares = 0;
  /** The last value recorded, and how many times it was recorded again since: not yet in the figures above. */
  private last = -1;
  private repeats = 0;

  /** Records a duration of `us` microseconds (rounded down; negative counts as 0, 36 minutes and more as 36 minutes). */
  record(us: number): void {
    // An int32 from here on: `| 0` truncates where Math.floor would call out.
    const value = us >= MAX_VALUE ? MAX_VALUE : us > 0 ? us | 0 : 0;
    if (value === this.last) {
      this.repeats++;
      return;
    }
    if (this.repeats > 0) this.settle();
    this.last = value;
    this.counts[value < LINEAR ? value : bucketAbove(value)]!++;
    this.count++;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    this.sum += value;
    this.squares += value * value;
  }

  /** Adds the repeats of the last value to the figures (min and max have it already). */
  private settle(): void {
    const { last: value, repeats } = this;
    this.counts[value < LINEAR ? value : bucketAbove(value)]! += repeats;
    this.count += repeats;
    this.sum += value * repeats;
    this.squares += value * value * repeats;
    this.repeats = 0;
  }

  reset(): void {
    this.last = -1;
    this.repeats = 0;
    this.counts.fill(0);
    this.count = 0;
    this.min = Infinity;
    this.max = 0;
    this.sum = 0;
    this.squares = 0;
  }

  /** The value at percentile `p` (0-100), in µs: the middle of its bucket, kept within min and max. */
  private percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      seen += this.counts[bucket]!;
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, middleOf(bucket)));
    }
    return this.max;
  }

  summary(): DurationSummary {
    if (this.repeats > 0) this.settle();
    if (this.count === 0) return { count: 0, min: 0, max: 0, mean: 0, stddev: 0, p50: 0, p75: 0, p90: 0, p99: 0, p99_9: 0 };
    const mean = this.sum / this.count;
    const variance = Math.max(0, this.squares / this.count - mean * mean);
    const ms = (us: number) => us / 1000;
    const summary: Record<string, number> = {
      count: this.count,
      min: ms(this.min),
      max: ms(this.max),
      mean: ms(mean),
      stddev: ms(Math.sqrt(variance)),
    };
    for (const [name, p] of PERCENTILES) summary[name] = ms(this.percentile(p));
    return summary as unknown as DurationSummary;
  }
}
