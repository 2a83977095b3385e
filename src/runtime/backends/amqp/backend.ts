// The orchestrator's side of the AMQP backend (`Runtime.amqp`): publishes
// task batches to the shared task queue and gives each directive (lease) its
// own result queue.
//
// Design notes
// - A published batch stays in `unconfirmed` until the broker confirms it.
//   After a reconnection every unconfirmed batch of an open lease is
//   published again; confirmed ones are safe in the quorum queue, and results
//   confirmed to a worker are safe in the durable result queue, so nothing
//   else needs re-sending. A batch sent twice is answered twice; the
//   orchestrator counts each result once.
// - Batches are sized from how long tasks take (the workers report it in a
//   header): about `BATCH_MS` of work per message, so cheap tasks travel by
//   the hundred and slow ones one or two at a time across competing workers.
// - Releasing a lease with unanswered tasks tells every worker through the
//   control fanout, so they drop its queued tasks; the broker offers no way
//   to remove chosen messages from a queue.
// - While disconnected, directives wait; if the broker is not back within
//   `reconnectTimeoutMs`, every open lease fails with BrokerUnavailableError.

import { randomBytes } from 'node:crypto';
import type { ConsumeMessage } from 'amqplib';
import type { Backend, Lease, LeaseHandlers } from '../../core/backend.ts';
import { RuntimeClosedError, WorkerLostError } from '../../core/errors.ts';
import { failed, type Task } from '../../core/task.ts';
import { BrokerUnavailableError, DeadLetterError } from './errors.ts';
import type { BackoffOptions } from './backoff.ts';
import { publishConfirmed, ReconnectingConnection, redact, type Session } from './connection.ts';
import { assertResultQueue, assertShared, DEFAULT_DELIVERY_LIMIT, namesOf, type Names } from './topology.ts';
import {
  CONTENT_TYPE,
  decodeResults,
  decodeTasks,
  encodeTasks,
  FORMAT,
  HEADER_COUNT,
  HEADER_DEATHS,
  HEADER_FORMAT,
  HEADER_KEY,
  HEADER_MS,
  HEADER_REASON,
  headerNumber,
  headerString,
  REASON_KILLED_WORKERS,
  REASON_UNKNOWN_OPERATION,
  TYPE_RELEASE,
  TYPE_TASKS,
} from './messages.ts';

/** Options shared by orchestrators and workers; both sides must agree on `prefix` and `deliveryLimit`. */
export interface AmqpConnectOptions {
  /** `amqp://user:password@host:port/vhost`. */
  url: string;
  /** Names every queue and exchange: `<prefix>.tasks`, `<prefix>.dead`, … Default `weft`. */
  prefix?: string;
  /** Deliveries of a task message before the broker dead-letters it (quorum `x-delivery-limit`). Default 3. */
  deliveryLimit?: number;
  /** AMQP heartbeat in seconds. Default 5. */
  heartbeatSeconds?: number;
  /** Reconnection delays: from `initialMs` (100), doubling, up to `maxMs` (2000). */
  backoff?: BackoffOptions;
  /** How long the first connection may take before giving up, in ms. Default 30 000. */
  connectTimeoutMs?: number;
}

export interface AmqpBackendOptions extends AmqpConnectOptions {
  /** Most tasks in one message. Default 256. */
  maxBatch?: number;
  /** How long directives wait for a lost broker before failing, in ms. Default 30 000. */
  reconnectTimeoutMs?: number;
  /** The `parallelism` hint reported to directives. Default 16. */
  parallelism?: number;
}

const DEFAULT_MAX_BATCH = 256;
const DEFAULT_RECONNECT_TIMEOUT_MS = 30_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
// Work per task message, in ms of the workers' time.
const BATCH_MS = 20;
// Work worth splitting across at least two messages, in ms.
const SPREAD_MS = 1;
// Until workers have reported timings, assume tasks take this long.
const INITIAL_TASK_MS = 1;
// Delay before publishing again a batch the broker refused (nack).
const NACK_RETRY_MS = 200;
// Results delivered to the orchestrator before it acks them.
const RESULT_PREFETCH = 64;

interface LeaseState {
  readonly key: string;
  readonly queue: string;
  /** Set when a directive takes the lease (a spare has none until then). */
  handlers: LeaseHandlers;
  open: boolean;
  /** The session the result queue was (being) declared and consumed on. */
  openedOn: Session | undefined;
  /** The session whose channel consumes this lease's queue. */
  consuming: Session | undefined;
  consumerTag: string | undefined;
  /** Tasks dispatched before the result queue was ready. */
  backlog: Task[];
  /** Tasks without an answer yet, by `idOf(index, stage, attempt)`. */
  readonly unanswered: Set<number | string>;
}

interface Publication {
  readonly lease: LeaseState;
  readonly count: number;
  readonly content: Buffer;
  sentOn: Session | undefined;
}

const NO_HANDLERS: LeaseHandlers = { results: () => {}, failed: () => {} };

/**
 * A task's identity: its index for a first stage's first attempt (a small
 * integer, the cheapest key a Set has, and the common case), a negative
 * number for other stages and attempts while it fits, a string beyond.
 */
const idOf = (index: number, stage: number, attempt: number): number | string =>
  stage === 0 && attempt === 0
    ? index
    : index < 0x2_0000_0000 && stage < 1024 && attempt < 1024
      ? -((index * 1024 + stage) * 1024 + attempt) - 1
      : `${index}:${stage}:${attempt}`;

export class AmqpBackend implements Backend {
  readonly parallelism: number;
  /** Unique per orchestrator: lease keys are `<id>.<n>`. */
  readonly id = randomBytes(6).toString('hex');
  private readonly names: Names;
  private readonly connection: ReconnectingConnection;
  private readonly leases = new Map<string, LeaseState>();
  /**
   * The next lease, opened ahead: its result queue is declared and consumed
   * (or being so) before a directive asks, so a directive's first tasks
   * leave at once instead of after the declare's round trip.
   */
  private spare: LeaseState | undefined;
  private readonly unconfirmed = new Set<Publication>();
  /** Result queues of released leases that could not be deleted while disconnected. */
  private readonly doomed = new Set<string>();
  private readonly chores = new Set<Promise<unknown>>();
  /** Leases with a backlog to publish once the current callbacks have run. */
  private readonly dirty = new Set<LeaseState>();
  private flushing = false;
  private readonly maxBatch: number;
  private readonly reconnectTimeoutMs: number;
  private readonly deliveryLimit: number;
  private taskMs = INITIAL_TASK_MS;
  private nextKey = 0;
  private outage: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  private constructor(private readonly options: AmqpBackendOptions) {
    this.names = namesOf(options.prefix);
    this.parallelism = options.parallelism ?? 16;
    this.maxBatch = Math.max(1, options.maxBatch ?? DEFAULT_MAX_BATCH);
    this.reconnectTimeoutMs = options.reconnectTimeoutMs ?? DEFAULT_RECONNECT_TIMEOUT_MS;
    this.deliveryLimit = options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT;
    this.connection = new ReconnectingConnection(
      { url: options.url, heartbeatSeconds: options.heartbeatSeconds, backoff: options.backoff, name: `weft orchestrator ${this.id}` },
      { setup: (session) => this.setup(session), up: (session) => this.up(session), down: () => this.down() },
    );
  }

  /** Connects (retrying with backoff) and declares the topology; rejects if the broker stays away. */
  static async start(options: AmqpBackendOptions): Promise<AmqpBackend> {
    const backend = new AmqpBackend(options);
    backend.connection.start();
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    try {
      await backend.connection.whenUp(timeoutMs);
    } catch (error) {
      await backend.close();
      throw new BrokerUnavailableError(
        `cannot reach the AMQP broker at ${redact(options.url)} within ${timeoutMs} ms: ${(error as Error).message}`,
        { cause: error },
      );
    }
    return backend;
  }

  lease(handlers: LeaseHandlers): Lease {
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
    this.leases.set(state.key, state);
    if (session !== undefined) this.prepareSpare(session);
    else this.watchOutage();
    const taken = state;
    return { key: taken.key, release: () => this.release(taken) };
  }

  private newLease(): LeaseState {
    const key = `${this.id}.${this.nextKey++}`;
    return {
      key,
      queue: this.names.resultQueue(key),
      handlers: NO_HANDLERS,
      open: true,
      openedOn: undefined,
      consuming: undefined,
      consumerTag: undefined,
      backlog: [],
      unanswered: new Set(),
    };
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

  dispatch(tasks: readonly Task[]): void {
    let state: LeaseState | undefined;
    let group: Task[] = [];
    // Directives dispatch one lease's tasks per call; group anyway.
    for (const task of tasks) {
      if (state?.key !== task.key) {
        if (state !== undefined) this.enqueue(state, group);
        state = this.leases.get(task.key);
        group = [];
      }
      group.push(task);
    }
    if (state !== undefined) this.enqueue(state, group);
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

  // ---------------------------------------------------------------- sending

  /**
   * Tasks wait in the lease's backlog until the current callback stack has
   * unwound: results arrive one message per callback, and each hands back a
   * few tasks, so publishing at once would cut the next batches ever
   * smaller. A microtask runs after amqplib has handed over every message of
   * one socket read, so it gathers all of them, and the publishes still
   * reach the socket in this turn of the event loop (amqplib writes in the
   * turn's check phase); a setImmediate here would cost a whole turn per
   * refill, with the worker's deliveries handled in between.
   */
  private enqueue(state: LeaseState, tasks: Task[]): void {
    if (!state.open) return;
    for (const task of tasks) {
      state.unanswered.add(idOf(task.index, task.stage, task.attempt));
      state.backlog.push(task);
    }
    this.dirty.add(state);
    if (this.flushing) return;
    this.flushing = true;
    queueMicrotask(() => {
      this.flushing = false;
      const session = this.connection.session;
      for (const lease of this.dirty) {
        // Until its result queue is consumed on this session, a lease keeps
        // its backlog; `openLease` publishes it.
        if (session === undefined || lease.consuming !== session || !lease.open) continue;
        const backlog = lease.backlog;
        lease.backlog = [];
        this.publishTasks(lease, backlog, session);
      }
      this.dirty.clear();
    });
  }

  /**
   * Cuts `tasks` into messages of about BATCH_MS of work each (at most
   * `maxBatch` tasks); work worth more than SPREAD_MS goes out as at least
   * two messages, so that two workers share it.
   */
  private publishTasks(state: LeaseState, tasks: readonly Task[], session: Session): void {
    const byTime = Math.max(1, Math.min(this.maxBatch, Math.ceil(BATCH_MS / this.taskMs)));
    const spread = tasks.length * this.taskMs > SPREAD_MS ? Math.ceil(tasks.length / 2) : tasks.length;
    const size = Math.max(1, Math.min(byTime, spread));
    for (let start = 0; start < tasks.length; start += size) {
      const chunk = tasks.slice(start, start + size);
      const publication: Publication = { lease: state, count: chunk.length, content: encodeTasks(chunk), sentOn: undefined };
      this.unconfirmed.add(publication);
      this.send(publication, session);
    }
  }

  private send(publication: Publication, session: Session): void {
    const { lease } = publication;
    publication.sentOn = session;
    publishConfirmed(session.channel, this.names.taskExchange, lease.key, publication.content, {
      persistent: true,
      contentType: CONTENT_TYPE,
      type: TYPE_TASKS,
      replyTo: lease.queue,
      headers: { [HEADER_FORMAT]: FORMAT, [HEADER_KEY]: lease.key, [HEADER_COUNT]: publication.count },
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

  // ---------------------------------------------------------------- leases

  private async openLease(state: LeaseState, session: Session): Promise<void> {
    state.openedOn = session;
    try {
      await assertResultQueue(session.channel, state.queue, this.resultQueueExpiresMs());
      const { consumerTag } = await session.channel.consume(state.queue, (message) => this.onResults(state, session, message), {
        exclusive: true,
      });
      if (!state.open) {
        await this.dropQueue(state.queue, session, consumerTag);
        return;
      }
      if (this.connection.session !== session) return; // lost meanwhile: `up` opens it again
      state.consuming = session;
      state.consumerTag = consumerTag;
      const backlog = state.backlog;
      state.backlog = [];
      if (backlog.length > 0) this.publishTasks(state, backlog, session);
    } catch {
      // The channel failed, so the session is lost; `up` opens the lease
      // again (a discarded spare's queue may exist: delete it later).
      if (!state.open) this.doomed.add(state.queue);
    }
  }

  private release(state: LeaseState): void {
    if (!state.open) return;
    state.open = false;
    this.leases.delete(state.key);
    for (const publication of this.unconfirmed) if (publication.lease === state) this.unconfirmed.delete(publication);
    const session = this.connection.session;
    if (session === undefined) {
      this.doomed.add(state.queue);
      return;
    }
    if (state.unanswered.size > 0) {
      // Tasks of this lease may still be queued: every worker drops them.
      publishConfirmed(session.channel, this.names.controlExchange, '', Buffer.alloc(0), {
        type: TYPE_RELEASE,
        headers: { [HEADER_KEY]: state.key },
      }).catch(() => {});
    }
    // A lease still being opened deletes its queue when the open finishes.
    if (state.consuming === session) this.chore(this.dropQueue(state.queue, session, state.consumerTag));
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

  // ---------------------------------------------------------------- receiving

  private onResults(state: LeaseState, session: Session, message: ConsumeMessage | null): void {
    if (message === null) {
      // The broker cancelled the consumer: the queue was deleted under us.
      if (state.open) state.handlers.failed(new RuntimeClosedError(`the result queue ${state.queue} was deleted`));
      return;
    }
    let results;
    try {
      results = decodeResults(message.content, state.key, headerNumber(message.properties.headers, HEADER_FORMAT) ?? FORMAT);
    } catch (error) {
      session.channel.ack(message);
      if (state.open) state.handlers.failed(new DeadLetterError(`a result message could not be decoded: ${(error as Error).message}`, state.queue));
      return;
    }
    session.channel.ack(message);
    const ms = headerNumber(message.properties.headers, HEADER_MS);
    if (ms !== undefined && results.length > 0) this.taskMs = 0.7 * this.taskMs + 0.3 * Math.max(ms / results.length, 0.0005);
    for (const result of results) state.unanswered.delete(idOf(result.index, result.stage, result.attempt));
    if (state.open) state.handlers.results(results);
  }

  /**
   * A dead letter of one of our leases. From the broker (it carries
   * `x-first-death-reason`, usually `delivery_limit`) or from a worker that
   * counted the deaths itself (`killed-workers`): its tasks fail with
   * WorkerLostError, so the directive rejects naming the operation and index.
   * From a worker: unknown operations were already answered with an error
   * result; anything else fails the lease with the worker's reason.
   */
  private onDeadLetter(message: ConsumeMessage | null): void {
    if (message === null) return;
    const state = this.leases.get(message.fields.routingKey);
    if (state === undefined) return;
    const headers = message.properties.headers;
    const brokerReason = headerString(headers, 'x-first-death-reason');
    const reason = headerString(headers, HEADER_REASON) ?? 'no reason given';
    if (brokerReason === undefined && !reason.startsWith(REASON_KILLED_WORKERS)) {
      if (!reason.startsWith(REASON_UNKNOWN_OPERATION)) state.handlers.failed(new DeadLetterError(reason, this.names.deadQueue));
      return;
    }
    let tasks: Task[];
    try {
      tasks = decodeTasks(message.content, state.key, headerNumber(headers, HEADER_FORMAT) ?? FORMAT);
    } catch {
      state.handlers.failed(new DeadLetterError(`a task message was dead-lettered (${brokerReason ?? reason})`, this.names.deadQueue));
      return;
    }
    const deaths = (headerNumber(headers, HEADER_DEATHS) ?? 0) + (headerNumber(headers, 'x-delivery-count') ?? 0);
    const lost = new WorkerLostError(
      brokerReason !== undefined
        ? `the broker dead-lettered this task (${brokerReason}) after ${deaths || this.deliveryLimit} redeliveries: ` +
            `its workers kept dying while running it; the message is in ${this.names.deadQueue}`
        : `a worker dead-lettered this task (${reason}); the message is in ${this.names.deadQueue}`,
    );
    state.handlers.results(tasks.map((task) => failed(task, lost)));
  }

  // ---------------------------------------------------------------- sessions

  private async setup(session: Session): Promise<void> {
    const { channel } = session;
    await assertShared(channel, this.names, this.deliveryLimit);
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, this.names.deadExchange, `${this.id}.#`);
    await channel.consume(queue, (message) => this.onDeadLetter(message), { noAck: true });
    await channel.prefetch(RESULT_PREFETCH);
    for (const doomed of [...this.doomed]) {
      await channel.deleteQueue(doomed);
      this.doomed.delete(doomed);
    }
  }

  private up(session: Session): void {
    clearTimeout(this.outage);
    this.outage = undefined;
    for (const state of this.leases.values()) this.chore(this.openLease(state, session));
    for (const publication of this.unconfirmed) {
      if (publication.lease.open) this.send(publication, session);
      else this.unconfirmed.delete(publication);
    }
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
