// The worker's side of the AMQP backend: one competing consumer of the task
// queue that runs each batch with an Executor and publishes its results
// to the queue named by the batch's `replyTo`. `weft worker --amqp` runs one.
//
// Design notes
// - A task message is acked only once its results are confirmed by the
//   broker. A worker that dies (or loses the broker) before then leaves the
//   message unacked, and the broker delivers it again, to another worker if
//   there is one; a quorum queue counts those deliveries and dead-letters the
//   message past `deliveryLimit`.
// - Nothing blocks the consumer: a message that cannot be decoded is
//   published to the dead-letter exchange with a reason and acked; tasks
//   naming an operation this worker does not have are answered with an
//   error result and a copy goes to the dead letters.
// - Released leases (abort, failure) arrive on the control fanout; their
//   task messages still queued are acked unread. A worker that was not
//   listening when a lease was released (it started later, or was cut off)
//   learns it otherwise: the first time it sees a lease key it checks that
//   the lease's result queue exists (a release deletes it), on a channel of
//   its own since a missing queue closes the channel that asked. Keys seen
//   alive are then covered by the control fanout, which this worker has
//   been bound to since before it consumed them. Both sets are bounded:
//   keys are never reused, so forgetting an old one costs at most one more
//   check.
// - Suspects: a task message the broker delivers again was held by a worker
//   that died, but holding is not killing: every message a dying worker had
//   prefetched counts a delivery. So a worker never lets a redelivered
//   message run beside others. One of several tasks is split into messages
//   of one task each, published anew (the broker's count starts over; the
//   deaths so far travel in `x-weft-deaths`). One of one task runs
//   *isolated*: the worker cancels its consumer, lets running batches end,
//   publishes anew whatever else was delivered meanwhile, runs the suspect
//   alone, and consumes again. If it kills the worker, it is the only
//   message held, so only its count grows; a task whose deaths pass
//   `deliveryLimit` is dead-lettered (by the broker, or by the worker that
//   receives it with `killed-workers`) under its own index.
// - A synchronous task blocks the event loop, so a signal handler cannot
//   run until it returns. While tasks run synchronously, the stop signals
//   (`closeOnSignals`) are left to their default action: a SIGTERM then ends
//   the process at once, and the broker delivers its unacked messages again.

import { hostname } from 'node:os';
import type { ConsumeMessage } from 'amqplib';
import { Executor, loadOperations } from '../../core/executor.ts';
import type { Task, TaskResult } from '../../core/task.ts';
import type { AmqpConnectOptions } from './backend.ts';
import { publishConfirmed, ReconnectingConnection, redact, type Session } from './connection.ts';
import { BrokerUnavailableError } from './errors.ts';
import { checkOutput } from '../../core/outputs.ts';
import { assertShared, DEFAULT_DELIVERY_LIMIT, namesOf, type Names } from './topology.ts';
import {
  CONTENT_TYPE,
  decodeTasks,
  encodeResults,
  encodeTasks,
  FORMAT,
  FORMATS,
  HEADER_COUNT,
  HEADER_DEATHS,
  HEADER_FORMAT,
  HEADER_KEY,
  HEADER_MS,
  HEADER_REASON,
  HEADER_WORKER,
  headerNumber,
  headerString,
  REASON_KILLED_WORKERS,
  REASON_UNDECODABLE,
  REASON_UNKNOWN_OPERATION,
  TYPE_RELEASE,
  TYPE_RESULTS,
  TYPE_TASKS,
} from './messages.ts';

export interface AmqpWorkerOptions extends AmqpConnectOptions {
  /** The module(s) whose `defineOperation` calls this worker serves, as URL or path. */
  operations: string | URL | readonly (string | URL)[];
  /** Task messages (batches) delivered ahead of the one running. Default 4. */
  prefetch?: number;
  /** Where connection news goes. Default: nowhere. */
  log?: (line: string) => void;
}

export interface AmqpWorkerStats {
  /** Tasks run. */
  executed: number;
  /** Tasks dropped unread because their lease was released. */
  dropped: number;
  /** Messages published to the dead letters. */
  deadLettered: number;
}

const DEFAULT_PREFETCH = 4;
const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
const MAX_KNOWN_KEYS = 10_000;
// On close, how long batches already running may take to finish and ack.
const CLOSE_GRACE_MS = 5_000;

export class AmqpWorker {
  readonly id = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  private readonly names: Names;
  private readonly connection: ReconnectingConnection;
  private readonly released = new Set<string>();
  /** Lease keys whose result queue was seen to exist. */
  private readonly live = new Set<string>();
  private readonly checks = new Map<string, Promise<boolean>>();
  private readonly stopSignals: NodeJS.Signals[] = [];
  private readonly onStopSignal = () => void this.close();
  private readonly running = new Set<Promise<void>>();
  private readonly counts: AmqpWorkerStats = { executed: 0, dropped: 0, deadLettered: 0 };
  private taskConsumer: { session: Session; tag: string } | undefined;
  /** While a suspect runs alone: what was delivered meanwhile, to publish anew unrun. */
  private isolation: { session: Session; held: ConsumeMessage[] } | undefined;
  private closing = false;

  private constructor(
    private readonly runtime: Executor,
    private readonly options: AmqpWorkerOptions,
  ) {
    this.names = namesOf(options.prefix);
    const log = options.log;
    this.connection = new ReconnectingConnection(
      { url: options.url, heartbeatSeconds: options.heartbeatSeconds, backoff: options.backoff, name: `weft worker ${this.id}` },
      {
        setup: (session) => this.setup(session),
        up: (session) => log?.(`connected to ${redact(options.url)} (session ${session.generation})`),
        down: (error) => log?.(`lost the broker (${error.message}); reconnecting`),
      },
    );
  }

  /** Imports the operations, connects (retrying with backoff) and starts consuming tasks. */
  static async start(options: AmqpWorkerOptions): Promise<AmqpWorker> {
    const operations = options.operations;
    const modules = Array.isArray(operations) ? operations : [operations as string | URL];
    await loadOperations(modules);
    const runtime = new Executor();
    const worker = new AmqpWorker(runtime, options);
    worker.connection.start();
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    try {
      await worker.connection.whenUp(timeoutMs);
    } catch (error) {
      await worker.connection.close();
      throw new BrokerUnavailableError(
        `cannot reach the AMQP broker at ${redact(options.url)} within ${timeoutMs} ms: ${(error as Error).message}`,
        { cause: error },
      );
    }
    return worker;
  }

  stats(): AmqpWorkerStats {
    return { ...this.counts };
  }

  /**
   * Closes on the first of `signals` (as `weft worker` does for SIGINT and
   * SIGTERM) and resolves once closed. While a batch runs synchronously the
   * signals keep their default action, so a worker stuck in a task still
   * stops: at once, its unacked messages going back to the broker.
   */
  closeOnSignals(signals: readonly NodeJS.Signals[]): Promise<void> {
    this.stopSignals.push(...signals);
    this.listenForStop(true);
    return new Promise((resolve) => (this.whenClosed = resolve));
  }

  private whenClosed: (() => void) | undefined;

  private listenForStop(on: boolean): void {
    for (const signal of this.stopSignals) {
      if (on) process.once(signal, this.onStopSignal);
      else process.off(signal, this.onStopSignal);
    }
  }

  /** Stops taking tasks, lets running batches finish and ack (a few seconds at most), and disconnects. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.listenForStop(false);
    const consumer = this.taskConsumer;
    if (consumer !== undefined && this.connection.session === consumer.session) {
      await consumer.session.channel.cancel(consumer.tag).catch(() => {});
    }
    await Promise.race([Promise.allSettled([...this.running]), new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS).unref())]);
    await this.connection.close();
    this.whenClosed?.();
  }

  private async setup(session: Session): Promise<void> {
    const { channel } = session;
    await assertShared(channel, this.names, this.options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT);
    // Control first, so a release published while we subscribe is not missed
    // for tasks we are about to receive.
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, this.names.controlExchange, '');
    await channel.consume(queue, (message) => this.onControl(message), { noAck: true });
    await channel.prefetch(Math.max(1, this.options.prefetch ?? DEFAULT_PREFETCH));
    if (this.closing) return;
    await this.consumeTasks(session);
  }

  private async consumeTasks(session: Session): Promise<void> {
    const { consumerTag } = await session.channel.consume(this.names.taskQueue, (message) => this.onTask(session, message));
    this.taskConsumer = { session, tag: consumerTag };
  }

  private onControl(message: ConsumeMessage | null): void {
    if (message === null || message.properties.type !== TYPE_RELEASE) return;
    const key = headerString(message.properties.headers, HEADER_KEY);
    if (key === undefined) return;
    remember(this.released, key);
    this.live.delete(key);
  }

  private onTask(session: Session, message: ConsumeMessage | null): void {
    if (message === null) {
      // The broker cancelled us (the task queue was deleted): start over,
      // which declares it again.
      if (!this.closing) void session.connection.close().catch(() => {});
      return;
    }
    if (this.isolation?.session === session) {
      this.isolation.held.push(message);
      return;
    }
    const headers = message.properties.headers;
    const key = headerString(headers, HEADER_KEY) ?? message.fields.routingKey;
    if (this.released.has(key)) {
      this.counts.dropped += headerNumber(headers, HEADER_COUNT) ?? 0;
      session.channel.ack(message);
      return;
    }
    const format = headerNumber(headers, HEADER_FORMAT);
    const replyTo = message.properties.replyTo as string | undefined;
    let tasks: Task[];
    try {
      if (format === undefined || !FORMATS.includes(format)) {
        throw new Error(`message format ${format ?? 'missing'}, this worker reads format ${FORMATS.join(' or ')}`);
      }
      if (typeof replyTo !== 'string' || replyTo === '') throw new Error('no reply-to queue');
      tasks = decodeTasks(message.content, key, format);
    } catch (error) {
      this.track(this.deadLetter(session, message, key, message.content, `${REASON_UNDECODABLE}: ${(error as Error).message}`));
      return;
    }
    // Batches that started before this message (not the tracked promise that will serve it).
    const running = [...this.running];
    const deaths = deathsOf(message);
    if (deaths > (this.options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT)) {
      const reason = `${REASON_KILLED_WORKERS}: ${deaths} workers died while this message was running alone on them`;
      return this.track(this.deadLetter(session, message, key, message.content, reason, format!));
    }
    const serve = () => {
      if (deaths === 0) return this.run(session, message, key, replyTo!, tasks, format!);
      if (tasks.length > 1) return this.split(session, message, tasks, deaths);
      return this.isolate(session, running, message, () => this.run(session, message, key, replyTo!, tasks, format!));
    };
    if (this.live.has(key)) return this.track(serve());
    this.track(
      this.leaseOpen(session, key, replyTo!).then((open) => {
        if (open) return serve();
        this.counts.dropped += tasks.length;
        if (!session.lost) session.channel.ack(message);
      }),
    );
  }

  /** A redelivered message of several tasks goes back as one message per task, its deaths carried. */
  private async split(session: Session, message: ConsumeMessage, tasks: Task[], deaths: number): Promise<void> {
    try {
      await Promise.all(tasks.map((task) => this.publishAnew(session, message, encodeTasks([task]), FORMAT, 1, deaths)));
      session.channel.ack(message);
    } catch {
      // Session lost: the message comes back and is judged again.
    }
  }

  /**
   * Runs a suspect alone: no other message is held while it runs, so if it
   * kills this process the broker counts a death for it only.
   */
  private async isolate(session: Session, running: readonly Promise<void>[], message: ConsumeMessage, run: () => Promise<void>): Promise<void> {
    // One suspect at a time: a second one waits its turn in the queue.
    if (this.isolation?.session === session) return void this.isolation.held.push(message);
    const isolation = { session, held: [] as ConsumeMessage[] };
    this.isolation = isolation;
    try {
      await Promise.race([Promise.allSettled(running), new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS).unref())]);
      // Until nothing is held and no consumer is left: a consumer may have
      // been starting (after the previous suspect) when this one arrived.
      for (;;) {
        const consumer = this.taskConsumer;
        this.taskConsumer = undefined;
        if (consumer?.session === session) await session.channel.cancel(consumer.tag);
        await this.releaseHeld(isolation);
        // Acks are never answered, and a suspect that ends the process could
        // cut them off in a socket buffer; the broker answers this declare
        // only once it has handled every frame sent before it on the channel.
        await session.channel.checkQueue(this.names.taskQueue);
        if (isolation.held.length === 0 && this.taskConsumer === undefined) break;
      }
      await run();
    } catch {
      // Session lost: what was held comes back from the broker.
    } finally {
      this.isolation = undefined;
      if (!session.lost && this.connection.session === session) {
        await this.releaseHeld(isolation).catch(() => {});
        if (!this.closing && this.taskConsumer === undefined) await this.consumeTasks(session).catch(() => {});
      }
    }
  }

  /** Messages delivered while a suspect waits or runs go back to the queue unrun, their deaths carried. */
  private async releaseHeld(isolation: { session: Session; held: ConsumeMessage[] }): Promise<void> {
    const { session } = isolation;
    const held = isolation.held;
    isolation.held = [];
    await Promise.all(
      held.map(async (message) => {
        const headers = message.properties.headers;
        const format = headerNumber(headers, HEADER_FORMAT) ?? FORMAT;
        await this.publishAnew(session, message, message.content, format, headerNumber(headers, HEADER_COUNT) ?? 0, deathsOf(message));
        session.channel.ack(message);
      }),
    );
  }

  private publishAnew(session: Session, original: ConsumeMessage, content: Buffer, format: number, count: number, deaths: number): Promise<void> {
    const key = headerString(original.properties.headers, HEADER_KEY) ?? original.fields.routingKey;
    return publishConfirmed(session.channel, this.names.taskExchange, original.fields.routingKey, content, {
      persistent: true,
      contentType: CONTENT_TYPE,
      type: TYPE_TASKS,
      replyTo: original.properties.replyTo,
      headers: { [HEADER_FORMAT]: format, [HEADER_KEY]: key, [HEADER_COUNT]: count, [HEADER_DEATHS]: deaths },
    });
  }

  /** Does the lease `key` still exist? One check of its result queue per key, shared by its messages. */
  private leaseOpen(session: Session, key: string, queue: string): Promise<boolean> {
    let check = this.checks.get(key);
    if (check === undefined) {
      check = queueExists(session, queue).then((exists) => {
        this.checks.delete(key);
        if (!this.released.has(key)) remember(exists ? this.live : this.released, key);
        return exists && !this.released.has(key);
      });
      this.checks.set(key, check);
    }
    return check;
  }

  /** Runs a batch (async operations concurrently), publishes its results (in the batch's format), and acks once they are confirmed. */
  private async run(session: Session, message: ConsumeMessage, key: string, replyTo: string, tasks: Task[], format: number): Promise<void> {
    const started = performance.now();
    const outcomes: (TaskResult | Promise<TaskResult>)[] = [];
    this.listenForStop(false);
    try {
      for (const task of tasks) outcomes.push(this.runtime.execute(task));
    } finally {
      if (!this.closing) this.listenForStop(true);
    }
    this.counts.executed += tasks.length;
    const results = (outcomes.some((outcome) => outcome instanceof Promise) ? await Promise.all(outcomes) : (outcomes as TaskResult[])).map(checkOutput);
    const elapsed = performance.now() - started;
    if (session.lost) return; // the delivery is void; the broker delivers it again
    const confirms = [
      publishConfirmed(session.channel, '', replyTo, encodeResults(results, format), {
        persistent: true,
        contentType: CONTENT_TYPE,
        type: TYPE_RESULTS,
        headers: { [HEADER_FORMAT]: format, [HEADER_KEY]: key, [HEADER_MS]: elapsed, [HEADER_WORKER]: this.id },
      }),
    ];
    const unknown = tasks.filter((_, i) => results[i]!.error?.name === 'UnknownOperationError');
    if (unknown.length > 0) {
      const names = [...new Set(unknown.map((task) => task.op))].map((op) => `'${op}'`).join(', ');
      confirms.push(
        this.publishDeadLetter(session, key, encodeTasks(unknown), `${REASON_UNKNOWN_OPERATION}: ${names} not registered on worker ${this.id}`),
      );
    }
    try {
      await Promise.all(confirms);
      session.channel.ack(message);
    } catch {
      // Session lost before the confirm: the broker delivers the batch again.
    }
  }

  private async deadLetter(session: Session, message: ConsumeMessage, key: string, content: Buffer, reason: string, format = FORMAT): Promise<void> {
    try {
      await this.publishDeadLetter(session, key, content, reason, format);
      session.channel.ack(message);
    } catch {
      // Session lost: the message comes back and is judged again.
    }
  }

  private publishDeadLetter(session: Session, key: string, content: Buffer, reason: string, format = FORMAT): Promise<void> {
    this.counts.deadLettered++;
    this.options.log?.(`dead-lettered a message of ${key}: ${reason}`);
    return publishConfirmed(session.channel, this.names.deadExchange, key, content, {
      persistent: true,
      contentType: CONTENT_TYPE,
      headers: { [HEADER_REASON]: reason, [HEADER_WORKER]: this.id, [HEADER_KEY]: key, [HEADER_FORMAT]: format },
    });
  }

  private track(promise: Promise<void>): void {
    this.running.add(promise);
    void promise.finally(() => this.running.delete(promise));
  }
}

/** Adds `key` to a bounded set of keys, forgetting the oldest. */
function remember(keys: Set<string>, key: string): void {
  keys.add(key);
  if (keys.size > MAX_KNOWN_KEYS) keys.delete(keys.values().next().value!);
}

/**
 * True unless the broker says `queue` does not exist. Asked on a channel of
 * its own, which the broker closes when the answer is no; any other failure
 * counts as yes (the tasks run, their results possibly unread).
 */
async function queueExists(session: Session, queue: string): Promise<boolean> {
  let channel;
  try {
    channel = await session.connection.createChannel();
  } catch {
    return true;
  }
  channel.on('error', () => {});
  try {
    await channel.checkQueue(queue);
    await channel.close().catch(() => {});
    return true;
  } catch (error) {
    return (error as { code?: number }).code !== 404;
  }
}

/** Worker deaths a task message was present at: carried from earlier copies, plus the broker's count for this one. */
function deathsOf(message: ConsumeMessage): number {
  const headers = message.properties.headers;
  const returned = headerNumber(headers, 'x-delivery-count') ?? (message.fields.redelivered ? 1 : 0);
  return (headerNumber(headers, HEADER_DEATHS) ?? 0) + returned;
}
