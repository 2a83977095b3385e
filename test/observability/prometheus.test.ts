// prometheusText(): Runtime.metrics() as Prometheus text, read back by a
// real parser of the exposition format.

import { describe, expect, it } from 'vitest';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { IndexedStream, prometheusText, Runtime } from '../../src/index.ts';
import { Busy, FlakyOnce } from './fixtures/operations.ts';

interface Family {
  name: string;
  type: string;
  help: string;
  metrics: { labels?: Record<string, string>; value?: string; quantiles?: Record<string, string>; count?: string; sum?: string }[];
}

describe('prometheusText', () => {
  it('renders counters, run/wait summaries in seconds and worker gauges that a parser reads back', async () => {
    const runtime = Runtime.local({ retry: { retries: 1, delayMs: () => 0 } });
    await runtime.fanout(Busy, [10, 10, 10]);
    await IndexedStream.from([1, 2]).map(FlakyOnce).run(runtime);
    const metrics = runtime.metrics();
    const text = prometheusText(metrics);
    const families = parsePrometheusTextFormat(text) as Family[];
    // This parser folds a summary's series into one (it keeps quantiles,
    // drops labelled _sum and _count): read untyped, every sample line keeps
    // its labels, so each series can be checked.
    const untyped = parsePrometheusTextFormat(text.replace(/^# TYPE \S+ summary\n/gm, '')) as Family[];
    const family = (name: string) => families.find((f) => f.name === name)!;
    const sample = (name: string, operation: string) => family(name).metrics.find((m) => m.labels?.operation === operation)!;
    const series = (name: string, operation: string) => {
      // Untyped, the lines of one name make a family for each run of them.
      const lines = untyped.filter((f) => f.name === name).flatMap((f) => f.metrics.filter((m) => m.labels?.operation === operation));
      return Object.fromEntries(lines.map((m) => [m.labels?.quantile ?? 'value', Number(m.value)]));
    };

    expect(family('weft_tasks_completed_total').type).toBe('COUNTER');
    expect(Number(sample('weft_tasks_completed_total', 'obs.Busy').value)).toBe(3);
    expect(Number(sample('weft_tasks_failed_total', 'obs.FlakyOnce').value)).toBe(2);
    expect(Number(sample('weft_tasks_retried_total', 'obs.FlakyOnce').value)).toBe(2);

    expect(family('weft_task_run_seconds').type).toBe('SUMMARY');
    const run = series('weft_task_run_seconds', 'obs.Busy');
    expect(Object.keys(run).sort()).toEqual(['0.5', '0.75', '0.9', '0.99', '0.999']);
    expect(run['0.5']).toBeCloseTo(metrics.operations['obs.Busy']!.runTime.p50 / 1000, 9);
    expect(run['0.5']).toBeGreaterThanOrEqual(0.01 - 1e-6);
    expect(series('weft_task_run_seconds_count', 'obs.Busy').value).toBe(3);
    expect(series('weft_task_run_seconds_sum', 'obs.Busy').value).toBeGreaterThanOrEqual(0.03 - 1e-5);
    expect(series('weft_task_wait_seconds_count', 'obs.Busy').value).toBe(3);
    expect(series('weft_task_run_seconds_count', 'obs.FlakyOnce').value).toBe(2);

    expect(family('weft_worker_utilization').type).toBe('GAUGE');
    const worker = family('weft_worker_busy_seconds_total').metrics.find((m) => m.labels?.worker === '0')!;
    expect(Number(worker.value)).toBeCloseTo(metrics.workers[0]!.busyMs / 1000, 9);
    await runtime.close();
  });

  it('escapes operation names that hold quotes, backslashes and newlines', async () => {
    const { defineOperation } = await import('../../src/index.ts');
    const odd = 'obs."odd"\\name\nhere';
    const Odd = defineOperation(odd, (n: number) => n);
    const runtime = Runtime.local();
    await runtime.call(Odd, 1);
    const families = parsePrometheusTextFormat(prometheusText(runtime.metrics())) as Family[];
    const completed = families.find((f) => f.name === 'weft_tasks_completed_total')!;
    expect(completed.metrics.map((m) => m.labels?.operation)).toContain(odd);
    await runtime.close();
  });

  it('leaves the time families out when recordTiming is false', async () => {
    const runtime = Runtime.local({ recordTiming: false });
    await runtime.fanout(Busy, [1]);
    const names = (parsePrometheusTextFormat(prometheusText(runtime.metrics())) as Family[]).map((f) => f.name);
    expect(names).toEqual(['weft_tasks_completed_total', 'weft_tasks_failed_total', 'weft_tasks_retried_total']);
    await runtime.close();
  });
});
