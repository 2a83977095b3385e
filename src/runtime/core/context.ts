// What a running task sees of the runtime: its signal (aborted when the task
// is cancelled), where it stands (index, attempt), and a way to report
// progress. One context per task, made by the Executor.
//
// Design notes
// - Cheap when unused: most operations are tiny and synchronous and never
//   read `signal`, so the AbortController is made on the first read of
//   `signal`; a task cancelled before that read gets a signal that is
//   already aborted.
// - A synchronous operation cannot see a cancellation while it runs (its
//   thread runs nothing else); its signal aborts only for async operations,
//   whose thread is free between awaits. A synchronous task that runs on is
//   stopped by force (docs/runtime.md, "Cancellation").
// - Progress is throttled per task: the first detail leaves at once, then
//   at most one per PROGRESS_INTERVAL_MS, the latest detail winning; the
//   last one still held leaves when the interval ends, or before the task's
//   result, whichever is first. So a task calling progress() in a tight loop
//   costs its result channel about 20 messages a second.

import { refusal } from '../../allocator/internal.ts';
import { ArgumentError } from './errors.ts';
import type { Task } from './task.ts';

/** The second argument of every operation: `defineOperation(name, (input, ctx) => …)`. */
export interface TaskContext {
  /**
   * Aborts when the task is cancelled: its directive aborted or failed, its
   * `timeoutMs` passed, the runtime closed, or a `stream()` consumer left
   * the loop. `signal.reason` is a `TaskCancelledError` saying which. An
   * operation that ignores it past `cancelGraceMs` is stopped by force.
   */
  readonly signal: AbortSignal;
  /** The position of the task's input in its directive's input. */
  readonly index: number;
  /** 1 for the first try, 2 for the first retry, … */
  readonly attempt: number;
  /**
   * Reports progress to the directive's `onProgress`, with this task's index.
   * `detail` must be a value the channels carry (docs/semantics.md); details
   * are throttled (at most about one per 50 ms per task, the latest winning).
   */
  progress(detail?: unknown): void;
}

/** Shortest time between two progress details of one task, in ms. */
export const PROGRESS_INTERVAL_MS = 50;

/** Where a task's throttled progress details go: the worker's channel back to its coordinator. */
export type ProgressSink = (task: Task, detail: unknown) => void;

const NOTHING = Symbol('nothing held');

/** The context of one running task; the Executor aborts and finishes it. */
export class RunningContext implements TaskContext {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;
  /** When the last detail left (performance.now()), or -Infinity. */
  #sentAt = -Infinity;
  #held: unknown = NOTHING;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #finished = false;

  /** `running`: the executor's set of cancellable contexts, which this one joins when its signal is first read. */
  constructor(
    readonly task: Task,
    private readonly sink: ProgressSink | undefined,
    private readonly running: Set<RunningContext>,
  ) {}

  get index(): number {
    return this.task.index;
  }

  get attempt(): number {
    return this.task.attempt + 1;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      // Reachable by a cancellation even while its operation has not
      // returned yet (Runtime.local delivers progress, and so cancellations,
      // synchronously).
      if (!this.#finished) this.running.add(this);
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  progress(detail?: unknown): void {
    const refused = refusal(detail);
    if (refused !== undefined) throw new ArgumentError(`ctx.progress: the detail cannot be sent to the orchestrator: ${refused.message}`, { cause: refused });
    if (this.#finished || this.sink === undefined) return;
    const now = performance.now();
    if (now - this.#sentAt >= PROGRESS_INTERVAL_MS) {
      this.#held = NOTHING;
      this.#sentAt = now;
      this.sink(this.task, detail);
      return;
    }
    this.#held = detail;
    this.#timer ??= setTimeout(() => this.release(), PROGRESS_INTERVAL_MS - (now - this.#sentAt));
  }

  /** Aborts the signal (now, or at its first read). */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }

  /** The task has returned: a detail still held leaves now, before the result. */
  finish(): void {
    this.#finished = true;
    this.running.delete(this);
    if (this.#timer !== undefined) this.release();
  }

  private release(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#held === NOTHING) return;
    const detail = this.#held;
    this.#held = NOTHING;
    this.#sentAt = performance.now();
    this.sink!(this.task, detail);
  }
}
