// A worker's consumer of the shared task queue: started on each session,
// stopped on close and while a suspect runs alone (suspects.ts).

import type { ConsumeMessage } from 'amqplib';
import type { Session } from './connection.ts';

export class TaskConsumer {
  private current: { session: Session; tag: string } | undefined;

  constructor(
    private readonly queue: string,
    private readonly onTask: (session: Session, message: ConsumeMessage | null) => void,
  ) {}

  /** True from `start` until `stop`. */
  get active(): boolean {
    return this.current !== undefined;
  }

  async start(session: Session): Promise<void> {
    const { consumerTag } = await session.channel.consume(this.queue, (message) => this.onTask(session, message));
    this.current = { session, tag: consumerTag };
  }

  /** Cancels the consumer if it is `session`'s (one of a lost session is gone with it). */
  async stop(session: Session): Promise<void> {
    const current = this.current;
    this.current = undefined;
    if (current?.session === session) await session.channel.cancel(current.tag);
  }
}
