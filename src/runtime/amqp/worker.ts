// The worker's side of the AMQP backend: one competing consumer of the task
// queue that runs each batch with a WorkerRuntime and publishes its results
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
// - A synchronous task blocks the event loop, so a signal handler cannot
//   run until it returns. While tasks run synchronously, the stop signals
//   (`closeOnSignals`) are left to their default action: a SIGTERM then ends
//   the process at once, and the broker delivers its unacked messages again.

import { hostname } from 'node:os';
import type { ConsumeMessage } from 'amqplib';
import { WorkerRuntime } from '../worker-runtime.ts';
import type { Task, TaskResult } from '../task.ts';
import type { AmqpConnectOptions } from './backend.ts';
import { publishConfirmed, ReconnectingConnection, redact, type Session } from './connection.ts';
import { BrokerUnavailableError } from './errors.ts';
import { checkOutput } from '../outputs.ts';
import { assertShared, DEFAULT_DELIVERY_LIMIT, namesOf, type Names } from './topology.ts';
import {
  CONTENT_TYPE,
  decodeTasks,
  encodeResults,
  encodeTasks,
  FORMAT,
  FORMATS,
  HEADER_COUNT,
  HEADER_FORMAT,
  HEADER_KEY,
  HEADER_MS,
  HEADER_REASON,
  HEADER_WORKER,
  headerNumber,
  headerString,
  REASON_UNDECODABLE,
  REASON_UNKNOWN_OPERATION,
  TYPE_RELEASE,
  TYPE_RESULTS,
} from './wire.ts';

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
  private closing = false;

  private constructor(
    private readonly runtime: WorkerRuntime,
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
    const runtime = await WorkerRuntime.load(modules);
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
    const { consumerTag } = await channel.consume(this.names.taskQueue, (message) => this.onTask(session, message));
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
    if (this.live.has(key)) return this.track(this.run(session, message, key, replyTo!, tasks, format!));
    this.track(
      this.leaseOpen(session, key, replyTo!).then((open) => {
        if (open) return this.run(session, message, key, replyTo!, tasks, format!);
        this.counts.dropped += tasks.length;
        if (!session.lost) session.channel.ack(message);
      }),
    );
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

  private async deadLetter(session: Session, message: ConsumeMessage, key: string, content: Buffer, reason: string): Promise<void> {
    try {
      await this.publishDeadLetter(session, key, content, reason);
      session.channel.ack(message);
    } catch {
      // Session lost: the message comes back and is judged again.
    }
  }

  private publishDeadLetter(session: Session, key: string, content: Buffer, reason: string): Promise<void> {
    this.counts.deadLettered++;
    this.options.log?.(`dead-lettered a message of ${key}: ${reason}`);
    return publishConfirmed(session.channel, this.names.deadExchange, key, content, {
      persistent: true,
      contentType: CONTENT_TYPE,
      headers: { [HEADER_REASON]: reason, [HEADER_WORKER]: this.id, [HEADER_KEY]: key, [HEADER_FORMAT]: FORMAT },
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
