// The worker's side of the AMQP backend: one competing consumer of the task
// queue that runs each batch on its worker threads (threads.ts) and
// publishes its results to the queue named by the batch's `replyTo`.
// `weft worker --amqp` runs one.
//
// Design notes
// - A task message is acked only once its results are confirmed by the
//   broker. A worker that dies (or loses the broker) before then leaves the
//   message unacked, and the broker delivers it again, to another worker if
//   there is one; a quorum queue counts those deliveries and dead-letters the
//   message past `deliveryLimit`. Redelivered messages are suspects
//   (consumer.ts).
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
import type { Task } from '../../../core/task.ts';
import { ReconnectingConnection, redact, type Session } from '../shared/connection.ts';
import { MalformedMessageError } from '../shared/errors.ts';
import {
  checkFormat,
  decodeCancel,
  decodeTasks,
  HEADER_COUNT,
  HEADER_FORMAT,
  HEADER_KEY,
  HEADER_WHY,
  graceOf,
  headerNumber,
  headerString,
  traceContextOf,
  REASON_KILLED_WORKERS,
  REASON_UNDECODABLE,
  REASON_UNKNOWN_OPERATION,
  TYPE_CANCEL,
  TYPE_RELEASE,
} from '../shared/messages.ts';
import { checkWorkerOptions, MIN_PREFETCH, PREFETCH_PER_THREAD, type AmqpWorkerOptions, type AmqpWorkerStats } from '../shared/options.ts';
import { assertShared, DEFAULT_DELIVERY_LIMIT, namesOf, type Names } from '../shared/topology.ts';
import { deathsOf, SETTLE_MS, Suspects, TaskConsumer } from './consumer.ts';
import { WorkerLifetime } from './lifetime.ts';
import { ProgressRelay, WorkerPublisher } from './publisher.ts';
import { TaskThreads } from './threads.ts';
import { Withdrawn } from './withdrawn.ts';
import type { RuntimeMetrics } from '../../../observability/metrics.ts';

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
    this.consumer = new TaskConsumer(this.names.taskQueue, (session, message) => this.onTask(session, message), () => this.lifetime.closing);
    this.publisher = new WorkerPublisher(this.names, this.id, log);
    this.progress = new ProgressRelay(this.publisher);
    this.suspects = new Suspects(this.consumer, this.publisher);
  }

  /** Starts the threads (each imports the operations), connects (retrying with backoff) and starts consuming tasks. */
  static async start(options: AmqpWorkerOptions): Promise<AmqpWorker> {
    checkWorkerOptions(options);
    const operations = options.operations;
    const modules = Array.isArray(operations) ? operations : [operations as string | URL];
    const count = options.threads ?? availableParallelism();
    const threads = await TaskThreads.start({ threads: count, modules, cancelGraceMs: options.cancelGraceMs, messages: prefetchOf(options, count) });
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
    await channel.prefetch(prefetchOf(this.options, this.options.threads ?? availableParallelism()));
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
      this.dropped += countOf(message);
      session.channel.ack(message);
      return;
    }
    const replyTo = message.properties.replyTo as unknown;
    const deaths = deathsOf(message);
    // Decoded here only when redelivered (the suspects' rules need its
    // tasks) or of a lease not yet seen alive (so that a poison message is
    // dead-lettered, not dropped as of a released lease): a few messages per
    // lease. Else only on the thread that runs it.
    let tasks: Task[] | undefined;
    let graceMs: number | undefined;
    try {
      checkFormat(headerNumber(headers, HEADER_FORMAT));
      if (typeof replyTo !== 'string' || replyTo === '') throw new MalformedMessageError('no reply-to queue');
      graceMs = graceOf(headers);
      if (deaths > 0 || !this.withdrawn.isLive(key)) tasks = decodeTasks(message.content, key);
    } catch (error) {
      return this.undecodable(session, message, key, (error as Error).message);
    }
    // Batches that started before this message (not the tracked promise that will serve it).
    const running = [...this.running];
    if (deaths > this.deliveryLimit) {
      const reason = `${REASON_KILLED_WORKERS}: ${deaths} workers died while this message was running alone on them`;
      return this.track(this.publisher.deadLetterAndAck(session, message, key, message.content, reason));
    }
    const serve = () => {
      if (deaths === 0 || tasks === undefined) return this.run(session, message, key, replyTo, graceMs);
      this.options.log?.(`redelivered: a message of ${key} (${deaths} worker deaths), ${tasks.length > 1 ? 'split into one message per task' : 'run alone'}`);
      if (tasks.length > 1) return this.suspects.split(session, message, tasks, deaths);
      return this.suspects.isolate(session, running, message, () => this.run(session, message, key, replyTo, graceMs));
    };
    if (this.withdrawn.isLive(key)) return this.track(serve());
    this.track(
      this.withdrawn.check(session, key, replyTo).then((open) => {
        if (open) return serve();
        this.dropped += countOf(message);
        if (!session.lost) session.channel.ack(message);
      }),
    );
  }

  /** A message whose body or headers are not weft's goes to the dead letters, acked once it is there. */
  private undecodable(session: Session, message: ConsumeMessage, key: string, why: string): void {
    const reason = `${REASON_UNDECODABLE}: ${why}`;
    this.track(this.publisher.deadLetterAndAck(session, message, key, message.content, reason, headerNumber(message.properties.headers, HEADER_FORMAT)));
  }

  /**
   * Runs a batch on the threads (its tasks cancelled before it came answer
   * at once), publishes its results, and acks once they are confirmed. A
   * batch whose lease is released meanwhile is acked unanswered.
   */
  private async run(session: Session, message: ConsumeMessage, key: string, replyTo: string, graceMs: number | undefined): Promise<void> {
    const started = performance.now();
    let outcome;
    try {
      outcome = await this.threads.run(
        message.content,
        key,
        traceContextOf(message.properties.headers),
        graceMs,
        () => this.withdrawn.cancelledOf(key),
        (updates) => this.progress.add(session, replyTo, key, updates),
      );
    } catch (error) {
      // The threads were closed, or failed for good (no thread could be
      // replaced): nothing more can run here. The message stays unacked and
      // goes back to the broker as this worker closes.
      this.failedThreads(error as Error);
      return;
    }
    if (outcome !== undefined && 'malformed' in outcome) return this.undecodable(session, message, key, outcome.malformed);
    if (session.lost) return; // the delivery is void; the broker delivers it again
    if (outcome === undefined) {
      this.dropped += countOf(message);
      session.channel.ack(message);
      return;
    }
    this.executed += outcome.ran;
    this.progress.flush(replyTo);
    const confirms = [this.publisher.results(session, replyTo, key, outcome.results, this.threads.workTime(started))];
    if (outcome.unknown !== undefined) {
      const names = outcome.unknown.ops.map((op) => `'${op}'`).join(', ');
      const reason = `${REASON_UNKNOWN_OPERATION}: ${names} not registered on worker ${this.id}`;
      confirms.push(this.publisher.deadLetter(session, key, outcome.unknown.body, reason));
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

/** Task messages the broker hands the worker before it acks: 4 per thread and at least 8 unless set. */
const prefetchOf = (options: AmqpWorkerOptions, threads: number) => options.prefetch ?? Math.max(MIN_PREFETCH, PREFETCH_PER_THREAD * threads);

/** The tasks a message says it holds. */
const countOf = (message: ConsumeMessage) => headerNumber(message.properties.headers, HEADER_COUNT) ?? 0;
