// How the orchestrator cuts a directive's tasks into task messages, seen
// from the task queue: the test is the only worker, a bare amqplib consumer
// that answers each message as a weft worker would.

import { describe, expect, it } from 'vitest';
import { Runtime } from '../../src/runtime/index.ts';
import { namesOf } from '../../src/runtime/backends/amqp/index.ts';
import { decodeTasks, encodeResults, FORMAT, HEADER_COUNT, HEADER_FORMAT, HEADER_KEY, HEADER_MS, TYPE_RESULTS } from '../../src/runtime/backends/amqp/shared/messages.ts';
import { Increment } from './fixtures/operations.ts';
import { AMQP_URL, brokerAvailable, brokerSession, range, rawConnection } from './helpers.ts';

const available = brokerAvailable('test/amqp/batching.test.ts');

describe.runIf(available)('Runtime.amqp task messages', () => {
  const session = brokerSession();

  it("fills its task messages up to maxBatch once two full ones are out, though a directive's first ones were cut small", async () => {
    const prefix = session.prefix('batching');
    const maxBatch = 64;
    const tasks = 3_000;
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix, maxBatch, maxInFlight: 256 });
    const connection = await rawConnection();
    const counts: number[] = [];
    try {
      const channel = await connection.createChannel();
      await channel.prefetch(8);
      await channel.consume(namesOf(prefix).taskQueue, (message) => {
        if (message === null) return;
        const headers = message.properties.headers!;
        const key = String(headers[HEADER_KEY]);
        counts.push(Number(headers[HEADER_COUNT]));
        const results = decodeTasks(message.content, key).map(({ index, stage, attempt, input }) => ({ key, index, stage, attempt, output: (input as number) + 1 }));
        // Tasks that take no time: the orchestrator soon sizes messages by maxBatch alone.
        channel.publish('', String(message.properties.replyTo), encodeResults(results), {
          type: TYPE_RESULTS,
          headers: { [HEADER_FORMAT]: FORMAT, [HEADER_KEY]: key, [HEADER_MS]: 0 },
        });
        channel.ack(message);
      });
      expect(await runtime.fanout(Increment, range(0, tasks - 1))).toEqual(range(1, tasks));
    } finally {
      await connection.close();
    }
    expect(counts.reduce((a, b) => a + b, 0)).toBe(tasks);
    // The window (256) goes out first in messages of about 20 tasks (a
    // task is taken for 1 ms until the worker's timings come in). Each
    // answer frees as many tasks as it held: those must not go out as
    // messages of that size again, however few answers one socket read
    // brings. Only the window and the directive's last two full messages'
    // worth (fewer than 2 x 64 tasks out) may go in short ones.
    const inFull = counts.filter((count) => count === maxBatch).length * maxBatch;
    expect(inFull).toBeGreaterThanOrEqual(tasks - 256 - 3 * maxBatch);
  });
});
