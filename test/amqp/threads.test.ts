// One `weft worker --amqp --threads 2` process serves tasks on two worker
// threads, and its main thread (the broker connection) stays free while
// they spin. A worker whose threads fail for good stops with an error code.

import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Runtime } from '../../src/runtime/index.ts';
import { BreakThreads, Increment, ThreadOf, unreplaceableMarker } from './fixtures/operations.ts';
import { AMQP_URL, brokerAvailable, brokerSession, range } from './helpers.ts';

const available = brokerAvailable('test/amqp/threads.test.ts');

describe.runIf(available)('weft worker --threads', () => {
  const session = brokerSession();
  const prefix = session.prefix('threads');

  it('runs the tasks of one worker process on 2 threads', async () => {
    // One task per message, so the two threads take messages side by side.
    await using oneByOne = await Runtime.amqp({ url: AMQP_URL, prefix, maxBatch: 1 });
    const worker = session.worker(prefix, ['--threads', '2']);
    await worker.serving;
    const threads = await oneByOne.fanout(ThreadOf, range(1, 40).map(() => 20));
    expect(new Set(threads).size).toBe(2);
    for (const thread of threads) expect(thread).toBeGreaterThan(0);
    // And many tiny tasks in batches, spread over both.
    await using batched = await Runtime.amqp({ url: AMQP_URL, prefix });
    expect(await batched.fanout(Increment, range(0, 9_999))).toEqual(range(1, 10_000));
  });

  it('stops with exit code 1, saying why, when a dead thread cannot be replaced', async () => {
    const broken = session.prefix('threads-broken');
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix: broken });
    const worker = session.worker(broken, ['--threads', '1']);
    await worker.serving;
    const controller = new AbortController();
    const directive = runtime.call(BreakThreads, null, { signal: controller.signal }).catch((error: unknown) => error);
    try {
      const { code } = await worker.exited;
      expect(code).toBe(1);
      expect(worker.stderr.join('\n')).toMatch(/stopped: its worker threads failed for good: worker 0 failed to start: .*refuses to load in process/);
    } finally {
      controller.abort();
      await directive;
      rmSync(unreplaceableMarker(worker.child.pid!), { force: true });
    }
  });
});
