// `Runtime.metrics()` in the Prometheus text exposition format (version
// 0.0.4), for a user's own /metrics endpoint and `weft worker
// --metrics-port`. Durations are summaries in seconds, as Prometheus names
// them; the quantiles are the histogram's (within 1.6 %).

import type { DurationSummary } from './histogram.ts';
import { PERCENTILES } from './histogram.ts';
import type { RuntimeMetrics } from './metrics.ts';

/** The content type a server should send `prometheusText` with. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function label(value: string | number): string {
  return String(value).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function number(value: number): string {
  return Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN';
}

class Family {
  readonly lines: string[] = [];
  constructor(name: string, type: 'counter' | 'gauge' | 'summary', help: string) {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }
  sample(name: string, labels: Record<string, string | number>, value: number): void {
    const pairs = Object.entries(labels).map(([key, v]) => `${key}="${label(v)}"`);
    this.lines.push(`${name}{${pairs.join(',')}} ${number(value)}`);
  }
}

function summary(family: Family, name: string, operation: string, durations: DurationSummary): void {
  for (const [field, , quantile] of PERCENTILES) family.sample(name, { operation, quantile }, durations[field] / 1000);
  family.sample(`${name}_sum`, { operation }, (durations.mean * durations.count) / 1000);
  family.sample(`${name}_count`, { operation }, durations.count);
}

/** `metrics` (from `Runtime.metrics()`) as Prometheus text, every name prefixed `weft_`. */
export function prometheusText(metrics: RuntimeMetrics): string {
  const completed = new Family('weft_tasks_completed_total', 'counter', 'Tasks that returned an output, by operation.');
  const failed = new Family('weft_tasks_failed_total', 'counter', 'Task attempts that failed (threw, timed out, lost their worker), by operation.');
  const retried = new Family('weft_tasks_retried_total', 'counter', 'Task attempts dispatched again after a transient failure or a timeout, by operation.');
  const run = new Family('weft_task_run_seconds', 'summary', 'How long completed tasks ran on their workers.');
  const wait = new Family('weft_task_wait_seconds', 'summary', 'How long completed tasks waited between dispatch and run, trips included.');
  for (const [operation, record] of Object.entries(metrics.operations)) {
    completed.sample('weft_tasks_completed_total', { operation }, record.completed);
    failed.sample('weft_tasks_failed_total', { operation }, record.failed);
    retried.sample('weft_tasks_retried_total', { operation }, record.retried);
    if (!metrics.timing) continue;
    summary(run, 'weft_task_run_seconds', operation, record.runTime);
    summary(wait, 'weft_task_wait_seconds', operation, record.waitTime);
  }
  const families = [completed, failed, retried];
  if (metrics.timing) {
    const busy = new Family('weft_worker_busy_seconds_total', 'counter', 'The summed run time of the tasks each worker completed.');
    const tasks = new Family('weft_worker_tasks_completed_total', 'counter', 'Tasks each worker completed.');
    const utilization = new Family('weft_worker_utilization', 'gauge', 'Busy time over the time since the metrics started: the mean number of tasks running.');
    for (const worker of metrics.workers) {
      const labels: Record<string, string | number> = worker.id === undefined ? { worker: worker.worker } : { worker: worker.worker, worker_id: worker.id };
      busy.sample('weft_worker_busy_seconds_total', labels, worker.busyMs / 1000);
      tasks.sample('weft_worker_tasks_completed_total', labels, worker.completed);
      utilization.sample('weft_worker_utilization', labels, worker.utilization);
    }
    families.push(run, wait, busy, tasks, utilization);
  }
  return families.map((family) => family.lines.join('\n')).join('\n') + '\n';
}
