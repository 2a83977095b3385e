// Where an AMQP worker runs its tasks: N worker threads of the thread
// backend (`Runtime.inMemory`'s machinery: its pool, dispatcher, stuck-thread
// replacement and cancellation). The worker's main thread keeps the broker
// connection, so heartbeats, acks and cancellations never wait behind a
// synchronous task.
//
// Design notes
// - A task message goes to a thread whole and undecoded, as one task of an
//   internal operation (on-thread.ts) under a lease of its own, and its
//   results come back encoded: the main thread spends nothing per task.
// - Cancellations reach the tasks' own signals through a BroadcastChannel
//   to the threads. A batch holding a cancelled task (or of a released
//   lease) is also cancelled on the thread backend, only for its grace: a
//   batch that has not answered `cancelGraceMs` later has its thread
//   terminated and replaced, and runs again elsewhere with its cancelled
//   tasks answering TaskCancelledError unrun. So its other tasks may run
//   twice (at least once, as a dead thread's tasks always did).
// - A batch the thread backend gives up on (its threads kept dying, or its
//   results are over the frame bound) is split into batches of one task,
//   so only the task to blame gets that failure; a batch of one answers it.
// - The worker's metrics come from what each batch says of its tasks (see
//   BatchTiming): a task's wait is from the message's hand-off to the
//   threads until it started, the batch's round trip on this thread's clock
//   less the time from its start to the batch's end.

import { BroadcastChannel } from 'node:worker_threads';
import { ThreadBackend } from '../../threads/thread-backend.ts';
import type { Lease } from '../../../core/backend.ts';
import type { Task, TaskFailure, TaskIdentity, TaskProgress, TaskResult } from '../../../core/task.ts';
import { taskId, type LeaseTaskId } from '../shared/messages.ts';
import { decodeResults, decodeTasks, encodeResults, encodeTasks } from '../shared/messages.ts';
import { BATCH_OPERATION, type BatchInput, type BatchOutput, type BatchTiming, type Cancellation, type Skip } from './on-thread.ts';
import { MetricsRecorder } from '../../../observability/metrics.ts';
import type { TraceCarrier } from '../../../observability/channels.ts';

export interface TaskThreadsOptions {
  threads: number;
  modules: readonly (string | URL)[];
  cancelGraceMs?: number | undefined;
  /** Task messages the worker holds at most (its prefetch). */
  messages: number;
}

/** A batch that ran: its result message's body, and what went with it. */
export interface BatchRun {
  readonly results: Buffer;
  /** Tasks that ran (not answered as cancelled unrun). */
  readonly ran: number;
  /** Tasks naming an operation the threads do not have, as a task message's body, and those names. */
  readonly unknown?: { readonly body: Buffer; readonly ops: readonly string[] };
}

/** A batch's end: it ran, its body was not a task batch (why), or its lease was released (undefined). */
export type BatchOutcome = BatchRun | { readonly malformed: string } | undefined;

/** The message's tasks cancelled before it started: `[index, stage, attempt, why]`. */
export type CancelledOf = () => readonly (readonly [number, number, number, string])[];

/** One task message running on the threads. */
interface Batch {
  readonly key: string;
  readonly body: Buffer;
  readonly tc: TraceCarrier | undefined;
  /** When it was handed to the threads (performance.now()). */
  readonly started: number;
  readonly lease: Lease;
  /** The index of its task on the lease: one more each time it is sent again. */
  sent: number;
  /** Its tasks' identities, decoded only when a cancellation must find the batches that hold a task. */
  ids: Set<LeaseTaskId> | undefined;
  done: boolean;
  readonly settle: (outcome: BatchOutcome) => void;
  readonly reject: (error: Error) => void;
}

const toBuffer = (bytes: Uint8Array) => (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));

export class TaskThreads {
  /** Running batches, by the key of their tasks (the AMQP lease key). */
  private readonly batches = new Map<string, Set<Batch>>();
  /** When the last batch's results were in (performance.now()). */
  private lastFinished = -Infinity;
  private readonly channelName = `weft.amqp.${process.pid}.${Math.random().toString(36).slice(2)}`;
  private readonly cancellations = new BroadcastChannel(this.channelName);
  /** Batches to hand to the threads once the current callbacks have run (see dispatch). */
  private outbox: Task[] = [];

  /**
   * What the threads ran, for `AmqpWorker.metrics()`: per operation, tasks
   * completed and failed, their run times, and their waits from the
   * message's hand-off to the threads to their start.
   */
  readonly metrics = new MetricsRecorder(true);

  /** Resolves with the error once the threads fail for good, running a batch or not. */
  readonly failed: Promise<Error>;

  /** Why the threads failed for good, once they have. */
  get failure(): Error | undefined {
    return this.backend.failure;
  }

  private constructor(private readonly backend: ThreadBackend) {
    this.failed = backend.failed;
    this.cancellations.unref();
  }

  /** Starts the threads; resolves once every one has imported the operations. */
  static async start(options: TaskThreadsOptions): Promise<TaskThreads> {
    const self = import.meta.url;
    const batches = new URL(self.endsWith('.ts') ? './on-thread.ts' : './on-thread.js', self);
    const backend = await ThreadBackend.start({
      workers: options.threads,
      modules: [...options.modules, batches],
      cancelGraceMs: options.cancelGraceMs,
      // Each thread may hold its share of the messages the worker holds, to
      // run one after another: the dispatcher's default (a few ms of work,
      // at least 2) would have it wait a round trip through the main
      // thread between two messages.
      minQueued: Math.ceil(options.messages / options.threads),
    });
    return new TaskThreads(backend);
  }

  /**
   * Runs the task message `body` of lease `key` on a thread. Resolves with
   * what it became (see BatchOutcome); rejects if the threads are closed or
   * fail for good. `tc`: the trace context of its headers. `graceMs`: its run's `cancelGraceMs`, if it set one (else
   * the worker's). `cancelledOf` is asked each time the batch is sent;
   * `progress` gets its tasks' progress details.
   */
  run(
    body: Buffer,
    key: string,
    tc: TraceCarrier | undefined,
    graceMs: number | undefined,
    cancelledOf: CancelledOf, progress: (updates: readonly TaskProgress[]) => void,
  ): Promise<BatchOutcome> {
    return new Promise((resolve, reject) => {
      const lease = this.backend.lease(
        {
          results: (results) => {
            for (const result of results) if (!batch.done && result.index === batch.sent) this.answered(batch, result, graceMs, cancelledOf, progress);
          },
          failed: (error) => {
            batch.done = true;
            this.forget(batch);
            reject(error);
          },
          progress: (updates) => progress(updates.flatMap((update) => progressOf(key, update.detail as unknown[]))),
        },
        { cancelGraceMs: graceMs },
      );
      const batch: Batch = { key, body, tc, started: performance.now(), lease, sent: 0, ids: undefined, done: false, settle: resolve, reject };
      let running = this.batches.get(key);
      if (running === undefined) this.batches.set(key, (running = new Set()));
      running.add(batch);
      this.send(batch, cancelledOf().map(([index, stage, attempt, why]) => [index, stage, attempt, `${why} (before it started)`]));
    });
  }

  /** Lease `key` was released: its running tasks are cancelled (`why`), and their batches resolve undefined. */
  release(key: string, why: string): void {
    // The thread backend cancels (and past the grace stops) only the batches it was given.
    this.dispatch();
    this.tell({ key, why });
    for (const batch of [...(this.batches.get(key) ?? [])]) {
      this.end(batch, why);
      batch.settle(undefined);
    }
  }

  /** One task is cancelled: its signal aborts, or its batch's thread is replaced after the grace; it still answers. */
  cancel(task: TaskIdentity, why: string): void {
    this.dispatch(); // as in release
    this.tell({ key: task.key, task: [task.index, task.stage, task.attempt], why });
    const id = taskId(task.index, task.stage, task.attempt);
    for (const batch of this.batches.get(task.key) ?? []) {
      batch.ids ??= new Set(decodeTasks(batch.body, batch.key).map((t) => taskId(t.index, t.stage, t.attempt)));
      if (batch.ids.has(id)) batch.lease.cancel?.({ key: batch.lease.key, index: batch.sent, stage: 0, attempt: 0 }, why);
    }
  }

  /**
   * The time a batch started at `started` took the threads, for `x-weft-ms`
   * (the orchestrator sizes messages from it): batches queue behind each
   * other on the threads, so its wall time would count the others' work
   * too, and the orchestrator would cut ever smaller messages. Since the
   * previous batch finished, the threads worked on this one (as the
   * channel-protocol Dispatcher times its workers).
   */
  workTime(started: number): number {
    const now = performance.now();
    const took = Math.min(now - started, now - this.lastFinished);
    this.lastFinished = now;
    return took;
  }

  /** Cancels the running tasks (their signals abort, as the thread backend's own tasks' do) and stops the threads. */
  async close(): Promise<void> {
    for (const key of this.batches.keys()) this.tell({ key, why: 'the runtime was closed' });
    await this.backend.close();
    this.cancellations.close();
  }

  private send(batch: Batch, skip: readonly Skip[]): void {
    const input: BatchInput =
      batch.tc === undefined ? { body: batch.body, key: batch.key, channel: this.channelName, skip } : { body: batch.body, key: batch.key, channel: this.channelName, skip, tc: batch.tc };
    this.outbox.push({ op: BATCH_OPERATION, input, key: batch.lease.key, index: batch.sent, stage: 0, attempt: 0 });
    if (this.outbox.length === 1) setImmediate(this.dispatch);
  }

  /**
   * The batches sent since the event loop's last turn began, to the threads
   * at once: a thread woken for each of them (a notify each, and on a busy
   * machine a wait for a core each) was most of a message's time on the
   * worker. Once the turn's I/O is handled, not as soon as a socket read's
   * callbacks have run: the deliveries of both connections' reads in one
   * turn go together (2.8-3.0 messages per hand-off rather than 2.4-2.8),
   * and the woken thread, which on a busy machine takes this thread's core,
   * finds it about to sleep rather than with acks and results still to
   * write (the notify held this thread 0.3 ms on average rather than
   * 0.3-0.9 ms).
   */
  private readonly dispatch = (): void => {
    if (this.outbox.length === 0) return;
    const tasks = this.outbox;
    this.outbox = [];
    this.backend.dispatch(tasks);
  };

  private tell(cancellation: Cancellation): void {
    this.cancellations.postMessage(cancellation);
  }

  private answered(batch: Batch, result: TaskResult, graceMs: number | undefined, cancelledOf: CancelledOf, progress: (updates: readonly TaskProgress[]) => void): void {
    const error = result.error;
    if (error === undefined) {
      this.end(batch, 'its results are in');
      const output = result.output as BatchOutput;
      if ('timing' in output) this.record(output.timing, performance.now() - batch.started, result.w);
      batch.settle(outcomeOf(output));
      return;
    }
    if (error.name === 'TaskCancelledError') {
      // Cancelled for one of its tasks before it ran, or its thread was
      // terminated past the grace: again, its cancelled tasks unrun.
      batch.sent++;
      return this.send(batch, cancelledOf().map(([index, stage, attempt]) => [index, stage, attempt, error.message]));
    }
    this.end(batch, 'it is split');
    const tasks = decodeTasks(batch.body, batch.key);
    if (tasks.length <= 1) {
      for (const task of tasks) this.metrics.operation(task.op).failed++;
      batch.settle({ results: encodeResults(tasks.map((task) => failure(task, error))), ran: tasks.length });
      return;
    }
    const parts = tasks.map((task) => this.run(encodeTasks([task]), batch.key, batch.tc, graceMs, cancelledOf, progress));
    Promise.all(parts).then((outcomes) => batch.settle(merged(outcomes, batch.key)), batch.reject);
  }

  /** A batch's tasks into the metrics: it came back `roundTripMs` after its hand-off, from thread `worker`. */
  private record(timing: BatchTiming, roundTripMs: number, worker: number | undefined): void {
    const records = timing.ops.map((op) => this.metrics.operation(op));
    const { tasks } = timing;
    for (let i = 0; i + 2 < tasks.length; i += 3) {
      const record = records[tasks[i]!]!;
      const us = tasks[i + 1]!;
      if (us < 0) {
        record.failed++;
        continue;
      }
      record.completed++;
      // From its start to the batch's end is not waiting: the rest of the round trip is.
      this.metrics.timed(record, roundTripMs - (tasks[i + 2]! - us) / 1000, us, worker);
    }
  }

  private end(batch: Batch, why: string): void {
    batch.done = true;
    batch.lease.release(why);
    this.forget(batch);
  }

  private forget(batch: Batch): void {
    const running = this.batches.get(batch.key);
    running?.delete(batch);
    if (running?.size === 0) this.batches.delete(batch.key);
  }
}

const failure = (task: TaskIdentity, error: TaskFailure): TaskResult => ({ key: task.key, index: task.index, stage: task.stage, attempt: task.attempt, error });

function outcomeOf(output: BatchOutput): BatchOutcome {
  if ('malformed' in output) return output;
  const { results, ran, unknown } = output;
  return unknown === undefined ? { results: toBuffer(results), ran } : { results: toBuffer(results), ran, unknown: { body: toBuffer(unknown.body), ops: unknown.ops } };
}

/** The batches of one task each that a batch was split into, as one. */
function merged(outcomes: readonly BatchOutcome[], key: string): BatchOutcome {
  const results: TaskResult[] = [];
  const unknown = [];
  let ran = 0;
  for (const outcome of outcomes) {
    if (outcome === undefined || 'malformed' in outcome) return outcome;
    results.push(...decodeResults(outcome.results, key));
    if (outcome.unknown !== undefined) unknown.push(...decodeTasks(outcome.unknown.body, key));
    ran += outcome.ran;
  }
  const encoded = encodeResults(results);
  if (unknown.length === 0) return { results: encoded, ran };
  return { results: encoded, ran, unknown: { body: encodeTasks(unknown), ops: [...new Set(unknown.map((task) => task.op))] } };
}

/** A batch's progress detail, `[index, stage, attempt, detail, …]`, as its tasks' details. */
function progressOf(key: string, flat: readonly unknown[]): TaskProgress[] {
  const updates: TaskProgress[] = [];
  for (let i = 0; i + 3 < flat.length; i += 4) updates.push({ key, index: flat[i] as number, stage: flat[i + 1] as number, attempt: flat[i + 2] as number, detail: flat[i + 3] });
  return updates;
}
