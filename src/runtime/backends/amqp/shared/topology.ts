// The names and declarations of everything weft puts on a broker, derived
// from one prefix so that two deployments (or two tests) on one broker never
// meet. Orchestrator and workers both declare what they use: declarations are
// idempotent, so either may start first.
//
// Design notes
// - Tasks are published to a fanout exchange, not straight to the queue, so
//   that a task keeps its routing key (the lease key) all the way: when the
//   broker dead-letters it after too many deliveries, the key tells which
//   orchestrator and which directive it belonged to (the dead-letter exchange
//   is a topic exchange, and each orchestrator binds `<its id>.#`).
// - The task queue is a quorum queue: it counts deliveries itself
//   (`x-delivery-limit`), so a task whose worker dies every time is
//   dead-lettered by the broker, with no bookkeeping of ours to lose.
// - Result queues are durable and consumed exclusively rather than declared
//   `exclusive`: an exclusive queue dies with the connection, and the results
//   in it with it. A durable one keeps confirmed results through a broker
//   restart, so after reconnecting the orchestrator only re-publishes tasks
//   the broker never confirmed, and nothing is run twice needlessly.
//   `x-expires` removes the queue of an orchestrator that died.

import type { Channel } from 'amqplib';
import { ArgumentError } from '../../../core/errors.ts';

export const DEFAULT_PREFIX = 'weft';
/** Deliveries of one task message before the broker dead-letters it. */
export const DEFAULT_DELIVERY_LIMIT = 3;
/** Dead letters kept; the oldest are dropped beyond this. */
export const DEAD_LETTER_MAX_LENGTH = 10_000;

export interface Names {
  /** Fanout exchange tasks are published to; routing key = lease key. */
  readonly taskExchange: string;
  /** The one durable quorum queue every worker consumes. */
  readonly taskQueue: string;
  /** Topic exchange for dead letters (broker's and workers'); routing key = lease key. */
  readonly deadExchange: string;
  /** Durable queue holding every dead letter, for people to inspect. */
  readonly deadQueue: string;
  /** Fanout exchange for control messages to every worker (lease released). */
  readonly controlExchange: string;
  /** The result queue of a lease. */
  resultQueue(key: string): string;
}

export function namesOf(prefix: string = DEFAULT_PREFIX): Names {
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9_.:-]+$/.test(prefix)) {
    throw new ArgumentError(`AMQP option prefix must be letters, digits and _.:- (at least one), got ${JSON.stringify(prefix)}`);
  }
  return {
    taskExchange: `${prefix}.tasks`,
    taskQueue: `${prefix}.tasks`,
    deadExchange: `${prefix}.dead`,
    deadQueue: `${prefix}.dead`,
    controlExchange: `${prefix}.control`,
    resultQueue: (key) => `${prefix}.results.${key}`,
  };
}

/** Declares the shared topology: task exchange and queue, dead letters, control. */
export async function assertShared(channel: Channel, names: Names, deliveryLimit: number): Promise<void> {
  await channel.assertExchange(names.taskExchange, 'fanout', { durable: true });
  await channel.assertExchange(names.deadExchange, 'topic', { durable: true });
  await channel.assertExchange(names.controlExchange, 'fanout', { durable: true });
  await channel.assertQueue(names.deadQueue, {
    durable: true,
    arguments: { 'x-max-length': DEAD_LETTER_MAX_LENGTH },
  });
  await channel.bindQueue(names.deadQueue, names.deadExchange, '#');
  await channel.assertQueue(names.taskQueue, {
    durable: true,
    arguments: {
      'x-queue-type': 'quorum',
      'x-delivery-limit': deliveryLimit,
      'x-dead-letter-exchange': names.deadExchange,
    },
  });
  await channel.bindQueue(names.taskQueue, names.taskExchange, '');
}

/** Declares a lease's result queue. */
export async function assertResultQueue(channel: Channel, queue: string, expiresMs: number): Promise<void> {
  await channel.assertQueue(queue, { durable: true, arguments: { 'x-expires': expiresMs } });
}
