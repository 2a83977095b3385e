// Orchestrator and workers started in either order: tasks wait in the
// durable queue for workers, and workers wait on the queue for tasks.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IndexedStream, Runtime } from '../../src/runtime/index.ts';
import { FibAt, Sum } from './fixtures/operations.ts';
import { AMQP_URL, brokerAvailable, deleteTopology, lockBroker, startWorker, stopWorkers, uniquePrefix, type WorkerProcess } from './helpers.ts';

const available = await brokerAvailable('test/amqp/order.test.ts');
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe.runIf(available)('Runtime.amqp start order', () => {
  let unlock: () => void;
  const prefixes: string[] = [];
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    unlock = await lockBroker();
  }, 180_000);

  afterAll(async () => {
    await stopWorkers(workers);
    for (const prefix of prefixes) await deleteTopology(prefix).catch(() => {});
    unlock?.();
  });

  it('runs a directive started before any worker exists', async () => {
    const prefix = uniquePrefix('orchestrator-first');
    prefixes.push(prefix);
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
    let dispatched = 0;
    const total = IndexedStream.from(range(1, 10))
      .map(FibAt)
      .fold(Sum)
      .run(runtime, { onProgress: (progress) => (dispatched = progress.dispatched) });
    // The tasks are out before a worker starts (the first progress report is the dispatch).
    await expect.poll(() => dispatched).toBe(10);
    const worker = startWorker(prefix);
    workers.push(worker);
    expect(await total).toBe(143);
    await worker.serving;
  });

  it('runs a directive on workers started before the orchestrator', async () => {
    const prefix = uniquePrefix('workers-first');
    prefixes.push(prefix);
    const started = [startWorker(prefix), startWorker(prefix)];
    workers.push(...started);
    await Promise.all(started.map((worker) => worker.serving));
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
    expect(await IndexedStream.from(range(1, 10)).map(FibAt).fold(Sum).run(runtime)).toBe(143);
  });
});
