// Poison messages: bytes that are not a task batch (or a batch with headers
// no orchestrator sends), and a task naming an
// operation no worker has, go to the dead-letter queue with a reason while
// other directives proceed.

import type { GetMessage } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { defineOperation, OperationError } from '../../src/runtime/index.ts';
import { namesOf } from '../../src/runtime/backends/amqp/index.ts';
import { encodeTasks, FORMAT } from '../../src/runtime/backends/amqp/shared/messages.ts';
import { backendOf } from '../../src/runtime/runtime.ts';
import { Increment } from './fixtures/operations.ts';
import { brokerAvailable, range, rawConnection, servingCluster } from './helpers.ts';

// Defined here only: the worker processes never import this file.
const Unregistered = defineOperation('amqp.test.Unregistered', (n: number) => n);

const available = brokerAvailable('test/amqp/poison.test.ts');

describe.runIf(available)('Runtime.amqp with poison messages', () => {
  const cluster = servingCluster('poison');
  const names = namesOf(cluster.prefix);

  const letters: GetMessage[] = [];
  const reasonOf = (message: GetMessage) => String(message.properties.headers?.['x-weft-reason']);

  /** Takes dead letters off the queue (keeping them in `letters`) until one's reason matches. */
  async function deadLetter(reason: RegExp): Promise<GetMessage> {
    const connection = await rawConnection();
    try {
      const channel = await connection.createChannel();
      let found: GetMessage | undefined;
      await expect
        .poll(
          async () => {
            for (let message = await channel.get(names.deadQueue, { noAck: true }); message !== false; message = await channel.get(names.deadQueue, { noAck: true })) {
              letters.push(message);
            }
            found = letters.find((message) => reason.test(reasonOf(message)));
            return found !== undefined;
          },
          { timeout: 10_000, interval: 100 },
        )
        .toBe(true);
      return found!;
    } finally {
      await connection.close();
    }
  }

  it('dead-letters undecodable messages with a reason and keeps serving', async () => {
    const connection = await rawConnection();
    const channel = await connection.createConfirmChannel();
    const garbage = Buffer.from('these bytes are not a msgpack task batch');
    // A well-formed batch whose cancellation grace no orchestrator would send.
    const task = { op: Increment.name, input: 1, key: 'poison.grace', index: 0, stage: 0, attempt: 0 };
    channel.publish(names.taskExchange, 'poison.grace', encodeTasks([task]), {
      replyTo: 'nowhere',
      headers: { 'x-weft-format': FORMAT, 'x-weft-key': 'poison.grace', 'x-weft-grace-ms': -5 },
    });
    channel.publish(names.taskExchange, 'poison.garbage', garbage, {
      replyTo: 'nowhere',
      headers: { 'x-weft-format': 2, 'x-weft-key': 'poison.garbage' },
    });
    channel.publish(names.taskExchange, 'poison.format', Buffer.from([0x91, 0x01]), { headers: { 'x-weft-format': 99 } });
    await channel.waitForConfirms();
    await connection.close();

    const inputs = range(0, 999);
    expect(await cluster.runtime.fanout(Increment, inputs)).toEqual(inputs.map((n) => n + 1));

    const undecodable = await deadLetter(/^undecodable: not msgpack|^undecodable: the body/);
    expect(undecodable.fields.routingKey).toBe('poison.garbage');
    expect(undecodable.content.equals(garbage)).toBe(true);
    expect(String(undecodable.properties.headers?.['x-weft-worker'])).toMatch(/:\d+:/);
    // A dead letter keeps the x-weft-format its body came with.
    expect(undecodable.properties.headers?.['x-weft-format']).toBe(2);
    const badGrace = await deadLetter(/^undecodable: x-weft-grace-ms is not a positive number of milliseconds up to 2147483647$/);
    expect(badGrace.fields.routingKey).toBe('poison.grace');
    const wrongFormat = await deadLetter(/^undecodable: message format 99, this code reads format 2$/);
    expect(wrongFormat.properties.headers?.['x-weft-format']).toBe(99);
  });

  it('answers an unknown operation with an error, dead-letters it, and other directives proceed', async () => {
    const [failure, others] = await Promise.all([
      cluster.runtime.call(Unregistered, 7).then(
        () => undefined,
        (error: unknown) => error,
      ),
      cluster.runtime.fanout(Increment, range(0, 499)),
    ]);
    expect(others).toEqual(range(1, 500));
    expect(failure).toBeInstanceOf(OperationError);
    expect(((failure as OperationError).cause as Error).name).toBe('UnknownOperationError');
    const letter = await deadLetter(/^unknown-operation: 'amqp\.test\.Unregistered' not registered/);
    expect(letter.fields.routingKey.startsWith(`${(backendOf(cluster.runtime) as unknown as { id: string }).id}.`)).toBe(true);
  });
});
