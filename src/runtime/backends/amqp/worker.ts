// The worker's side of the AMQP backend: one competing consumer of the task
// queue that runs each batch with an Executor and publishes its results
// to the queue named by the batch's `replyTo`. `weft worker --amqp` runs one.
//
// Design notes
// - A task message is acked only once its results are confirmed by the
//   broker. A worker that dies (or loses the broker) before then leaves the
//   message unacked, and the broker delivers it again, to another worker if
//   there is one; a quorum queue counts those deliveries and dead-letters the
//   message past `deliveryLimit`. Redelivered messages are suspects
//   (suspects.ts).
// - Nothing blocks the consumer: a message that cannot be decoded is
//   published to the dead-letter exchange with a reason and acked; tasks
//   naming an operation this worker does not have are answered with an
//   error result and a copy goes to the dead letters.
// - Task messages of released leases are acked unread (released-leases.ts).
// - A synchronous task blocks the event loop, so a signal handler cannot
//   run until it returns. While tasks run synchronously, the stop signals
//   (`closeOnSignals`) are left to their default action: a SIGTERM then ends
//   the process at once, and the broker delivers its unacked messages again.

import { hostname } from 'node:os';
import type { ConsumeMessage } from 'amqplib';
import { Executor, loadOperations } from '../../core/executor.ts';
import { checkOutput } from '../../core/outputs.ts';
import type { Task, TaskResult } from '../../core/task.ts';
import { ReconnectingConnection, redact, type Session } from './connection.ts';
import { MalformedMessageError } from './errors.ts';
import {
  checkFormat,
  decodeTasks,
  encodeTasks,
  HEADER_COUNT,
  HEADER_FORMAT,
  HEADER_KEY,
  headerNumber,
  headerString,
  REASON_KILLED_WORKERS,
  REASON_UNDECODABLE,
  REASON_UNKNOWN_OPERATION,
  TYPE_RELEASE,
} from './messages.ts';
import { checkPositiveInteger } from '../../core/options.ts';
import { checkConnectOptions, type AmqpConnectOptions } from './options.ts';
import { ReleasedLeases } from './released-leases.ts';
import { deathsOf, SETTLE_MS, Suspects } from './suspects.ts';
import { TaskConsumer } from './task-consumer.ts';
import { assertShared, DEFAULT_DELIVERY_LIMIT, namesOf, type Names } from './topology.ts';
import { WorkerPublisher } from './worker-publisher.ts';

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

export class AmqpWorker {
  readonly id = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  private readonly names: Names;
  private readonly deliveryLimit: number;
  private readonly connection: ReconnectingConnection;
  private readonly consumer: TaskConsumer;
  private readonly publisher: WorkerPublisher;
  private readonly suspects: Suspects;
  private readonly leases = new ReleasedLeases();
  private readonly stopSignals: NodeJS.Signals[] = [];
  private readonly onStopSignal = () => void this.close();
  private whenClosed: (() => void) | undefined;
  /** Batches being served, from delivery to ack. */
  private readonly running = new Set<Promise<void>>();
  private executed = 0;
  private dropped = 0;
  private closing = false;

  private constructor(
    private readonly runtime: Executor,
    private readonly options: AmqpWorkerOptions,
  ) {
    this.names = namesOf(options.prefix);
    this.deliveryLimit = options.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT;
    const log = options.log;
    this.connection = new ReconnectingConnection(
      { url: options.url, heartbeatSeconds: options.heartbeatSeconds, backoff: options.backoff, name: `weft worker ${this.id}` },
      {
        setup: (session) => this.setup(session),
        up: (session) => log?.(`connected to ${redact(options.url)} (session ${session.generation})`),
        down: (error) => log?.(`lost the broker (${error.message}); reconnecting`),
      },
    );
    this.consumer = new TaskConsumer(this.names.taskQueue, (session, message) => this.onTask(session, message));
    this.publisher = new WorkerPublisher(this.names, this.id, log);
    this.suspects = new Suspects(this.names, this.connection, this.consumer, this.publisher, () => this.closing);
  }

  /** Imports the operations, connects (retrying with backoff) and starts consuming tasks. */
  static async start(options: AmqpWorkerOptions): Promise<AmqpWorker> {
    const where = 'WorkerRuntime.amqp option';
    checkConnectOptions(where, options);
    checkPositiveInteger(where, 'prefetch', options.prefetch);
    const operations = options.operations;
    const modules = Array.isArray(operations) ? operations : [operations as string | URL];
    await loadOperations(modules);
    const worker = new AmqpWorker(new Executor(), options);
    await worker.connection.open(options.connectTimeoutMs);
    return worker;
  }

  stats(): AmqpWorkerStats {
    return { executed: this.executed, dropped: this.dropped, deadLettered: this.publisher.deadLettered };
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
    const session = this.connection.session;
    if (session !== undefined) await this.consumer.stop(session).catch(() => {});
    await Promise.race([Promise.allSettled([...this.running]), new Promise((resolve) => setTimeout(resolve, SETTLE_MS).unref())]);
    await this.connection.close();
    this.whenClosed?.();
  }

  private async setup(session: Session): Promise<void> {
    const { channel } = session;
    await assertShared(channel, this.names, this.deliveryLimit);
    // Control first, so a release published while we subscribe is not missed
    // for tasks we are about to receive.
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, this.names.controlExchange, '');
    await channel.consume(queue, (message) => this.onControl(message), { noAck: true });
    await channel.prefetch(this.options.prefetch ?? DEFAULT_PREFETCH);
    if (this.closing) return;
    await this.consumer.start(session);
  }

  private onControl(message: ConsumeMessage | null): void {
    if (message === null || message.properties.type !== TYPE_RELEASE) return;
    const key = headerString(message.properties.headers, HEADER_KEY);
    if (key !== undefined) this.leases.release(key);
  }

  private onTask(session: Session, message: ConsumeMessage | null): void {
    if (message === null) {
      // The broker cancelled us (the task queue was deleted): start over,
      // which declares it again.
      if (!this.closing) void session.connection.close().catch(() => {});
      return;
    }
    if (this.suspects.hold(session, message)) return;
    const headers = message.properties.headers;
    const key = headerString(headers, HEADER_KEY) ?? message.fields.routingKey;
    if (this.leases.isReleased(key)) {
      this.dropped += headerNumber(headers, HEADER_COUNT) ?? 0;
      session.channel.ack(message);
      return;
    }
    const replyTo = message.properties.replyTo as unknown;
    let tasks: Task[];
    try {
      checkFormat(headerNumber(headers, HEADER_FORMAT));
      if (typeof replyTo !== 'string' || replyTo === '') throw new MalformedMessageError('no reply-to queue');
      tasks = decodeTasks(message.content, key);
    } catch (error) {
      const reason = `${REASON_UNDECODABLE}: ${(error as Error).message}`;
      this.track(this.deadLetter(session, message, key, message.content, reason, headerNumber(headers, HEADER_FORMAT)));
      return;
    }
    // Batches that started before this message (not the tracked promise that will serve it).
    const running = [...this.running];
    const deaths = deathsOf(message);
    if (deaths > this.deliveryLimit) {
      const reason = `${REASON_KILLED_WORKERS}: ${deaths} workers died while this message was running alone on them`;
      return this.track(this.deadLetter(session, message, key, message.content, reason));
    }
    const serve = () => {
      if (deaths === 0) return this.run(session, message, key, replyTo, tasks);
      if (tasks.length > 1) return this.suspects.split(session, message, tasks, deaths);
      return this.suspects.isolate(session, running, message, () => this.run(session, message, key, replyTo, tasks));
    };
    if (this.leases.isLive(key)) return this.track(serve());
    this.track(
      this.leases.check(session, key, replyTo).then((open) => {
        if (open) return serve();
        this.dropped += tasks.length;
        if (!session.lost) session.channel.ack(message);
      }),
    );
  }

  /** Runs a batch (async operations concurrently), publishes its results, and acks once they are confirmed. */
  private async run(session: Session, message: ConsumeMessage, key: string, replyTo: string, tasks: Task[]): Promise<void> {
    const started = performance.now();
    const outcomes: (TaskResult | Promise<TaskResult>)[] = [];
    this.listenForStop(false);
    try {
      for (const task of tasks) outcomes.push(this.runtime.execute(task));
    } finally {
      if (!this.closing) this.listenForStop(true);
    }
    this.executed += tasks.length;
    const results = (outcomes.some((outcome) => outcome instanceof Promise) ? await Promise.all(outcomes) : (outcomes as TaskResult[])).map(checkOutput);
    const elapsed = performance.now() - started;
    if (session.lost) return; // the delivery is void; the broker delivers it again
    const confirms = [this.publisher.results(session, replyTo, key, results, elapsed)];
    const unknown = tasks.filter((_, i) => results[i]!.error?.name === 'UnknownOperationError');
    if (unknown.length > 0) {
      const names = [...new Set(unknown.map((task) => task.op))].map((op) => `'${op}'`).join(', ');
      const reason = `${REASON_UNKNOWN_OPERATION}: ${names} not registered on worker ${this.id}`;
      confirms.push(this.publisher.deadLetter(session, key, encodeTasks(unknown), reason));
    }
    try {
      await Promise.all(confirms);
      session.channel.ack(message);
    } catch {
      // Session lost before the confirm: the broker delivers the batch again.
    }
  }

  private async deadLetter(session: Session, message: ConsumeMessage, key: string, content: Buffer, reason: string, format?: number): Promise<void> {
    try {
      await this.publisher.deadLetter(session, key, content, reason, format);
      session.channel.ack(message);
    } catch {
      // Session lost: the message comes back and is judged again.
    }
  }

  private track(promise: Promise<void>): void {
    this.running.add(promise);
    void promise.finally(() => this.running.delete(promise));
  }
}
