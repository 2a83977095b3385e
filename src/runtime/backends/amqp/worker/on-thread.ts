// A task message on a worker thread: the AMQP worker's main thread hands the
// body over undecoded, as the input of one internal operation, and gets its
// results back encoded, ready to publish. Each message crosses between the
// threads once each way, however many tasks it holds; decoding, running
// and encoding all happen here, off the thread that keeps the broker
// connection. Every worker thread imports this module beside the user's
// operations (threads.ts).
//
// Design notes
// - The batch runs under the thread backend as one task, so a stuck thread
//   is terminated and replaced, and a dead one's batch runs again, as for
//   any task (threads.ts decides what a batch that did not answer
//   becomes).
// - Its tasks run each with their own context, on an Executor of the batch:
//   a cancellation (a released lease, a timed-out task) comes on a
//   BroadcastChannel of the worker and aborts the signal of the tasks it
//   names, not the batch's. Cancellations that arrive before a task starts
//   are remembered (a bounded number), and that task answers
//   TaskCancelledError without running.
// - Async operations of a batch overlap, at most DEFAULT_CONCURRENCY at once
//   (the bound a thread has for them).
// - Each task is timed (its `us` travels in the result message), and the
//   batch tells the main thread, per task, its operation, its run time and
//   how long before the batch's end it started, for the worker's metrics:
//   its wait is then the main thread's round trip less that, on one clock.
// - Its tasks are published as `weft:task` batches here, under the trace
//   context of the message's headers; the batch itself is not one. Its
//   result leaves the thread as soon as it returns (batchOperations).
// - Progress details of its tasks (each throttled by its own context) are
//   gathered and leave as one detail of the batch per PROGRESS_INTERVAL_MS,
//   a little over it so the batch's own context never holds one back.

import { BroadcastChannel } from 'node:worker_threads';
import { DEFAULT_CONCURRENCY } from '../../../channel-protocol/dispatcher.ts';
import { PROGRESS_INTERVAL_MS, type TaskContext } from '../../../core/context.ts';
import { refusal } from '../../../../allocator/internal.ts';
import { OutputError, TaskCancelledError } from '../../../core/errors.ts';
import { Executor } from '../../../core/executor.ts';
import { batchOperations, defineOperation } from '../../../core/registry.ts';
import { failed, type CancelScope, type Task, type TaskResult } from '../../../core/task.ts';
import { TaskBatches, taskChannel, workerIndex, type TraceCarrier } from '../../../observability/channels.ts';
import { taskId, type LeaseTaskId } from '../shared/messages.ts';
import { decodeTasks, encodeResults, encodeTasks } from '../shared/messages.ts';

export const BATCH_OPERATION = 'weft.amqp.batch';

/** A task the batch must not run, with the message of the TaskCancelledError it answers instead. */
export type Skip = readonly [index: number, stage: number, attempt: number, message: string];

export interface BatchInput {
  readonly body: Uint8Array;
  /** The lease key of the message's tasks. */
  readonly key: string;
  /** The name of the worker's BroadcastChannel of cancellations (see Cancellation). */
  readonly channel: string;
  readonly skip: readonly Skip[];
  /** The directive's trace context, from the message's headers. */
  readonly tc?: TraceCarrier;
}

/**
 * How a batch's tasks went, for the worker's metrics: `ops` the operations
 * named, and per task `[op, us, untilEndUs]`: its index in `ops`, its run
 * time in µs (-1 where it failed), and the µs from its start to the
 * batch's end (0 where it failed). A typed array, not an array of numbers:
 * the main thread copies it rather than decoding three numbers per task
 * (for 256 tiny tasks, 10 µs of its time rather than 60, and as much
 * again saved here encoding it).
 */
export interface BatchTiming {
  readonly ops: readonly string[];
  readonly tasks: Float64Array;
}

export type BatchOutput =
  | {
      /** The results, encoded as a result message's body. */
      readonly results: Uint8Array;
      /** Tasks that ran (not skipped). */
      readonly ran: number;
      /** Tasks naming an operation this thread does not have, encoded as a task message's body, and those names. */
      readonly unknown?: { readonly body: Uint8Array; readonly ops: readonly string[] };
      readonly timing: BatchTiming;
    }
  | { readonly malformed: string };

/** What the main thread broadcasts to its threads: every task of `key`, or one of them (`task`). */
export interface Cancellation {
  readonly key: string;
  readonly task?: readonly [index: number, stage: number, attempt: number];
  readonly why: string;
}

const MAX_REMEMBERED = 10_000;
/** Executors of the batches running on this thread. */
const running = new Set<Executor>();
/** Cancellations received, for tasks that had not started: by key, and by key and task. */
const releasedKeys = new Map<string, string>();
const cancelledTasks = new Map<string, Map<LeaseTaskId, string>>();
let listening: BroadcastChannel | undefined;

function listen(name: string): void {
  if (listening !== undefined) return;
  listening = new BroadcastChannel(name);
  // The thread's life is the thread backend's to decide, not this listener's.
  listening.unref();
  listening.onmessage = (event) => cancel((event as { data: Cancellation }).data);
}

function cancel(message: Cancellation): void {
  const scope: CancelScope = message;
  for (const executor of running) executor.cancel(scope);
  if (message.task === undefined) return remember(releasedKeys, message.key, message.why);
  let tasks = cancelledTasks.get(message.key);
  if (tasks === undefined) remember(cancelledTasks, message.key, (tasks = new Map()));
  const [index, stage, attempt] = message.task;
  remember(tasks, taskId(index, stage, attempt), message.why);
}

function remember<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.set(key, value);
  if (map.size > MAX_REMEMBERED) map.delete(map.keys().next().value!);
}

/** Why `task` must not start, if it is skipped or a cancellation named it before it did. */
function withdrawn(task: Task, skip: ReadonlyMap<LeaseTaskId, string> | undefined): string | undefined {
  if (skip === undefined && releasedKeys.size === 0 && cancelledTasks.size === 0) return undefined;
  const id = taskId(task.index, task.stage, task.attempt);
  const skipped = skip?.get(id);
  if (skipped !== undefined) return skipped;
  const why = releasedKeys.get(task.key) ?? cancelledTasks.get(task.key)?.get(id);
  return why === undefined ? undefined : `${why} (before it started)`;
}

/** The batch's progress details, one message of them per interval. */
class ProgressOut {
  private readonly held = new Map<LeaseTaskId, [number, number, number, unknown]>();
  private sentAt = -Infinity;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly context: TaskContext) {}

  add(task: Task, detail: unknown): void {
    const id = taskId(task.index, task.stage, task.attempt);
    this.held.delete(id);
    this.held.set(id, [task.index, task.stage, task.attempt, detail]);
    const wait = PROGRESS_INTERVAL_MS + 1 - (performance.now() - this.sentAt);
    if (wait <= 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), wait);
  }

  /** Sends what is held: also before the batch's result, so no detail arrives after it. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.held.size === 0) return;
    const flat = [...this.held.values()].flat();
    this.held.clear();
    this.sentAt = performance.now();
    this.context.progress(flat);
  }
}

function runBatch(input: BatchInput, context: TaskContext): BatchOutput | Promise<BatchOutput> {
  listen(input.channel);
  let tasks: Task[];
  try {
    tasks = decodeTasks(input.body, input.key);
  } catch (error) {
    return { malformed: (error as Error).message };
  }
  const progress = new ProgressOut(context);
  const executor = new Executor((task, detail) => progress.add(task, detail), workerIndex());
  const batches = taskChannel.hasSubscribers ? new TaskBatches(workerIndex()) : undefined;
  const tc = input.tc;
  const skip = input.skip.length === 0 ? undefined : new Map(input.skip.map(([index, stage, attempt, message]) => [taskId(index, stage, attempt), message]));
  const results = new Array<TaskResult>(tasks.length);
  const started = new Float64Array(tasks.length);
  let ran = 0;
  const finish = (): BatchOutput => {
    const end = performance.now();
    running.delete(executor);
    progress.flush();
    return outputOf(tasks, results, ran, started, end);
  };
  running.add(executor);
  /**
   * When the next task starts, if it follows a synchronous one: tasks run
   * back to back are timed from the previous one's return, one clock
   * reading per task rather than two (as the thread backend's loop does).
   */
  let clock: number | undefined;
  /** Runs task `i`: its result, or once it settles. */
  const step = (i: number): void => {
    ran++;
    const at = (started[i] = clock ?? performance.now());
    const outcome = executor.execute(tasks[i]!, at);
    batches?.after(outcome);
    if (!(outcome instanceof Promise)) {
      results[i] = outcome;
      clock = executor.returnedAt;
      return;
    }
    clock = undefined;
    parked++;
    void outcome.then((result) => {
      results[i] = result;
      parked--;
      wake?.();
    });
  };
  /** Runs tasks from `next` on; a promise from the first async one that finds DEFAULT_CONCURRENCY others in flight. */
  let next = 0;
  let parked = 0;
  let wake: (() => void) | undefined;
  const advance = (): boolean => {
    clock = undefined;
    for (; next < tasks.length; next++) {
      if (parked >= DEFAULT_CONCURRENCY) {
        batches?.end();
        return false;
      }
      const i = next;
      const task = tasks[i]!;
      const why = withdrawn(task, skip);
      if (why !== undefined) {
        results[i] = failed(task, new TaskCancelledError(why));
        continue;
      }
      if (batches === undefined) {
        step(i);
        continue;
      }
      batches.before(tc === undefined ? task : { ...task, tc });
      // The batch's next tasks run inside the same call of its wrap (one
      // context entered, about 1 µs on Node 24, not one per task); a
      // withdrawn one, or no room, leaves them to the loop.
      batches.run(() => {
        step(i);
        for (let after = tasks[next + 1]; after !== undefined && parked < DEFAULT_CONCURRENCY && batches.continues(after) && withdrawn(after, skip) === undefined; after = tasks[next + 1]) {
          batches.before(after);
          step(++next);
        }
      });
    }
    batches?.end();
    return true;
  };
  if (advance() && parked === 0) return finish();
  return new Promise<BatchOutput>((resolve) => {
    wake = () => {
      if (advance() && parked === 0) resolve(finish());
    };
  });
}

function timingOf(tasks: readonly Task[], results: readonly TaskResult[], started: Float64Array, end: number): BatchTiming {
  const ops: string[] = [];
  const opIndex = new Map<string, number>();
  const timed = new Float64Array(tasks.length * 3);
  for (let i = 0; i < tasks.length; i++) {
    const op = tasks[i]!.op;
    let n = opIndex.get(op);
    if (n === undefined) opIndex.set(op, (n = ops.push(op) - 1));
    const us = results[i]!.error === undefined ? results[i]!.us : undefined;
    timed[3 * i] = n;
    timed[3 * i + 1] = us ?? -1;
    timed[3 * i + 2] = us === undefined ? 0 : Math.round((end - started[i]!) * 1000);
  }
  return { ops, tasks: timed };
}

/** `results` (an output that cannot be encoded becomes its task's failure) as the batch's output; `started`, `end`: when its tasks started and it ended. */
function outputOf(tasks: readonly Task[], results: TaskResult[], ran: number, started: Float64Array, end: number): BatchOutput {
  for (let i = 0; i < results.length; i++) {
    const result = results[i]!;
    const refused = result.error === undefined ? refusal(result.output) : undefined;
    if (refused !== undefined) results[i] = failed(result, new OutputError(`the output cannot be encoded: ${refused.message}`, { cause: refused }));
  }
  const unknown = tasks.filter((_, i) => results[i]!.error?.name === 'UnknownOperationError');
  const encoded = encodeResults(results);
  const timing = timingOf(tasks, results, started, end);
  if (unknown.length === 0) return { results: encoded, ran, timing };
  return { results: encoded, ran, timing, unknown: { body: encodeTasks(unknown), ops: [...new Set(unknown.map((task) => task.op))] } };
}

defineOperation(BATCH_OPERATION, runBatch);
batchOperations.add(BATCH_OPERATION);
