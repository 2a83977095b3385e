// One `weft worker --amqp --threads 2` process serves tasks on two worker
// threads, and its main thread (the broker connection) stays free while
// they spin.

import { describe, expect, it } from 'vitest';
import { Runtime } from '../../src/runtime/index.ts';
import { Increment, ThreadOf } from './fixtures/operations.ts';
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
});
