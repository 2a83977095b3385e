// Aborting one of two directives: it rejects with AbortError, every worker
// drops its queued tasks (told through the control fanout), and the other
// directive completes.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AbortError, Runtime } from '../../src/runtime/index.ts';
import { Increment, Logged } from './fixtures/operations.ts';
import { AMQP_URL, brokerAvailable, brokerSession, logLines, range, taskQueueDrained } from './helpers.ts';

const available = brokerAvailable('test/amqp/abort.test.ts');

describe.runIf(available)('Runtime.amqp abort', () => {
  const session = brokerSession();
  const prefix = session.prefix('abort');

  it('stops only the aborted directive, and workers drop its queued tasks', async () => {
    // One task per message and two messages per worker, so most of the
    // aborted directive's tasks are still queued when it is aborted.
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix, maxBatch: 1 });
    const workers = [session.worker(prefix, ['--prefetch', '2']), session.worker(prefix, ['--prefetch', '2'])];
    await Promise.all(workers.map((worker) => worker.serving));
    const log = join(mkdtempSync(join(tmpdir(), 'weft-amqp-abort-')), 'ran');
    const total = 400;
    const controller = new AbortController();
    let doneAtAbort = 0;
    const aborted = runtime
      .fanout(
        Logged,
        range(1, total).map((value) => ({ value, ms: 50, log })),
        {
          signal: controller.signal,
          onProgress: ({ done }) => {
            if (done >= 20 && !controller.signal.aborted) {
              doneAtAbort = done;
              controller.abort();
            }
          },
        },
      )
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    const other = runtime.fanout(Increment, range(0, 99));

    expect(await aborted).toBeInstanceOf(AbortError);
    expect(await other).toEqual(range(1, 100));

    // Once the task queue is empty, every task of the aborted directive has
    // reached a worker; all but those already running were dropped unread.
    await taskQueueDrained(prefix);
    const ran = logLines(log).length;
    expect(doneAtAbort).toBeGreaterThanOrEqual(20);
    // At abort: 20 done, at most 4 running and 4 prefetched per the settings
    // above, and more start while the abort travels to the workers (80 a
    // second): far fewer than all of them, which is what ran without drops.
    expect(ran).toBeLessThan(total / 4);
  });
});
