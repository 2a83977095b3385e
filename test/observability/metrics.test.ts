// Runtime.metrics(): counts and time summaries per operation, and per-worker
// figures, checked against tasks of known duration on every channel backend.

import perfHooks from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { Config } from '../../src/allocator/index.ts';
import { IndexedStream, Runtime, type RuntimeMetrics } from '../../src/runtime/index.ts';
import { Busy, FlakyOnce, Increment } from './fixtures/operations.ts';

const operations = new URL('./fixtures/operations.ts', import.meta.url);
const BUSY_MS = 25;
const TASKS = 6;

/** What every backend must show after TASKS tasks of BUSY_MS each (bounds generous for a loaded machine). */
function expectBusyRun(metrics: RuntimeMetrics, workers: number): void {
  const busy = metrics.operations['obs.Busy']!;
  expect(busy.completed).toBe(TASKS);
  expect(busy.failed).toBe(0);
  expect(busy.retried).toBe(0);
  const run = busy.runTime;
  expect(run.count).toBe(TASKS);
  // A task holds its thread for BUSY_MS at least; its recorded time is in whole µs.
  expect(run.min).toBeGreaterThanOrEqual(BUSY_MS - 0.001);
  expect(run.max).toBeGreaterThanOrEqual(run.p99_9);
  expect(run.p50).toBeGreaterThanOrEqual(run.min);
  expect(run.mean).toBeLessThan(BUSY_MS * 20);
  expect(run.stddev).toBeGreaterThanOrEqual(0);
  // With `workers` workers, some task waited behind at least
  // TASKS / workers - 1 others on its worker.
  const queued = Math.ceil(TASKS / workers) - 1;
  expect(busy.waitTime.count).toBe(TASKS);
  expect(busy.waitTime.max).toBeGreaterThanOrEqual(queued * BUSY_MS * 0.98);
  expect(metrics.workers.length).toBeGreaterThanOrEqual(1);
  expect(metrics.workers.length).toBeLessThanOrEqual(workers);
  const busyMs = metrics.workers.reduce((sum, worker) => sum + worker.busyMs, 0);
  expect(busyMs).toBeGreaterThanOrEqual(TASKS * BUSY_MS - 0.01);
  expect(metrics.workers.reduce((sum, worker) => sum + worker.completed, 0)).toBe(TASKS);
  for (const worker of metrics.workers) {
    expect(worker.utilization).toBeGreaterThan(0);
    expect(worker.utilization).toBeLessThanOrEqual(1);
  }
}

describe('Runtime.metrics', () => {
  it('on Runtime.local: run and wait times of tasks of known duration, one worker', async () => {
    const runtime = Runtime.local();
    await runtime.fanout(Busy, Array(TASKS).fill(BUSY_MS));
    const metrics = runtime.metrics();
    expectBusyRun(metrics, 1);
    expect(metrics.workers.map((worker) => worker.worker)).toEqual([0]);
    // One thread ran them one after the other: the last waited for all the others.
    expect(metrics.operations['obs.Busy']!.waitTime.max).toBeGreaterThanOrEqual((TASKS - 1) * BUSY_MS * 0.98);
    expect(metrics.timing).toBe(true);
    await runtime.close();
  });

  it('on Runtime.inMemory: per-thread figures from the threads that ran the tasks', async () => {
    await using runtime = await Runtime.inMemory({ workers: 2, operations });
    await runtime.fanout(Busy, Array(TASKS).fill(BUSY_MS));
    expectBusyRun(runtime.metrics(), 2);
  });

  it('on Runtime.cluster: figures from the workers of the cluster', async () => {
    const runtime = (await Runtime.cluster(Config.process(3), { operations }))!;
    try {
      await runtime.fanout(Busy, Array(TASKS).fill(BUSY_MS));
      // Worker 0 relays; the other two run tasks.
      expectBusyRun(runtime.metrics(), 2);
      expect(runtime.metrics().workers.every((worker) => worker.worker > 0)).toBe(true);
    } finally {
      await runtime.close();
    }
  });

  it('counts failed and retried attempts per operation, and each operation of a chain apart', async () => {
    const runtime = Runtime.local({ retry: { retries: 2, delayMs: () => 0 } });
    expect(await IndexedStream.from([1, 2, 3]).map(FlakyOnce).map(Increment).run(runtime)).toEqual([2, 3, 4]);
    const { operations: byName } = runtime.metrics();
    expect(byName['obs.FlakyOnce']).toMatchObject({ completed: 3, failed: 3, retried: 3 });
    expect(byName['obs.Increment']).toMatchObject({ completed: 3, failed: 0, retried: 0 });
    expect(byName['obs.FlakyOnce']!.runTime.count).toBe(3);
    await runtime.close();
  });

  it('resetMetrics() starts afresh', async () => {
    const runtime = Runtime.local();
    await runtime.fanout(Increment, [1, 2, 3]);
    const before = runtime.metrics();
    runtime.resetMetrics();
    const after = runtime.metrics();
    expect(before.operations['obs.Increment']!.completed).toBe(3);
    expect(after.operations['obs.Increment']).toMatchObject({ completed: 0, failed: 0, retried: 0 });
    expect(after.operations['obs.Increment']!.runTime.count).toBe(0);
    expect(after.workers).toEqual([]);
    expect(after.since).toBeGreaterThanOrEqual(before.since);
    await runtime.fanout(Increment, [1]);
    expect(runtime.metrics().operations['obs.Increment']!.completed).toBe(1);
    await runtime.close();
  });

  it('recordTiming: false keeps the counts and records no time', async () => {
    const runtime = Runtime.local({ recordTiming: false });
    await runtime.fanout(Busy, [5, 5]);
    const metrics = runtime.metrics();
    expect(metrics.timing).toBe(false);
    expect(metrics.operations['obs.Busy']!.completed).toBe(2);
    expect(metrics.operations['obs.Busy']!.runTime.count).toBe(0);
    expect(metrics.operations['obs.Busy']!.waitTime.count).toBe(0);
    expect(metrics.workers).toEqual([]);
    await runtime.close();
  });

  it('recordTiming: false on worker threads: the counts of every task, no times, no workers', async () => {
    await using runtime = await Runtime.inMemory({ workers: 2, operations, recordTiming: false });
    await runtime.fanout(Busy, Array(TASKS).fill(1));
    const metrics = runtime.metrics();
    expect(metrics.timing).toBe(false);
    expect(metrics.operations['obs.Busy']).toMatchObject({ completed: TASKS, failed: 0, retried: 0 });
    expect(metrics.operations['obs.Busy']!.runTime.count).toBe(0);
    expect(metrics.operations['obs.Busy']!.waitTime.count).toBe(0);
    expect(metrics.workers).toEqual([]);
  });

  it('summarises run times where perf_hooks has no createHistogram (Deno, Bun)', async () => {
    const hooks = perfHooks as { createHistogram?: unknown };
    const saved = hooks.createHistogram;
    hooks.createHistogram = undefined;
    try {
      const runtime = Runtime.local();
      await runtime.fanout(Busy, Array(TASKS).fill(BUSY_MS));
      expectBusyRun(runtime.metrics(), 1);
      await runtime.close();
    } finally {
      hooks.createHistogram = saved;
    }
  });

  it('refuses a recordTiming that is not a boolean, naming it, before any thread starts', async () => {
    expect(() => Runtime.local({ recordTiming: 'no' as unknown as boolean })).toThrow(/recordTiming must be a boolean, got "no"/);
    await expect(Runtime.inMemory({ recordTiming: 1 as unknown as boolean, operations })).rejects.toThrow(/recordTiming must be a boolean, got 1/);
  });
});
