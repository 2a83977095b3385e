// A worker's consumer of the shared task queue, started on each session and
// stopped on close; and the suspects: task messages the broker delivers
// again, for which the consumer stops while one runs alone.
//
// Design notes
// - A redelivered message was held by a worker that died, but holding is
//   not killing: every message a dying worker had prefetched counts a
//   delivery. So a worker never lets a redelivered message run beside
//   others. One of several tasks is split into messages of one task each,
//   published anew (the broker's count starts over; the deaths so far
//   travel in `x-weft-deaths`). One of one task runs *isolated*: the worker
//   cancels its consumer, lets running batches end, publishes anew whatever
//   else was delivered meanwhile, runs the suspect alone, and consumes
//   again. If it kills the worker, it is the only message held, so only its
//   count grows; a task whose deaths pass `deliveryLimit` is dead-lettered
//   (by the broker, or by the worker that receives it with
//   `killed-workers`) under its own index.

import type { ConsumeMessage } from 'amqplib';
import type { Task } from '../../../core/task.ts';
import type { Session } from '../shared/connection.ts';
import { encodeTasks, FORMAT, HEADER_COUNT, HEADER_DEATHS, HEADER_FORMAT, headerNumber } from '../shared/messages.ts';
import type { WorkerPublisher } from './publisher.ts';

export class TaskConsumer {
  private current: { session: Session; tag: string } | undefined;

  constructor(
    readonly queue: string,
    private readonly onTask: (session: Session, message: ConsumeMessage | null) => void,
    /** True once the worker closes: it consumes no more. */
    private readonly closing: () => boolean,
  ) {}

  /** True from `start` until `stop`. */
  get active(): boolean {
    return this.current !== undefined;
  }

  async start(session: Session): Promise<void> {
    const { consumerTag } = await session.channel.consume(this.queue, (message) => this.onTask(session, message));
    this.current = { session, tag: consumerTag };
  }

  /** Starts again after a suspect ran alone, unless the worker is closing or the consumer runs. */
  async resume(session: Session): Promise<void> {
    if (!this.closing() && !this.active) await this.start(session);
  }

  /** Cancels the consumer if it is `session`'s (one of a lost session is gone with it). */
  async stop(session: Session): Promise<void> {
    const current = this.current;
    this.current = undefined;
    if (current?.session === session) await session.channel.cancel(current.tag);
  }
}

/** How long a suspect waits for the batches running before it, in ms. */
export const SETTLE_MS = 5_000;

interface Isolation {
  readonly session: Session;
  /** Delivered while the suspect waits or runs: published anew unrun. */
  held: ConsumeMessage[];
}

export class Suspects {
  private isolation: Isolation | undefined;

  constructor(
    private readonly consumer: TaskConsumer,
    private readonly publisher: WorkerPublisher,
  ) {}

  /** While a suspect runs alone on `session`, keeps `message` to publish anew unrun; true if kept. */
  hold(session: Session, message: ConsumeMessage): boolean {
    if (this.isolation?.session !== session) return false;
    this.isolation.held.push(message);
    return true;
  }

  /** A redelivered message of several tasks goes back as one message per task, its deaths carried. */
  async split(session: Session, message: ConsumeMessage, tasks: readonly Task[], deaths: number): Promise<void> {
    try {
      await Promise.all(tasks.map((task) => this.publisher.anew(session, message, encodeTasks([task]), FORMAT, 1, deaths)));
      session.channel.ack(message);
    } catch {
      // Session lost: the message comes back and is judged again.
    }
  }

  /**
   * Runs a suspect alone: no other message is held while it runs, so if it
   * kills this process the broker counts a death for it only. `running` are
   * the batches that started before it.
   */
  async isolate(session: Session, running: readonly Promise<void>[], message: ConsumeMessage, run: () => Promise<void>): Promise<void> {
    // One suspect at a time: a second one waits its turn in the queue.
    if (this.hold(session, message)) return;
    const isolation: Isolation = { session, held: [] };
    this.isolation = isolation;
    try {
      await Promise.race([Promise.allSettled(running), new Promise((resolve) => setTimeout(resolve, SETTLE_MS).unref())]);
      // Until nothing is held and no consumer is left: a consumer may have
      // been starting (after the previous suspect) when this one arrived.
      for (;;) {
        await this.consumer.stop(session);
        await this.releaseHeld(isolation);
        // Acks are never answered, and a suspect that ends the process could
        // cut them off in a socket buffer; the broker answers this declare
        // only once it has handled every frame sent before it on the channel.
        await session.channel.checkQueue(this.consumer.queue);
        if (isolation.held.length === 0 && !this.consumer.active) break;
      }
      await run();
    } catch {
      // Session lost: what was held comes back from the broker.
    } finally {
      this.isolation = undefined;
      if (!session.lost) {
        await this.releaseHeld(isolation).catch(() => {});
        await this.consumer.resume(session).catch(() => {});
      }
    }
  }

  /** Messages delivered while a suspect waits or runs go back to the queue unrun, their deaths carried. */
  private async releaseHeld(isolation: Isolation): Promise<void> {
    const { session } = isolation;
    const held = isolation.held;
    isolation.held = [];
    await Promise.all(
      held.map(async (message) => {
        const headers = message.properties.headers;
        const format = headerNumber(headers, HEADER_FORMAT) ?? FORMAT;
        await this.publisher.anew(session, message, message.content, format, headerNumber(headers, HEADER_COUNT) ?? 0, deathsOf(message));
        session.channel.ack(message);
      }),
    );
  }
}

/** Worker deaths a task message was present at: carried from earlier copies, plus the broker's count for this one. */
export function deathsOf(message: ConsumeMessage): number {
  const headers = message.properties.headers;
  const returned = headerNumber(headers, 'x-delivery-count') ?? (message.fields.redelivered ? 1 : 0);
  return (headerNumber(headers, HEADER_DEATHS) ?? 0) + returned;
}
