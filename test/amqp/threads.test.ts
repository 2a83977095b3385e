// One `weft worker --amqp --threads 2` process serves tasks on two worker
// threads, and its main thread (the broker connection) stays free while
// they spin. A worker whose threads fail for good stops with an error code.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IndexedStream, Runtime } from '../../src/runtime/index.ts';
import { BreakThreads, Increment, SpinAfterBreaking, Step, ThreadOf, unreplaceableMarker } from './fixtures/operations.ts';
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

  // Two task messages that wait on one thread together (behind a third that
  // holds it): the first one's results must leave the thread when it ends,
  // not once the second (which holds the thread until the first's result
  // is in) ends too. One directive, one task per message: its messages
  // reach the queue, and so the thread, in index order.
  it("sends a message's results as soon as it ends, though another one handed over with it still runs", async () => {
    const prefix = session.prefix('threads-each');
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix, maxBatch: 1 });
    const dir = mkdtempSync(join(tmpdir(), 'weft-threads-each-'));
    const gate = join(dir, 'gate');
    try {
      const steps = [{ spinMs: 300 }, { value: 1 }, { gate, ms: 30_000 }];
      const outputs = IndexedStream.from(steps).map(Step).stream(runtime);
      // The directive starts (its messages are published) at the first next().
      const first = outputs.next();
      const worker = session.worker(prefix, ['--threads', '1']);
      await worker.serving;
      const seen = new Map<number, unknown>();
      for (let next = await first; next.done !== true; next = await outputs.next()) {
        const [index, output] = next.value;
        seen.set(index, output);
        // The second message answered while the third holds the thread: open its gate.
        if (index === 1) writeFileSync(gate, '');
      }
      expect(seen).toEqual(new Map<number, unknown>([[0, 300], [1, 2], [2, true]]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  // The thread dies running a batch (its failure reaches that batch), or is
  // terminated past its grace once its directive was aborted (no batch is
  // left running to see the failure: the worker must notice it still).
  it.each([
    { how: 'a thread that died running a task', op: BreakThreads, abortOnceStarted: false },
    { how: 'a thread terminated past its grace, with no task left running', op: SpinAfterBreaking, abortOnceStarted: true },
  ])('stops with exit code 1, saying why, when $how cannot be replaced', async ({ op, abortOnceStarted }) => {
    const broken = session.prefix('threads-broken');
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix: broken });
    const worker = session.worker(broken, ['--threads', '1']);
    await worker.serving;
    const marker = unreplaceableMarker(worker.child.pid!);
    const controller = new AbortController();
    const directive = runtime.call(op, null, { signal: controller.signal, cancelGraceMs: 100 }).catch((error: unknown) => error);
    try {
      if (abortOnceStarted) {
        await expect.poll(() => existsSync(marker), { timeout: 20_000 }).toBe(true);
        controller.abort();
      }
      const { code } = await worker.exited;
      expect(code).toBe(1);
      expect(worker.stderr.join('\n')).toMatch(/stopped: its worker threads failed for good: .*worker 0 failed to start: .*refuses to load in process/);
    } finally {
      controller.abort();
      await directive;
      rmSync(marker, { force: true });
    }
  });
});
