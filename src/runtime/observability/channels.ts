// weft's diagnostics_channel names: what an APM or `weft/otel` subscribes to
// without patching. Each is published only when it has subscribers, so
// without any the cost is one boolean read per directive (or task batch).

import type { Task } from '../core/task.ts';
import { Recent } from '../core/recent.ts';

// As Node holds it, not `import from`: every thread that imports weft loads
// this file, and an ES module of a builtin costs each its start-up.
const diagnostics = process.getBuiltinModule('node:diagnostics_channel');

/**
 * W3C trace context (`traceparent`, `tracestate`) or any other propagator's
 * fields: set by a `weft:directive` subscriber on `start`, carried with
 * every task of the directive, and handed to `weft:task` subscribers on the
 * worker.
 */
export type TraceCarrier = Record<string, string>;

/** The context object of `weft:directive`: one directive, from `run()` (or a stream's first `next()`) to its outcome. */
export interface DirectiveMessage {
  /** The operations of its chain, in order (empty for a bare fold). */
  readonly operations: readonly string[];
  /** The fold's monoid, if it folds. */
  readonly fold: string | undefined;
  /** Where its tasks run: 'local', 'threads', 'cluster', 'amqp' (or 'custom'). */
  readonly backend: string;
  /** Tasks dispatched so far, retries included: final by `asyncEnd` or `error`. */
  tasks: number;
  /** Set on `start` to carry trace context with the directive's tasks. */
  traceContext?: TraceCarrier;
  /** The outcome, as `tracePromise` sets them. */
  result?: unknown;
  error?: unknown;
}

/**
 * The context object of `weft:task`: consecutive tasks of one operation and
 * one directive run by one worker (a batch). `start` comes before the
 * first, `end` after the last returns; when some were async (`async` is
 * true), `asyncStart` and `asyncEnd` come once all have settled.
 */
export interface TaskBatchMessage {
  readonly operation: string;
  /** The index of the worker that runs it (see `WorkerMetrics.worker`). */
  readonly worker: number;
  /** The trace context its directive's subscriber set, if any. */
  readonly traceContext: TraceCarrier | undefined;
  /** Tasks in the batch: final by `end`. */
  tasks: number;
  /** Tasks that failed: final by `end`, or `asyncEnd` when `async`. */
  failed: number;
  /** Some tasks were async: the batch ends at `asyncEnd`. */
  async: boolean;
  /**
   * A subscriber may set it on `start`: the batch's tasks then run inside
   * `wrap(run)` (`weft/otel` runs them with the batch's span active, so
   * spans an operation starts are children of it). A worker thread calls
   * it once for the tasks of the batch it holds, not once per task.
   */
  wrap?: <T>(task: () => T) => T;
}

/** A task failed and is retried: `weft:retry`. */
export interface RetryMessage {
  readonly operation: string;
  readonly index: number;
  /** The attempt about to run, 1 for the first. */
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: Error;
}

/** `Runtime.cluster` lost a process (`weft:peer-lost`) or a spare joined (`weft:peer-joined`). */
export interface PeerMessage {
  /** The process's index. */
  readonly process: number;
  /** Lost: the tasks it held, dispatched again to the others (0 for a join). */
  readonly redispatched: number;
}

/** `Runtime.inMemory` (or an AMQP worker) replaces a worker thread: `weft:thread-replaced`. */
export interface ThreadReplacedMessage {
  /** The thread's index. */
  readonly worker: number;
  /** Why: it died (an exit, an uncaught error), or ran a cancelled task on past its grace and was terminated. */
  readonly reason: 'died' | 'terminated';
  readonly error: Error | undefined;
}

/** `Runtime.amqp` took a dead letter of one of its directives: `weft:dead-letter`. */
export interface DeadLetterMessage {
  /** The directive's routing key. */
  readonly key: string;
  /** Why it was dead-lettered (the broker's `x-first-death-reason`, or the worker's reason). */
  readonly reason: string;
}

// The same type twice: @types/node 26 swapped tracingChannel's parameters
// (<Context, Store>, was <Store, Context>), and these declarations ship in
// weft's .d.ts, checked against whichever @types/node the user installed.
export const directiveChannel = diagnostics.tracingChannel<DirectiveMessage, DirectiveMessage>('weft:directive');
export const taskChannel = diagnostics.tracingChannel<TaskBatchMessage, TaskBatchMessage>('weft:task');
export const retryChannel = diagnostics.channel('weft:retry');
export const peerLostChannel = diagnostics.channel('weft:peer-lost');
export const peerJoinedChannel = diagnostics.channel('weft:peer-joined');
export const threadReplacedChannel = diagnostics.channel('weft:thread-replaced');
export const deadLetterChannel = diagnostics.channel('weft:dead-letter');
// `weft:overflow` (an allocator's backlog would pass its cap: the OverflowError
// it fails with) is published by the allocator, under that name.

let servedWorker = 0;

/** The worker loop says which worker this thread serves as, for the `weft:task` batches a batch operation (core/registry.ts) publishes. */
export function serveAsWorker(index: number): void {
  servedWorker = index;
}

/** The worker this thread serves as (0 until a worker loop says). */
export function workerIndex(): number {
  return servedWorker;
}

// Directives whose trace context a worker remembers: more than run at once.
const MAX_CARRIERS = 256;

/**
 * Groups the tasks a worker runs one after another into `weft:task`
 * batches, while someone subscribes.
 */
export class TaskBatches {
  private current: { message: TaskBatchMessage; key: string; stage: number; startedAt: number; settling: Promise<unknown>[] } | undefined;
  /**
   * The trace context of recent directives, by key: a coordinator sends it
   * on the first of a directive's tasks in each batch only (see the
   * Dispatcher). Bounded: the least recently used go first.
   */
  private readonly carriers = new Recent<string, TraceCarrier>(MAX_CARRIERS);

  constructor(private readonly worker: number) {}

  /** `task` is about to run: it joins the current batch, or ends it and starts one. */
  before(task: Task): void {
    if (this.continues(task)) {
      this.current!.message.tasks++;
      return;
    }
    this.end();
    const message: TaskBatchMessage = { operation: task.op, worker: this.worker, traceContext: this.carrierOf(task), tasks: 1, failed: 0, async: false };
    this.current = { message, key: task.key, stage: task.stage, startedAt: performance.now(), settling: [] };
    taskChannel.start.publish(message);
  }

  /** Whether `task` belongs to the current batch. */
  continues(task: Task): boolean {
    const current = this.current;
    return current !== undefined && current.key === task.key && current.stage === task.stage;
  }

  private carrierOf(task: Task): TraceCarrier | undefined {
    // The same carrier each time for one directive: a subscriber may keep
    // what it made of it (weft/otel its parent context) by it.
    const known = this.carriers.get(task.key);
    if (known !== undefined || task.tc === undefined) return known ?? task.tc;
    this.carriers.set(task.key, task.tc);
    return task.tc;
  }

  /** Runs the task `before` named (or a run of its batch's tasks), as its batch's subscriber asked (`TaskBatchMessage.wrap`). */
  run<T>(task: () => T): T {
    const wrap = this.current?.message.wrap;
    return wrap === undefined ? task() : wrap(task);
  }

  /** What the task returned: its result, or the promise of it. */
  after(outcome: { readonly error?: unknown } | Promise<{ readonly error?: unknown }>): void {
    const current = this.current!;
    if (!(outcome instanceof Promise)) {
      if (outcome.error !== undefined) current.message.failed++;
      return;
    }
    current.message.async = true;
    current.settling.push(outcome.then((result) => void (result.error !== undefined && current.message.failed++)));
  }

  /** Ends the current batch if it started at least `ms` before `now`. */
  endIfOlder(now: number, ms: number): void {
    if (this.current !== undefined && now - this.current.startedAt >= ms) this.end();
  }

  /** Ends the current batch: the worker has run out of tasks, or the next belongs elsewhere. */
  end(): void {
    const current = this.current;
    if (current === undefined) return;
    this.current = undefined;
    taskChannel.end.publish(current.message);
    if (current.settling.length === 0) return;
    void Promise.all(current.settling).then(() => {
      taskChannel.asyncStart.publish(current.message);
      taskChannel.asyncEnd.publish(current.message);
    });
  }
}
