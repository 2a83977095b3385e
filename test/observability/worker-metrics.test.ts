// `weft worker --metrics-port`: an AMQP worker process serves what its
// threads ran as Prometheus text, read back by a real parser.

import { describe, expect, it } from 'vitest';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { Runtime } from '../../src/runtime/index.ts';
import { AMQP_URL, brokerAvailable, brokerSession, range } from '../amqp/helpers.ts';
import { Increment } from '../amqp/fixtures/operations.ts';

const available = brokerAvailable('test/observability/worker-metrics.test.ts');

interface Family {
  name: string;
  metrics: { labels?: Record<string, string>; value?: string }[];
}

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

  it('refuses a port that is not one, naming it', async () => {
    const worker = session.worker(prefix, ['--metrics-port', '70000']);
    expect((await worker.exited).code).not.toBe(0);
    expect(worker.stderr.join('\n')).toMatch(/expected a TCP port .* got "70000"/);
  });
});
