// A task message a worker publishes anew (suspects.ts: one message per task
// after a worker death, or a message held while a suspect ran alone) keeps
// what its run asked for: the copy carries the original's x-weft-grace-ms.
// No broker: the session's channel records what is published.

import type { ConsumeMessage, Options } from 'amqplib';
import { describe, expect, it } from 'vitest';
import type { Session } from '../../src/runtime/backends/amqp/shared/connection.ts';
import { namesOf } from '../../src/runtime/backends/amqp/shared/topology.ts';
import { WorkerPublisher } from '../../src/runtime/backends/amqp/worker/publisher.ts';

function recordingSession(published: Options.Publish[]): Session {
  const channel = {
    publish: (_exchange: string, _key: string, _content: Buffer, options: Options.Publish, done: (error: unknown) => void) => {
      published.push(options);
      done(null);
      return true;
    },
  };
  return { channel } as unknown as Session;
}

function delivered(headers: Record<string, unknown>): ConsumeMessage {
  return { fields: { routingKey: 'lease.1' }, properties: { headers, replyTo: 'results.1' }, content: Buffer.alloc(0) } as unknown as ConsumeMessage;
}

describe('a task message published anew by a worker', () => {
  const publisher = new WorkerPublisher(namesOf('republish'), 'host:1:abc', undefined);

  it("keeps its run's x-weft-grace-ms, with the deaths so far", async () => {
    const published: Options.Publish[] = [];
    await publisher.anew(recordingSession(published), delivered({ 'x-weft-key': 'lease.1', 'x-weft-grace-ms': 250 }), Buffer.from([0x90]), 2, 1, 1);
    expect(published).toHaveLength(1);
    expect(published[0]!.headers).toMatchObject({ 'x-weft-key': 'lease.1', 'x-weft-grace-ms': 250, 'x-weft-deaths': 1, 'x-weft-count': 1 });
    expect(published[0]!.replyTo).toBe('results.1');
  });

  it('makes none up when its run set none', async () => {
    const published: Options.Publish[] = [];
    await publisher.anew(recordingSession(published), delivered({ 'x-weft-key': 'lease.1' }), Buffer.from([0x90]), 2, 1, 2);
    expect(published[0]!.headers).not.toHaveProperty('x-weft-grace-ms');
  });
});
