// The orchestrator's side of the AMQP backend (`Runtime.amqp`): each
// directive (lease) gets its own result queue, and its tasks go to the
// shared task queue through the confirming publisher (publisher.ts); what
// comes back is handled in leases.ts.
//
// Design notes
// - Releasing a lease with unanswered tasks tells every worker through the
//   control fanout, so they drop its queued tasks (the broker offers no way
//   to remove chosen messages from a queue) and cancel its running ones.
// - Cancelling one task (its timeout passed) goes the same way; the worker
//   running it answers once it has stopped, and only that answer lets the
//   directive retry. Until it comes, the cancellation is sent again on
//   every new session, in case a worker missed it.
// - While disconnected, directives wait; if the broker is not back within
//   `reconnectTimeoutMs`, every open lease fails with BrokerUnavailableError.

import { randomBytes } from 'node:crypto';
import type { Backend, Lease, LeaseHandlers, LeaseOptions } from '../../../core/backend.ts';
import { RuntimeClosedError } from '../../../core/errors.ts';
import type { Task, TaskIdentity } from '../../../core/task.ts';
import { publishConfirmed, ReconnectingConnection, redact, type Session } from '../shared/connection.ts';
import { BrokerUnavailableError } from '../shared/errors.ts';
import { encodeCancel, HEADER_KEY, HEADER_WHY, taskId, TYPE_CANCEL, TYPE_RELEASE } from '../shared/messages.ts';
import { checkBackendOptions, type AmqpBackendOptions } from '../shared/options.ts';
import { TaskPublisher } from './publisher.ts';
import { newLease, onDeadLetter, onResults, type LeaseState } from './leases.ts';
import { WorkerNames } from './workers.ts';
import { assertResultQueue, assertShared, DEFAULT_DELIVERY_LIMIT, namesOf, type Names } from '../shared/topology.ts';

const DEFAULT_MAX_BATCH = 256;
const DEFAULT_RECONNECT_TIMEOUT_MS = 30_000;
// Results delivered to the orchestrator before it acks them.
const RESULT_PREFETCH = 64;

export class AmqpBackend implements Backend {
  // Workers come and go on the broker's side: the orchestrator cannot know how many tasks run at once.
  readonly parallelism = Infinity;
  /** Unique per orchestrator: lease keys are `<id>.<n>`. */
  readonly id = randomBytes(6).toString('hex');
  private readonly names: Names;
  private readonly connection: ReconnectingConnection;
  private readonly publisher: TaskPublisher;
  private readonly leases = new Map<string, LeaseState>();
  /** The workers whose results came, by the names they gave. */
  private readonly workers = new WorkerNames();
  /**
   * The next lease, opened ahead: its result queue is declared and consumed
   * (or being so) before a directive asks, so a directive's first tasks
   * leave at once instead of after the declare's round trip.
   */
  private spare: LeaseState | undefined;
  /** Result queues of released leases that could not be deleted while disconnected. */
  private readonly doomed = new Set<string>();
  private readonly chores = new Set<Promise<unknown>>();
  private readonly reconnectTimeoutMs: number;
  private readonly deliveryLimit: number;
  private nextKey = 0;
  private outage: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  private constructor(private readonly options: AmqpBackendOptions) {
    this.names = namesOf(options.prefix);
    this.reconnectTimeoutMs = options.reconnectTimeoutMs ?? DEFAULT_RECONNECT_TIMEOUT_MS;
    this.deliveryLimit = options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT;
    this.connection = new ReconnectingConnection(
      { url: options.url, heartbeatSeconds: options.heartbeatSeconds, backoff: options.backoff, name: `weft orchestrator ${this.id}` },
      { setup: (session) => this.setup(session), up: (session) => this.up(session), down: () => this.down() },
    );
    this.publisher = new TaskPublisher(this.connection, this.names, options.maxBatch ?? DEFAULT_MAX_BATCH);
  }

  workerName(worker: number): string | undefined {
    return this.workers.nameOf(worker);
  }

  /** Connects (retrying with backoff) and declares the topology; rejects if the broker stays away. */
  static async start(options: AmqpBackendOptions): Promise<AmqpBackend> {
    checkBackendOptions(options);
    const backend = new AmqpBackend(options);
    await backend.connection.open(options.connectTimeoutMs);
    return backend;
  }

  lease(handlers: LeaseHandlers, options?: LeaseOptions): Lease {
    if (this.closed) throw new RuntimeClosedError('the runtime is closed');
    const session = this.connection.session;
    let state = this.spare;
    this.spare = undefined;
    if (state !== undefined && (session === undefined || state.openedOn !== session)) {
      this.discard(state);
      state = undefined;
    }
    if (state === undefined) {
      state = this.newLease();
      if (session !== undefined) this.chore(this.openLease(state, session));
    }
    state.handlers = handlers;
    state.graceMs = options?.cancelGraceMs;
    this.leases.set(state.key, state);
    if (session !== undefined) this.prepareSpare(session);
    else this.watchOutage();
    const taken = state;
    return {
      key: taken.key,
      release: (why = 'its directive ended') => this.release(taken, why),
      cancel: (task, why) => this.cancel(taken, task, why),
    };
  }

  dispatch(tasks: readonly Task[]): void {
    let state: LeaseState | undefined;
    let group: Task[] = [];
    // Directives dispatch one lease's tasks per call; group anyway.
    for (const task of tasks) {
      if (state?.key !== task.key) {
        if (state !== undefined) this.publisher.enqueue(state, group);
        state = this.leases.get(task.key);
        group = [];
      }
      group.push(task);
    }
    if (state !== undefined) this.publisher.enqueue(state, group);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.outage);
    if (this.spare !== undefined) this.discard(this.spare);
    this.spare = undefined;
    for (const state of [...this.leases.values()]) state.handlers.failed(new RuntimeClosedError('the runtime was closed'));
    // Released leases delete their result queues: let that finish, briefly.
    await Promise.race([Promise.allSettled([...this.chores]), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    await this.connection.close();
  }

  // ---------------------------------------------------------------- leases

  private newLease(): LeaseState {
    const key = `${this.id}.${this.nextKey++}`;
    return newLease(key, this.names.resultQueue(key));
  }

  /** Opens the next lease ahead of time on `session`, unless one is ready. */
  private prepareSpare(session: Session): void {
    if (this.closed || this.spare !== undefined) return;
    const spare = this.newLease();
    this.spare = spare;
    this.chore(this.openLease(spare, session));
  }

  /** Drops a spare nobody took: deletes its result queue now, or on the next session. */
  private discard(spare: LeaseState): void {
    spare.open = false;
    const session = this.connection.session;
    if (spare.consuming !== undefined && spare.consuming === session) this.chore(this.dropQueue(spare.queue, session, spare.consumerTag));
    else if (spare.openedOn === session && session !== undefined) return; // still opening: `openLease` sees it closed and deletes the queue
    else this.doomed.add(spare.queue);
  }

  private async openLease(state: LeaseState, session: Session): Promise<void> {
    state.openedOn = session;
    try {
      await assertResultQueue(session.channel, state.queue, this.resultQueueExpiresMs());
      const { consumerTag } = await session.channel.consume(
        state.queue,
        (message) => {
          onResults(state, session, message, this.publisher.taskTime, this.workers);
          this.publisher.answered(state);
        },
        { exclusive: true },
      );
      if (!state.open) {
        await this.dropQueue(state.queue, session, consumerTag);
        return;
      }
      if (this.connection.session !== session) return; // lost meanwhile: `up` opens it again
      state.consuming = session;
      state.consumerTag = consumerTag;
      this.publisher.publishBacklog(state, session);
    } catch {
      // The channel failed, so the session is lost; `up` opens the lease
      // again (a discarded spare's queue may exist: delete it later).
      if (!state.open) this.doomed.add(state.queue);
    }
  }

  private release(state: LeaseState, why: string): void {
    if (!state.open) return;
    state.open = false;
    this.leases.delete(state.key);
    this.publisher.forget(state);
    const session = this.connection.session;
    if (session === undefined) {
      this.doomed.add(state.queue);
      return;
    }
    if (state.unanswered.size > 0) {
      // Tasks of this lease may be queued or running: every worker drops or cancels them.
      publishConfirmed(session.channel, this.names.controlExchange, '', Buffer.alloc(0), {
        type: TYPE_RELEASE,
        headers: { [HEADER_KEY]: state.key, [HEADER_WHY]: why },
      }).catch(() => {});
    }
    // A lease still being opened deletes its queue when the open finishes.
    if (state.consuming === session) this.chore(this.dropQueue(state.queue, session, state.consumerTag));
  }

  /** One attempt of one task is cancelled wherever it runs, or never starts; its answer ends the cancellation. */
  private cancel(state: LeaseState, task: TaskIdentity, why: string): void {
    if (!state.open || !state.unanswered.has(task.index, task.stage, task.attempt)) return;
    const id = taskId(task.index, task.stage, task.attempt);
    state.cancelling.set(id, { index: task.index, stage: task.stage, attempt: task.attempt, why });
    const session = this.connection.session;
    if (session !== undefined) this.publishCancel(state, session, id);
  }

  private publishCancel(state: LeaseState, session: Session, id: number | string): void {
    const task = state.cancelling.get(id);
    if (task === undefined) return;
    publishConfirmed(session.channel, this.names.controlExchange, '', encodeCancel(task.index, task.stage, task.attempt), {
      type: TYPE_CANCEL,
      headers: { [HEADER_KEY]: state.key, [HEADER_WHY]: task.why },
    }).catch(() => {});
  }

  private async dropQueue(queue: string, session: Session, consumerTag: string | undefined): Promise<void> {
    try {
      if (consumerTag !== undefined) await session.channel.cancel(consumerTag);
      await session.channel.deleteQueue(queue);
    } catch {
      this.doomed.add(queue);
    }
  }

  /** Long enough to outlive any outage a directive survives; short enough to clean up after a dead orchestrator. */
  private resultQueueExpiresMs(): number {
    return Math.max(60_000, 2 * this.reconnectTimeoutMs);
  }

  // ---------------------------------------------------------------- sessions

  private async setup(session: Session): Promise<void> {
    const { channel } = session;
    await assertShared(channel, this.names, this.deliveryLimit);
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, this.names.deadExchange, `${this.id}.#`);
    await channel.consume(
      queue,
      (message) => {
        const state = onDeadLetter(message, this.leases, this.names, this.deliveryLimit);
        if (state !== undefined) this.publisher.answered(state);
      },
      { noAck: true },
    );
    await channel.prefetch(RESULT_PREFETCH);
    for (const doomed of [...this.doomed]) {
      await channel.deleteQueue(doomed);
      this.doomed.delete(doomed);
    }
  }

  private up(session: Session): void {
    clearTimeout(this.outage);
    this.outage = undefined;
    for (const state of this.leases.values()) {
      this.chore(this.openLease(state, session));
      for (const id of state.cancelling.keys()) this.publishCancel(state, session, id);
    }
    this.publisher.resend(session);
    this.prepareSpare(session);
  }

  private down(): void {
    for (const state of this.leases.values()) state.consuming = undefined;
    if (this.spare !== undefined) {
      // Its queue may exist: the next session deletes it.
      this.spare.open = false;
      this.doomed.add(this.spare.queue);
      this.spare = undefined;
    }
    this.watchOutage();
  }

  /** While disconnected with leases open, counts down to failing them. */
  private watchOutage(): void {
    if (this.outage !== undefined || this.closed) return;
    this.outage = setTimeout(() => {
      this.outage = undefined;
      if (this.connection.session !== undefined) return;
      const cause = this.connection.lastError;
      const error = new BrokerUnavailableError(
        `lost the AMQP broker at ${redact(this.options.url)} and could not reconnect within ${this.reconnectTimeoutMs} ms` +
          (cause === undefined ? '' : `: ${cause.message}`),
        { cause },
      );
      for (const state of [...this.leases.values()]) state.handlers.failed(error);
    }, this.reconnectTimeoutMs);
  }

  private chore(promise: Promise<unknown>): void {
    this.chores.add(promise);
    void promise.finally(() => this.chores.delete(promise));
  }
}
