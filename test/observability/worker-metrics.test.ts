// `weft worker --metrics-port`: an AMQP worker process serves what its
// threads ran as Prometheus text, read back by a real parser.

import { describe, expect, it } from 'vitest';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { Runtime } from '../../src/runtime/index.ts';
import { AMQP_URL, brokerAvailable, brokerSession, range } from '../amqp/helpers.ts';
import { Increment, Spin } from '../amqp/fixtures/operations.ts';

const available = brokerAvailable('test/observability/worker-metrics.test.ts');

interface Family {
  name: string;
  metrics: { labels?: Record<string, string>; value?: string }[];
}

const SPIN_MS = 20;
const SPINS = 6;

describe.runIf(available)('weft worker --metrics-port', () => {
  const session = brokerSession();
  const prefix = session.prefix('metrics');

  it('serves the tasks its threads ran at /metrics, and nothing elsewhere', async () => {
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
    const worker = session.worker(prefix, ['--threads', '2', '--metrics-port', '0']);
    await worker.serving;
    const url = worker.stderr.map((line) => /metrics at (\S+)/.exec(line)?.[1]).find((found) => found !== undefined)!;
    expect(url).toMatch(/^http:\/\/localhost:\d+\/metrics$/);
    expect(await runtime.fanout(Increment, range(1, 500))).toEqual(range(2, 501));

    const response = await fetch(url);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusTextFormat(await response.text()) as Family[];
    const completed = families.find((family) => family.name === 'weft_tasks_completed_total')!;
    const increment = completed.metrics.find((metric) => metric.labels?.operation === Increment.name)!;
    expect(Number(increment.value)).toBe(500);
    const workers = families.find((family) => family.name === 'weft_worker_tasks_completed_total')!.metrics;
    expect(workers.reduce((sum, metric) => sum + Number(metric.value), 0)).toBe(500);
    expect(families.map((family) => family.name)).toContain('weft_task_run_seconds');

    expect((await fetch(new URL('/other', url))).status).toBe(404);
  });

  it('times tasks of known duration, and each of its threads\' busy time and utilization', async () => {
    // A prefix of its own: the worker of the test above serves the other.
    const timed = session.prefix('metrics-timed');
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix: timed });
    const worker = session.worker(timed, ['--threads', '2', '--metrics-port', '0']);
    await worker.serving;
    const url = worker.stderr.map((line) => /metrics at (\S+)/.exec(line)?.[1]).find((found) => found !== undefined)!;
    const inputs = Array.from({ length: SPINS }, (_, value) => ({ value, ms: SPIN_MS }));
    expect(await runtime.fanout(Spin, inputs)).toEqual(range(0, SPINS - 1));

    const text = await (await fetch(url)).text();
    const families = parsePrometheusTextFormat(text) as Family[];
    const family = (name: string) => families.find((f) => f.name === name)!.metrics;
    // This parser folds a summary's labelled series into one: read untyped, each sample line keeps its labels.
    const untyped = parsePrometheusTextFormat(text.replace(/^# TYPE \S+ summary\n/gm, '')) as Family[];
    const sample = (name: string, quantile?: string) =>
      Number(untyped.filter((f) => f.name === name).flatMap((f) => f.metrics).find((m) => m.labels?.operation === Spin.name && m.labels.quantile === quantile)!.value);
    expect(sample('weft_task_run_seconds_count')).toBe(SPINS);
    expect(sample('weft_task_run_seconds', '0.5')).toBeGreaterThanOrEqual(SPIN_MS / 1000 - 1e-6);
    expect(sample('weft_task_run_seconds_sum')).toBeGreaterThanOrEqual((SPINS * SPIN_MS) / 1000 - 1e-5);
    const busy = family('weft_worker_busy_seconds_total');
    const utilization = family('weft_worker_utilization');
    // Its threads, by index: the ones that ran tasks, each busy at least SPIN_MS per task it ran.
    expect(busy.length).toBeGreaterThanOrEqual(1);
    expect(busy.every((metric) => ['0', '1'].includes(metric.labels!.worker!))).toBe(true);
    expect(busy.reduce((sum, metric) => sum + Number(metric.value), 0)).toBeGreaterThanOrEqual((SPINS * SPIN_MS) / 1000 - 1e-5);
    for (const metric of family('weft_worker_tasks_completed_total')) {
      const seconds = Number(busy.find((b) => b.labels!.worker === metric.labels!.worker)!.value);
      expect(seconds).toBeGreaterThanOrEqual((Number(metric.value) * SPIN_MS) / 1000 - 1e-5);
    }
    expect(utilization.map((metric) => metric.labels!.worker).sort()).toEqual(busy.map((metric) => metric.labels!.worker).sort());
    for (const metric of utilization) {
      expect(Number(metric.value)).toBeGreaterThan(0);
      expect(Number(metric.value)).toBeLessThanOrEqual(1);
    }
  });

  it('refuses a port that is not one, naming it', async () => {
    const worker = session.worker(prefix, ['--metrics-port', '70000']);
    expect((await worker.exited).code).not.toBe(0);
    expect(worker.stderr.join('\n')).toMatch(/expected a TCP port .* got "70000"/);
  });
});
