// A worker process whose thread is stuck in a synchronous task, and the
// tasks of a lease released while no worker was listening: the worker still
// stops on SIGTERM (its main thread is free; it gives running batches a few
// seconds, then terminates its threads and exits 0, the stuck task's message
// going back to the broker), and a worker started afterwards never runs the
// stale tasks.

import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AbortError, Runtime } from '../../src/runtime/index.ts';
import { Increment, Stuck } from './fixtures/operations.ts';
import { AMQP_URL, brokerAvailable, brokerSession, logLines, range, taskQueueDrained } from './helpers.ts';

const available = await brokerAvailable('test/amqp/stuck.test.ts');

describe.runIf(available)('Runtime.amqp with a task that never returns', () => {
  const session = brokerSession();
  const prefix = session.prefix('stuck');

  it('stops a worker with a stuck thread on SIGTERM, and a later worker skips the stale task of the released lease', async () => {
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
    const stuck = session.worker(prefix);
    await stuck.serving;
    const log = join(mkdtempSync(join(tmpdir(), 'weft-amqp-stuck-')), 'ran');
    const controller = new AbortController();
    const directive = runtime.call(Stuck, { log }, { signal: controller.signal }).then(
      () => undefined,
      (error: unknown) => error,
    );
    await expect.poll(() => existsSync(log), { timeout: 20_000 }).toBe(true);

    stuck.child.kill('SIGTERM');
    expect(await stuck.exited).toEqual({ code: 0, signal: null });

    // Released while no worker listens: the task message is back in the
    // queue, and nobody told the next worker.
    controller.abort();
    expect(await directive).toBeInstanceOf(AbortError);
    const later = session.worker(prefix);
    await later.serving;
    expect(await runtime.fanout(Increment, range(0, 99))).toEqual(range(1, 100));
    await taskQueueDrained(prefix);
    expect(await runtime.fanout(Increment, range(0, 9))).toEqual(range(1, 10));
    expect(logLines(log)).toEqual([String(stuck.child.pid)]);
    expect(later.child.exitCode).toBeNull();
  });
});
