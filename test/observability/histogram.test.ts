// The histogram behind runTime and waitTime: exact counts and extremes,
// percentiles within its stated 1.6 % of the exact ones, whatever the data.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Histogram } from '../../src/runtime/observability/histogram.ts';

/** The exact value at percentile `p` of sorted `values`, as the histogram ranks them. */
function exact(sorted: number[], p: number): number {
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
}

describe('Histogram', () => {
  it('summarises any durations: count, min, max, mean exact; percentiles within 1.6 %', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { minLength: 1, maxLength: 400 }), (values) => {
        const histogram = new Histogram();
        for (const value of values) histogram.record(value);
        const sorted = [...values].sort((a, b) => a - b);
        const summary = histogram.summary();
        expect(summary.count).toBe(values.length);
        expect(summary.min).toBe(sorted[0]! / 1000);
        expect(summary.max).toBe(sorted.at(-1)! / 1000);
        expect(summary.mean).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length / 1000, 6);
        for (const [field, p] of [['p50', 50], ['p75', 75], ['p90', 90], ['p99', 99], ['p99_9', 99.9]] as const) {
          const want = exact(sorted, p) / 1000;
          expect(Math.abs(summary[field] - want)).toBeLessThanOrEqual(want * 0.016 + 0.001);
        }
      }),
    );
  });

  it('counts runs of equal values exactly, with summaries read between them', () => {
    // Values from a few, in runs (as a batch of tiny tasks records them), and
    // a summary read at arbitrary points: each must count every value so far.
    const run = fc.record({ value: fc.constantFrom(0, 1, 2, 127, 128, 20_000), length: fc.integer({ min: 1, max: 40 }), read: fc.boolean() });
    fc.assert(
      fc.property(fc.array(run, { minLength: 1, maxLength: 30 }), (runs) => {
        const histogram = new Histogram();
        const values: number[] = [];
        for (const { value, length, read } of runs) {
          for (let i = 0; i < length; i++) {
            histogram.record(value);
            values.push(value);
          }
          if (!read) continue;
          const summary = histogram.summary();
          const mean = values.reduce((a, b) => a + b, 0) / values.length;
          const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
          expect(summary.count).toBe(values.length);
          expect(summary.min).toBe(Math.min(...values) / 1000);
          expect(summary.max).toBe(Math.max(...values) / 1000);
          expect(summary.mean).toBeCloseTo(mean / 1000, 9);
          expect(summary.stddev).toBeCloseTo(Math.sqrt(variance) / 1000, 6);
          const median = exact([...values].sort((a, b) => a - b), 50) / 1000;
          expect(Math.abs(summary.p50 - median)).toBeLessThanOrEqual(median * 0.016 + 0.001);
        }
        expect(histogram.summary().count).toBe(values.length);
      }),
    );
  });

  it('rounds fractions down, counts negatives as 0 and caps at 2^31 - 1 µs', () => {
    const histogram = new Histogram();
    histogram.record(1.9);
    histogram.record(-5);
    histogram.record(1e12);
    const summary = histogram.summary();
    expect(summary.min).toBe(0);
    expect(summary.max).toBe((2 ** 31 - 1) / 1000);
    expect(summary.p50).toBe(0.001);
  });

  it('is all zeros with nothing recorded, and after reset', () => {
    const histogram = new Histogram();
    histogram.record(5);
    histogram.reset();
    expect(histogram.summary()).toEqual({ count: 0, min: 0, max: 0, mean: 0, stddev: 0, p50: 0, p75: 0, p90: 0, p99: 0, p99_9: 0 });
  });
});
