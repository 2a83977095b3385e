// Workers that die: one killed with SIGKILL mid-directive (its tasks are
// redelivered, the answer is right anyway), and a task that kills every
// worker that runs it (dead-lettered after the delivery limit; the directive
// fails saying so).

import type { GetMessage } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { OperationError, Runtime } from '../../src/runtime/index.ts';
import { namesOf } from '../../src/runtime/backends/amqp/index.ts';
import { decodeTasks, FORMAT } from '../../src/runtime/backends/amqp/shared/messages.ts';
import { KillAt, Spin } from './fixtures/operations.ts';
import { AMQP_URL, brokerAvailable, brokerSession, range, rawConnection, type WorkerProcess } from './helpers.ts';

const available = brokerAvailable('test/amqp/failure.test.ts');

describe.runIf(available)('Runtime.amqp when workers die', () => {
  const session = brokerSession();
  const worker = session.worker;

  it('returns the right answer when a worker process is killed with SIGKILL mid-directive', async () => {
    const prefix = session.prefix('sigkill');
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix, maxBatch: 4 });
    const [victim, survivor] = [worker(prefix), worker(prefix)];
    await Promise.all([victim.serving, survivor.serving]);
    let killedAt: number | undefined;
    const inputs = range(0, 299).map((value) => ({ value, ms: 10 }));
    const outputs = await runtime.fanout(Spin, inputs, {
      onProgress: ({ done }) => {
        if (killedAt === undefined && done >= 40) {
          killedAt = done;
          victim.child.kill('SIGKILL');
        }
      },
    });
    expect(outputs).toEqual(range(0, 299));
    expect(killedAt).toBeLessThan(300);
    expect((await victim.exited).signal).toBe('SIGKILL');
    // What the victim held came back to the survivor: the broker delivered it again.
    expect(survivor.stderr.some((line) => /redelivered: a message of /.test(line))).toBe(true);
  }, 180_000);

  it('dead-letters a task that keeps killing its workers and fails the directive with that reason', async () => {
    const prefix = session.prefix('killer');
    const deliveryLimit = 1;
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix, deliveryLimit, maxBatch: 1 });
    // A supervisor: every worker the task kills is replaced, a bounded number of times.
    let replacements = 0;
    const supervise = (started: WorkerProcess) => {
      void started.exited.then(() => {
        if (replacements++ < 4) supervise(worker(prefix, options));
      });
      return started;
    };
    // Prefetch 1: a dying worker takes only the task it runs down with it.
    // With a deeper prefetch, the tasks queued on it count a delivery too.
    const options = ['--delivery-limit', String(deliveryLimit), '--prefetch', '1'];
    const first = supervise(worker(prefix, options));
    await first.serving;
    const failure = await runtime.fanout(KillAt, range(0, 3).map((value) => ({ value, at: 2 }))).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(OperationError);
    const error = failure as OperationError;
    expect(error.operation).toBe('amqp.KillAt');
    expect(error.index).toBe(2);
    expect((error.cause as Error).name).toBe('WorkerLostError');
    expect(error.message).toMatch(/dead-lettered this task \(delivery_limit\)/);
    replacements = Infinity; // no more replacements after this
  }, 180_000);

  it('names the input that kills its workers, and dead-letters it alone, not the tasks prefetched with it', async () => {
    const prefix = session.prefix('killer-in-batch');
    // Default batching, delivery limit and prefetch: the killer shares its
    // message with 19 other tasks, and another message is prefetched with it.
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
    let replacements = 0;
    const supervise = (started: WorkerProcess) => {
      void started.exited.then(() => {
        if (replacements++ < 8) supervise(worker(prefix));
      });
      return started;
    };
    await supervise(worker(prefix)).serving;
    const failure = await runtime.fanout(KillAt, range(0, 39).map((value) => ({ value, at: 13 }))).then(
      () => undefined,
      (error: unknown) => error,
    );
    replacements = Infinity;
    expect(failure).toBeInstanceOf(OperationError);
    const error = failure as OperationError;
    expect(error.index).toBe(13);
    expect((error.cause as Error).name).toBe('WorkerLostError');
    expect(error.message).toMatch(/dead-lettered this task/);

    const letters: GetMessage[] = [];
    const connection = await rawConnection();
    try {
      const channel = await connection.createChannel();
      for (let letter = await channel.get(namesOf(prefix).deadQueue); letter !== false; letter = await channel.get(namesOf(prefix).deadQueue)) {
        letters.push(letter);
      }
    } finally {
      await connection.close();
    }
    expect(letters).toHaveLength(1);
    expect(letters[0]!.properties.headers?.['x-weft-format']).toBe(FORMAT);
    expect(decodeTasks(letters[0]!.content, 'key').map((task) => task.index)).toEqual([13]);
  }, 180_000);
});
