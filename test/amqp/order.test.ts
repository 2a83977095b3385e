// Orchestrator and workers started in either order: tasks wait in the
// durable queue for workers, and workers wait on the queue for tasks.

import { describe, expect, it } from 'vitest';
import { IndexedStream, Runtime } from '../../src/runtime/index.ts';
import { FibAt, Sum } from './fixtures/operations.ts';
import { AMQP_URL, brokerAvailable, brokerSession, range } from './helpers.ts';

const available = brokerAvailable('test/amqp/order.test.ts');

describe.runIf(available)('Runtime.amqp start order', () => {
  const session = brokerSession();

  it('runs a directive started before any worker exists', async () => {
    const prefix = session.prefix('orchestrator-first');
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
    let dispatched = 0;
    const total = IndexedStream.from(range(1, 10))
      .map(FibAt)
      .fold(Sum)
      .run(runtime, { onProgress: (progress) => (dispatched = progress.dispatched) });
    // The tasks are out before a worker starts (the first progress report is the dispatch).
    await expect.poll(() => dispatched, { timeout: 20_000 }).toBe(10);
    const worker = session.worker(prefix);
    expect(await total).toBe(143);
    await worker.serving;
  });

  it('runs a directive on workers started before the orchestrator', async () => {
    const prefix = session.prefix('workers-first');
    const started = [session.worker(prefix), session.worker(prefix)];
    await Promise.all(started.map((worker) => worker.serving));
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
    expect(await IndexedStream.from(range(1, 10)).map(FibAt).fold(Sum).run(runtime)).toBe(143);
  });
});
