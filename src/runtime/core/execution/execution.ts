// One directive running on a backend: admits inputs from its intake, sends
// each item through its chain of operations one task at a time, retries
// transient failures and timeouts, counts each result once, and hands the
// outputs to its collector. Its parts, one file each: the table of pending
// items (pending.ts), the source (intake.ts), the timeouts (deadlines.ts),
// what becomes of the outputs (collect.ts), what it reports (progress.ts);
// what it is given is in options.ts.

import type { Backend, Lease } from '../backend.ts';
import { AbortError, OperationError, RetriesExhaustedError, TaskTimeoutError } from '../errors.ts';
import { failed, fromFailure, type Task, type TaskProgress, type TaskResult } from '../task.ts';
import { refusal } from '../../../allocator/internal.ts';
import { collector, type Collector } from './collect.ts';
import { DeadlineQueue, disarm } from './deadlines.ts';
import { Intake, type IntakeHost } from './intake.ts';
import { PendingTable, type Pending } from './pending.ts';
import type { ExecutionOptions, Plan } from './plan.ts';
import { ProgressReport } from './progress.ts';
import { MAX_DURATION_MS } from '../options.ts';
import type { MetricsRecorder, OperationRecord } from '../../observability/metrics.ts';
import { retryChannel, type RetryMessage } from '../../observability/channels.ts';

/**
 * The window: what the backend can run at once, twice over (so the next
 * tasks wait beside it while results travel), or as many tasks as it
 * completed in WINDOW_HORIZON_MS at its measured rate, whichever is more;
 * never past maxInFlight. Cheap tasks thus get the whole window, and a
 * costly one is not queued thousands deep ahead of a consumer that may stop
 * at the first result.
 */
const WINDOW_HORIZON_MS = 100;

export function execute(
  backend: Backend,
  plan: Plan,
  source: Iterable<unknown> | AsyncIterable<unknown>,
  options: ExecutionOptions,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    new Execution(backend, plan, source, options, collector(plan.fold), resolve, reject).start();
  });
}

export class Execution implements IntakeHost {
  private readonly pending: PendingTable;
  /** Items waiting for a delayed retry. */
  private readonly retrying = new Set<Pending>();
  private readonly intake: Intake;
  private readonly deadlines: DeadlineQueue<Pending> | undefined;
  private readonly collector: Collector;
  private readonly progress: ProgressReport;
  /** Operation names by stage. */
  private readonly ops: readonly string[];
  /** Their metrics, by stage. */
  private readonly records: readonly OperationRecord[];
  private readonly metrics: MetricsRecorder;
  /**
   * The dispatch time of the tasks made in this turn, read once per turn
   * (a clock reading per task would cost more than the rest of the
   * bookkeeping); -1 until read.
   */
  private stamp = -1;
  private readonly clearStamp = () => (this.stamp = -1);
  private readonly lastStage: number;
  private readonly maxInFlight: number;
  private readonly minWindow: number;
  /** The window now: see WINDOW_HORIZON_MS. */
  private window: number;
  private startedAt = 0;
  private lease: Lease | undefined;
  private key = '';
  /** Whether a task carried the directive's trace context to the backend. */
  private traced = false;
  /** Inputs admitted so far. */
  private length = 0;
  settled = false;
  private readonly onAbort = () => this.fail(new AbortError({ cause: this.options.signal?.reason }));

  constructor(
    private readonly backend: Backend,
    plan: Plan,
    source: Iterable<unknown> | AsyncIterable<unknown>,
    private readonly options: ExecutionOptions,
    collector: Collector,
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    this.collector = collector;
    const stages = plan.stages.length;
    const known = Array.isArray(source) ? source.length * stages : undefined;
    this.progress = new ProgressReport(backend, options.onProgress, () => (this.intake.done ? this.length * stages : known));
    this.ops = plan.stages.map((stage) => stage.name);
    this.metrics = options.metrics;
    this.records = this.ops.map((op) => options.metrics.operation(op));
    this.lastStage = plan.stages.length - 1;
    this.maxInFlight = options.maxInFlight;
    this.minWindow = Math.min(options.maxInFlight, 2 * backend.parallelism);
    this.window = this.minWindow;
    this.pending = new PendingTable(options.maxInFlight);
    this.deadlines = options.timeoutMs === undefined ? undefined : new DeadlineQueue(options.timeoutMs, () => this.expire());
    this.intake = new Intake(source, this);
  }

  start(): void {
    const { signal } = this.options;
    if (signal?.aborted) return this.fail(new AbortError({ cause: signal.reason }));
    this.lease = this.backend.lease(
      {
        results: (results) => this.onResults(results),
        failed: (error) => this.fail(error),
        membership: () => this.progress.report(),
        progress: this.options.onProgress === undefined ? undefined : (updates) => this.onTaskProgress(updates),
      },
      { cancelGraceMs: this.options.cancelGraceMs },
    );
    this.key = this.lease.key;
    signal?.addEventListener('abort', this.onAbort, { once: true });
    this.startedAt = performance.now();
    this.intake.pull();
  }

  // ------------------------------------------------------------ dispatch

  hasRoom(): boolean {
    return this.pending.count + this.collector.held < this.window;
  }

  private measureWindow(): void {
    if (this.window === this.maxInFlight) return;
    const perMs = this.progress.counts.done / Math.max(1, performance.now() - this.startedAt);
    this.window = Math.min(this.maxInFlight, Math.max(this.minWindow, Math.ceil(perMs * WINDOW_HORIZON_MS)));
  }

  /** A consumer took outputs the collector held: pull into the room they leave. */
  refill(): void {
    if (!this.settled && this.hasRoom()) this.intake.pull();
  }

  admit(input: unknown, batch: Task[]): void {
    const index = this.length++;
    this.collector.admitted(index);
    // A stream with no operation (a bare fold, say) completes without a task.
    if (this.lastStage < 0) return this.complete(index, input);
    batch.push(this.taskOf(this.pending.take(index, input)));
  }

  private taskOf(item: Pending): Task {
    if (this.metrics.timing) item.sentAt = this.now();
    // The trace context goes on the directive's first task only: the
    // backend keeps it by key and hands it on with the tasks after it.
    const carrier = this.traced ? undefined : this.options.trace?.traceContext;
    if (carrier !== undefined) this.traced = true;
    const task: Task =
      carrier === undefined
        ? { op: this.ops[item.stage]!, input: item.input, key: this.key, index: item.index, stage: item.stage, attempt: item.attempt }
        : { op: this.ops[item.stage]!, input: item.input, key: this.key, index: item.index, stage: item.stage, attempt: item.attempt, tc: carrier };
    if (this.deadlines === undefined) return task;
    this.deadlines.arm(item, this.pending.count);
    return { ...task, timeoutMs: this.deadlines.timeoutMs };
  }

  private now(): number {
    if (this.stamp < 0) {
      this.stamp = performance.now();
      queueMicrotask(this.clearStamp);
    }
    return this.stamp;
  }

  send(tasks: Task[], report = true): void {
    if (tasks.length === 0 || this.settled) return;
    this.progress.counts.dispatched += tasks.length;
    if (this.options.trace !== undefined) this.options.trace.tasks += tasks.length;
    const sendable = this.sendable(tasks);
    if (sendable.length > 0) this.backend.dispatch(sendable);
    if (report) this.progress.report();
  }

  /**
   * Tasks whose input the channels' codec carries. The others fail here, as
   * results of their own, on every backend alike: a backend would throw from
   * dispatch (threads), or send nothing in its place (AMQP).
   */
  private sendable(tasks: Task[]): Task[] {
    let refused: Map<Task, TaskResult> | undefined;
    for (const task of tasks) {
      const error = refusal(task.input);
      if (error !== undefined) (refused ??= new Map()).set(task, failed(task, error));
    }
    if (refused === undefined) return tasks;
    const failures = [...refused.values()];
    queueMicrotask(() => this.onResults(failures));
    return tasks.filter((task) => !refused.has(task));
  }

  // ------------------------------------------------------------ results

  private onResults(results: readonly TaskResult[]): void {
    if (this.settled) return;
    let next: Task[] | undefined;
    const lastStage = this.lastStage;
    // One clock reading for the batch (its results arrived together): -1 without timing.
    const receivedAt = this.metrics.timing ? this.now() : -1;
    for (let i = 0; i < results.length; i++) {
      const result = results[i]!;
      const item = this.pending.lookup(result.index);
      // A result counts once: it must be for the item's current stage, and a
      // failure only for its current attempt (a late success of an earlier,
      // timed-out attempt is as good as any).
      if (item === undefined || item.stage !== result.stage) continue;
      if (result.error !== undefined) {
        if (result.attempt === item.attempt) {
          if (item.cancelling) this.onCancelled(item, result.error.name === 'TaskStuckError' ? fromFailure(result.error) : undefined);
          else this.onFailure(item, fromFailure(result.error), result.error.transient);
        }
        if (this.settled) return;
        continue;
      }
      this.progress.counts.done++;
      const record = this.records[item.stage]!;
      record.completed++;
      if (receivedAt >= 0) this.metrics.timed(record, receivedAt - item.sentAt, result.us, result.w);
      item.cancelling = false;
      disarm(item);
      if (item.timer !== undefined) this.cancelRetry(item);
      if (item.stage < lastStage) {
        item.stage++;
        item.attempt = 0;
        item.input = result.output;
        (next ??= []).push(this.taskOf(item));
        continue;
      }
      const index = item.index;
      this.pending.drop(item);
      this.complete(index, result.output);
      if (this.settled) return;
    }
    if (next !== undefined) this.send(next, false);
    this.progress.report();
    this.measureWindow();
    if (this.hasRoom()) this.intake.pull();
    this.finishIfDone();
  }

  private complete(index: number, output: unknown): void {
    try {
      this.collector.add(index, output);
    } catch (error) {
      this.fail(error);
    }
  }

  private onFailure(item: Pending, error: Error, transient: boolean): void {
    disarm(item);
    if (item.timer !== undefined) this.cancelRetry(item);
    this.progress.counts.failed++;
    const record = this.records[item.stage]!;
    record.failed++;
    const op = this.ops[item.stage]!;
    const attempts = item.attempt + 1;
    if (!transient) return this.fail(new OperationError(op, item.index, attempts, error));
    if (item.attempt >= this.options.retry.retries) return this.fail(new RetriesExhaustedError(op, item.index, attempts, error));
    item.attempt++;
    record.retried++;
    // A policy may ask for more than a timer can wait (it would fire at once): the most it can.
    const delay = Math.min(MAX_DURATION_MS, this.options.retry.delayMs(item.attempt));
    if (retryChannel.hasSubscribers) {
      retryChannel.publish({ operation: op, index: item.index, attempt: item.attempt + 1, delayMs: delay, error } satisfies RetryMessage);
    }
    const { index, stage, attempt } = item;
    const retry = () => {
      if (item.timer !== undefined) {
        item.timer = undefined;
        this.retrying.delete(item);
      }
      // A late success of the failed attempt may have moved the item on meanwhile.
      if (this.settled || this.pending.lookup(index) !== item || item.stage !== stage || item.attempt !== attempt) return;
      this.send([this.taskOf(item)]);
    };
    if (delay <= 0) return retry();
    item.timer = setTimeout(retry, delay);
    this.retrying.add(item);
  }

  private cancelRetry(item: Pending): void {
    clearTimeout(item.timer);
    item.timer = undefined;
    this.retrying.delete(item);
  }

  /**
   * Cancels the tasks whose deadline has passed, then waits for the next
   * one. On a backend that can cancel, a timed-out attempt is retried (or
   * failed) only once its result says it ended (onCancelled), so two attempts
   * of a task never run at once; on one that cannot, at once.
   */
  private expire(): void {
    const deadlines = this.deadlines!;
    if (this.settled) return;
    let expired = false;
    const cancel = this.lease!.cancel;
    for (let item = deadlines.due(); item !== undefined; item = deadlines.due()) {
      expired = true;
      if (cancel !== undefined) {
        disarm(item);
        item.cancelling = true;
        cancel({ key: this.key, index: item.index, stage: item.stage, attempt: item.attempt }, `its timeout of ${deadlines.timeoutMs} ms passed`);
        continue;
      }
      this.onFailure(item, this.timeoutOf(item), true);
      if (this.settled) return;
    }
    deadlines.rearm();
    if (expired) this.progress.report();
  }

  private timeoutOf(item: Pending): TaskTimeoutError {
    return new TaskTimeoutError(this.ops[item.stage]!, item.index, this.deadlines!.timeoutMs);
  }

  /** A timed-out attempt has ended without an output: retry it, or, if it could not be stopped (`stuck`), fail. */
  private onCancelled(item: Pending, stuck: Error | undefined): void {
    item.cancelling = false;
    if (stuck === undefined) return this.onFailure(item, this.timeoutOf(item), true);
    this.progress.counts.failed++;
    this.records[item.stage]!.failed++;
    this.fail(new OperationError(this.ops[item.stage]!, item.index, item.attempt + 1, stuck));
  }

  /** Tasks' own progress reports, each with its counts. */
  private onTaskProgress(updates: readonly TaskProgress[]): void {
    if (this.settled) return;
    for (const { index, attempt, detail } of updates) this.progress.report({ index, attempt: attempt + 1, detail });
  }

  // ------------------------------------------------------------ the end

  finishIfDone(): void {
    if (this.settled || !this.intake.done || this.pending.count > 0) return;
    let value: unknown;
    try {
      value = this.collector.result(this.length);
    } catch (error) {
      return this.fail(error);
    }
    this.settle();
    this.resolve(value);
    this.progress.report(undefined, 'succeeded');
  }

  fail(error: unknown): void {
    if (this.settled) return;
    this.settle(error instanceof AbortError ? 'its directive was aborted' : 'its directive failed');
    this.intake.close();
    this.reject(error);
    this.progress.report(undefined, 'failed');
  }

  /** Ends the directive without an outcome (a stream's consumer left): its running tasks are cancelled. */
  stop(why: string): void {
    if (this.settled) return;
    this.settle(why);
    this.intake.close();
    this.progress.report(undefined, 'stopped');
  }

  private settle(why = 'its directive ended'): void {
    this.settled = true;
    this.options.signal?.removeEventListener('abort', this.onAbort);
    this.deadlines?.clear();
    for (const item of this.retrying) clearTimeout(item.timer);
    this.retrying.clear();
    this.pending.clear();
    this.lease?.release(why);
  }
}
