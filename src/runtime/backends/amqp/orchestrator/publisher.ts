// The orchestrator's confirming publisher of task messages: it cuts a
// lease's tasks into messages sized by how long tasks take, and keeps each
// message until the broker confirms it.
//
// Design notes
// - A published message stays in `unconfirmed` until the broker confirms
//   it. After a reconnection every unconfirmed message of an open lease is
//   published again; confirmed ones are safe in the quorum queue, and results
//   confirmed to a worker are safe in the durable result queue, so nothing
//   else needs re-sending. A message sent twice is answered twice; the
//   orchestrator counts each result once.
// - Messages are sized from how long tasks take (the workers report it in a
//   header, see leases.ts): about `BATCH_MS` of work per message, so cheap
//   tasks travel by the hundred and slow ones one or two at a time across
//   competing workers.

import type { Task } from '../../../core/task.ts';
import { TaskTime } from '../../../core/task-time.ts';
import { publishConfirmed, type ReconnectingConnection, type Session } from '../shared/connection.ts';
import type { LeaseState } from './leases.ts';
import { CONTENT_TYPE, encodeTasks, FORMAT, HEADER_COUNT, HEADER_FORMAT, HEADER_GRACE_MS, HEADER_KEY, TYPE_TASKS } from '../shared/messages.ts';
import type { Names } from '../shared/topology.ts';
import type { TraceCarrier } from '../../../observability/channels.ts';

// Work per task message, in ms of the workers' time.
const BATCH_MS = 20;
// Work worth splitting across at least two messages, in ms.
const SPREAD_MS = 1;
// Delay before publishing again a message the broker refused (nack).
const NACK_RETRY_MS = 200;

interface Publication {
  readonly lease: LeaseState;
  readonly count: number;
  readonly content: Buffer;
  /** The directive's trace context (`weft/otel`), sent as headers (`traceparent`, ...). */
  readonly tc: TraceCarrier | undefined;
  sentOn: Session | undefined;
}

export class TaskPublisher {
  /** How long one task takes on the workers; the receiver feeds it. */
  readonly taskTime = new TaskTime();
  private readonly unconfirmed = new Set<Publication>();
  /** Leases with a backlog to publish once the current callbacks have run. */
  private readonly dirty = new Set<LeaseState>();
  private flushing = false;

  constructor(
    private readonly connection: ReconnectingConnection,
    private readonly names: Names,
    private readonly maxBatch: number,
  ) {}

  /**
   * Tasks wait in the lease's backlog until the current callback stack has
   * unwound: results arrive one message per callback, and each hands back a
   * few tasks, so publishing at once would cut the next messages ever
   * smaller. A microtask runs after amqplib has handed over every message of
   * one socket read, so it gathers all of them, and the publishes still
   * reach the socket in this turn of the event loop (amqplib writes in the
   * turn's check phase); a setImmediate here would cost a whole turn per
   * refill, with the worker's deliveries handled in between.
   */
  enqueue(state: LeaseState, tasks: readonly Task[]): void {
    if (!state.open) return;
    for (const task of tasks) {
      state.unanswered.add(task.index, task.stage, task.attempt);
      state.backlog.push(task);
      if (task.tc !== undefined) state.tc = task.tc;
    }
    this.dirty.add(state);
    if (this.flushing) return;
    this.flushing = true;
    queueMicrotask(() => {
      this.flushing = false;
      const session = this.connection.session;
      for (const lease of this.dirty) {
        // Until its result queue is consumed on this session, a lease keeps
        // its backlog; the backend publishes it once the queue is ready.
        if (session === undefined || lease.consuming !== session || !lease.open) continue;
        this.publishBacklog(lease, session);
      }
      this.dirty.clear();
    });
  }

  /**
   * Publishes the lease's backlog, cut into messages of about BATCH_MS of
   * work each (at most `maxBatch` tasks); work worth more than SPREAD_MS goes
   * out as at least two messages, so that two workers share it.
   *
   * While two full messages' worth of the lease's tasks are out already,
   * the workers have enough to do: the backlog goes out in full messages
   * only, and the rest waits for the results of those out to bring more
   * tasks to fill it up (or, at a directive's end, goes as it is: see
   * `answered`). Else the sizes of the first messages, cut small while the
   * directive's window was still opening, lived on: each result message
   * frees as many tasks as it answers, and those went out as a message of
   * that size (a directive of tiny tasks ran on messages of 60-100 tasks
   * rather than `maxBatch`, as much broker work per task again).
   */
  publishBacklog(state: LeaseState, session: Session): void {
    const tasks = state.backlog;
    const taskMs = this.taskTime.ms;
    const byTime = Math.max(1, Math.min(this.maxBatch, Math.ceil(BATCH_MS / taskMs)));
    const busy = state.unanswered.size - tasks.length >= 2 * byTime;
    const spread = !busy && tasks.length * taskMs > SPREAD_MS ? Math.ceil(tasks.length / 2) : tasks.length;
    // Busy: only messages of byTime tasks, though the backlog holds fewer.
    const size = busy ? byTime : Math.max(1, Math.min(byTime, spread));
    const end = busy ? tasks.length - (tasks.length % size) : tasks.length;
    state.backlog = tasks.slice(end);
    for (let start = 0; start < end; start += size) {
      const chunk = tasks.slice(start, start + size);
      const publication: Publication = { lease: state, count: chunk.length, content: encodeTasks(chunk), tc: state.tc, sentOn: undefined };
      this.unconfirmed.add(publication);
      this.send(publication, session);
    }
  }

  /** Results of the lease came in: a short message it held goes out now unless enough of its tasks are still out to fill it. */
  answered(state: LeaseState): void {
    if (state.backlog.length > 0) this.enqueue(state, []);
  }

  /** A new session: every message of an open lease the broker has not confirmed goes out again. */
  resend(session: Session): void {
    for (const publication of this.unconfirmed) {
      if (publication.lease.open) this.send(publication, session);
      else this.unconfirmed.delete(publication);
    }
  }

  /** A released lease's messages are not sent again. */
  forget(state: LeaseState): void {
    for (const publication of this.unconfirmed) if (publication.lease === state) this.unconfirmed.delete(publication);
  }

  private send(publication: Publication, session: Session): void {
    const { lease } = publication;
    publication.sentOn = session;
    publishConfirmed(session.channel, this.names.taskExchange, lease.key, publication.content, {
      persistent: true,
      contentType: CONTENT_TYPE,
      type: TYPE_TASKS,
      replyTo: lease.queue,
      headers: {
        [HEADER_FORMAT]: FORMAT,
        [HEADER_KEY]: lease.key,
        [HEADER_COUNT]: publication.count,
        ...(lease.graceMs === undefined ? {} : { [HEADER_GRACE_MS]: lease.graceMs }),
        ...publication.tc,
      },
    }).then(
      () => this.unconfirmed.delete(publication),
      () => {
        // Lost with its session: the next session publishes it again. A nack
        // on a live session: try again shortly.
        if (publication.sentOn !== session || this.connection.session !== session) return;
        setTimeout(() => {
          if (this.unconfirmed.has(publication) && lease.open && this.connection.session === session) this.send(publication, session);
        }, NACK_RETRY_MS).unref();
      },
    );
  }
}
