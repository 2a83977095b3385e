// The worker's side of the AMQP backend: one competing consumer of the task
// queue that runs each batch on its worker threads (task-threads.ts) and
// publishes its results to the queue named by the batch's `replyTo`.
// `weft worker --amqp` runs one.
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
// - Task messages of released leases are acked unread; a release also
//   cancels that lease's running tasks here, and a cancellation of one task
//   (its timeout passed) cancels it where it runs (withdrawn.ts). Both come
//   on the control fanout, which this worker's main thread reads at once:
//   tasks run on threads, so no task holds it up.

import { availableParallelism, hostname } from 'node:os';
import type { ConsumeMessage } from 'amqplib';
import { TaskCancelledError } from '../../core/errors.ts';
import { failed, type Task, type TaskResult } from '../../core/task.ts';
import { ReconnectingConnection, redact, type Session } from './connection.ts';
import { MalformedMessageError } from './errors.ts';
import {
  checkFormat,
  decodeCancel,
  decodeTasks,
  encodeTasks,
  HEADER_COUNT,
  HEADER_FORMAT,
  HEADER_KEY,
  HEADER_WHY,
  graceOf,
  headerNumber,
  headerString,
  withTraceContext,
  REASON_KILLED_WORKERS,
  REASON_UNDECODABLE,
  REASON_UNKNOWN_OPERATION,
  TYPE_CANCEL,
  TYPE_RELEASE,
} from './messages.ts';
import { checkWorkerOptions, MIN_PREFETCH, PREFETCH_PER_THREAD, type AmqpWorkerOptions, type AmqpWorkerStats } from './options.ts';
import { ProgressRelay } from './progress-relay.ts';
import { deathsOf, SETTLE_MS, Suspects } from './suspects.ts';
import { TaskConsumer } from './task-consumer.ts';
import { TaskThreads } from './task-threads.ts';
import { assertShared, DEFAULT_DELIVERY_LIMIT, namesOf, type Names } from './topology.ts';
import { Withdrawn } from './withdrawn.ts';
import { WorkerLifetime } from './worker-lifetime.ts';
import { WorkerPublisher } from './worker-publisher.ts';
import type { RuntimeMetrics } from '../../observability/metrics.ts';

export class AmqpWorker {
  readonly id = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  private readonly names: Names;
  private readonly deliveryLimit: number;
  private readonly connection: ReconnectingConnection;
  private readonly consumer: TaskConsumer;
  private readonly publisher: WorkerPublisher;
  private readonly suspects: Suspects;
  private readonly progress: ProgressRelay;
  private readonly withdrawn = new Withdrawn();
  private readonly lifetime = new WorkerLifetime(() => this.shutdown());
  /** Messages being served, from delivery to ack. */
  private readonly running = new Set<Promise<void>>();
  private executed = 0;
  private dropped = 0;

  private constructor(
    private readonly threads: TaskThreads,
    private readonly options: AmqpWorkerOptions,
  ) {
    this.names = namesOf(options.prefix);
    // Also when no batch runs to see it (a thread stopped past its grace, and its replacement failed).
    void threads.failed.then((error) => this.failedThreads(error));
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
    this.progress = new ProgressRelay(this.publisher);
    this.suspects = new Suspects(this.names, this.connection, this.consumer, this.publisher, () => this.lifetime.closing);
  }

  /** Starts the threads (each imports the operations), connects (retrying with backoff) and starts consuming tasks. */
  static async start(options: AmqpWorkerOptions): Promise<AmqpWorker> {
    checkWorkerOptions(options);
    const operations = options.operations;
    const modules = Array.isArray(operations) ? operations : [operations as string | URL];
    const threads = await TaskThreads.start({
      threads: options.threads ?? availableParallelism(),
      modules,
      cancelGraceMs: options.cancelGraceMs,
    });
    try {
      const worker = new AmqpWorker(threads, options);
      await worker.connection.open(options.connectTimeoutMs);
      return worker;
    } catch (error) {
      await threads.close();
      // Threads that failed while it connected closed the worker: that, not the closed connection, is why.
      throw threads.failure ?? error;
    }
  }

  stats(): AmqpWorkerStats {
    return { executed: this.executed, dropped: this.dropped, deadLettered: this.publisher.deadLettered };
  }

  /** What this worker's threads ran, as `Runtime.metrics()` reports it (`prometheusText` renders it). */
  metrics(): RuntimeMetrics {
    return this.threads.metrics.snapshot();
  }

  /**
   * Closes on the first of `signals` (as `weft worker` does for SIGINT and
   * SIGTERM) and resolves once closed, by a signal or by close(). Tasks run
   * on threads, so the signal is handled at once even while a task spins.
   * Rejects, once closed, if the worker stopped on its own because its
   * threads failed for good (a dead thread could not be replaced): its
   * unacked tasks went back to the broker.
   */
  closeOnSignals(signals: readonly NodeJS.Signals[]): Promise<void> {
    return this.lifetime.closeOnSignals(signals);
  }

  /**
   * Stops taking tasks, lets running batches finish and ack (a few seconds
   * at most), disconnects (what is unacked goes back to the broker), and
   * stops the threads.
   */
  close(): Promise<void> {
    return this.lifetime.stop(undefined);
  }

  /** The threads failed for good: nothing more can run here, so the worker closes, failed. */
  private failedThreads(error: Error): void {
    if (this.lifetime.closing) return;
    this.options.log?.(`the worker threads failed: ${error.message}; closing`);
    void this.lifetime.stop(error);
  }

  private async shutdown(): Promise<void> {
    const session = this.connection.session;
    if (session !== undefined) await this.consumer.stop(session).catch(() => {});
    await Promise.race([Promise.allSettled([...this.running]), new Promise((resolve) => setTimeout(resolve, SETTLE_MS).unref())]);
    this.progress.clear();
    await this.connection.close();
    await this.threads.close();
  }

  private async setup(session: Session): Promise<void> {
    const { channel } = session;
    await assertShared(channel, this.names, this.deliveryLimit);
    // Control first, so a release published while we subscribe is not missed
    // for tasks we are about to receive.
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    await channel.bindQueue(queue, this.names.controlExchange, '');
    await channel.consume(queue, (message) => this.onControl(message), { noAck: true });
    await channel.prefetch(this.options.prefetch ?? Math.max(MIN_PREFETCH, PREFETCH_PER_THREAD * (this.options.threads ?? availableParallelism())));
    if (this.lifetime.closing) return;
    await this.consumer.start(session);
  }

  /** A release or a cancellation: the tasks it names stop here, running or not yet delivered. */
  private onControl(message: ConsumeMessage | null): void {
    if (message === null) return;
    const { type, headers } = message.properties;
    const key = headerString(headers, HEADER_KEY);
    if (key === undefined) return;
    const why = headerString(headers, HEADER_WHY) ?? 'its directive ended';
    if (type === TYPE_RELEASE) {
      this.withdrawn.release(key);
      this.threads.release(key, why);
      return;
    }
    if (type !== TYPE_CANCEL) return;
    let task;
    try {
      task = decodeCancel(message.content);
    } catch {
      return; // not ours to act on: the orchestrator that sent it retries only on an answer, which this task will still give
    }
    const [index, stage, attempt] = task;
    this.withdrawn.cancel({ key, index, stage, attempt }, why);
    this.threads.cancel({ key, index, stage, attempt }, why);
  }

  private onTask(session: Session, message: ConsumeMessage | null): void {
    if (message === null) {
      // The broker cancelled us (the task queue was deleted): start over,
      // which declares it again.
      if (!this.lifetime.closing) void session.connection.close().catch(() => {});
      return;
    }
    if (this.suspects.hold(session, message)) return;
    const headers = message.properties.headers;
    const key = headerString(headers, HEADER_KEY) ?? message.fields.routingKey;
    if (this.withdrawn.isReleased(key)) {
      this.dropped += headerNumber(headers, HEADER_COUNT) ?? 0;
      session.channel.ack(message);
      return;
    }
    const replyTo = message.properties.replyTo as unknown;
    let tasks: Task[];
    let graceMs: number | undefined;
    try {
      checkFormat(headerNumber(headers, HEADER_FORMAT));
      if (typeof replyTo !== 'string' || replyTo === '') throw new MalformedMessageError('no reply-to queue');
      graceMs = graceOf(headers);
      tasks = withTraceContext(decodeTasks(message.content, key), headers);
    } catch (error) {
      const reason = `${REASON_UNDECODABLE}: ${(error as Error).message}`;
      this.track(this.publisher.deadLetterAndAck(session, message, key, message.content, reason, headerNumber(headers, HEADER_FORMAT)));
      return;
    }
    // Batches that started before this message (not the tracked promise that will serve it).
    const running = [...this.running];
    const deaths = deathsOf(message);
    if (deaths > this.deliveryLimit) {
      const reason = `${REASON_KILLED_WORKERS}: ${deaths} workers died while this message was running alone on them`;
      return this.track(this.publisher.deadLetterAndAck(session, message, key, message.content, reason));
    }
    const serve = () => {
      if (deaths === 0) return this.run(session, message, key, replyTo, tasks, graceMs);
      if (tasks.length > 1) return this.suspects.split(session, message, tasks, deaths);
      return this.suspects.isolate(session, running, message, () => this.run(session, message, key, replyTo, tasks, graceMs));
    };
    if (this.withdrawn.isLive(key)) return this.track(serve());
    this.track(
      this.withdrawn.check(session, key, replyTo).then((open) => {
        if (open) return serve();
        this.dropped += tasks.length;
        if (!session.lost) session.channel.ack(message);
      }),
    );
  }

  /**
   * Runs a batch on the threads (tasks cancelled before it came answer at
   * once), publishes its results, and acks once they are confirmed. A batch
   * whose lease is released meanwhile is acked unanswered.
   */
  private async run(session: Session, message: ConsumeMessage, key: string, replyTo: string, tasks: Task[], graceMs: number | undefined): Promise<void> {
    const started = performance.now();
    const cancelled = new Map<Task, TaskResult>();
    for (const task of tasks) {
      const why = this.withdrawn.whyCancelled(task);
      if (why !== undefined) cancelled.set(task, failed(task, new TaskCancelledError(`${why} (before it started)`)));
    }
    const runnable = cancelled.size === 0 ? tasks : tasks.filter((task) => !cancelled.has(task));
    let ran: TaskResult[] | undefined;
    try {
      ran = await this.threads.run(runnable, graceMs, (updates) => this.progress.add(session, replyTo, key, updates));
    } catch (error) {
      // The threads were closed, or failed for good (no thread could be
      // replaced): nothing more can run here. The message stays unacked and
      // goes back to the broker as this worker closes.
      this.failedThreads(error as Error);
      return;
    }
    this.executed += runnable.length;
    if (session.lost) return; // the delivery is void; the broker delivers it again
    if (ran === undefined) {
      this.dropped += runnable.length;
      session.channel.ack(message);
      return;
    }
    let next = 0;
    const results = cancelled.size === 0 ? ran : tasks.map((task) => cancelled.get(task) ?? ran[next++]!);
    this.progress.flush(replyTo);
    const confirms = [this.publisher.results(session, replyTo, key, results, this.threads.workTime(started))];
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

  private track(promise: Promise<void>): void {
    this.running.add(promise);
    void promise.finally(() => this.running.delete(promise));
  }
}

