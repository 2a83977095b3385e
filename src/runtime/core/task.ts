// What travels between an orchestrator and its workers. Field names are short
// because every task and every result is encoded; docs/runtime.md uses the
// same names.

import type { TraceCarrier } from '../observability/channels.ts';

/** One operation applied to one input, as sent to a worker. */
export interface Task {
  /** Operation name, looked up in the worker's registry. */
  readonly op: string;
  readonly input: unknown;
  /** Routing key: names the result lease (the directive) the result goes back to. */
  readonly key: string;
  /** Index of the input item in its directive. */
  readonly index: number;
  /** Position of `op` in a chain such as `.map(a).map(b)`: 0 for `a`, 1 for `b`. */
  readonly stage: number;
  /** 0 for the first try, incremented by each retry (an operation sees it plus 1, as `ctx.attempt`). */
  readonly attempt: number;
  /**
   * The directive's per-task timeout, when it has one. A worker sends the
   * results it has made before it runs such a task, so one that never
   * returns cannot hold them back past their own timeouts.
   */
  readonly timeoutMs?: number;
  /**
   * Trace context that a `weft:directive` subscriber set (`weft/otel`: W3C
   * `traceparent`), carried to the worker. A directive puts it on its first
   * task only; the backend keeps it by key and puts it on the first of the
   * directive's tasks in each batch or message it sends.
   */
  readonly tc?: TraceCarrier;
}

/** An error as it crosses the wire: no prototype survives encoding, so keep what matters. */
export interface TaskFailure {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  /** True when the operation threw a `TransientError`: the orchestrator may retry. */
  readonly transient: boolean;
}

/** The outcome of a task; `key`, `index`, `stage` and `attempt` are copied from it. */
export interface TaskResult {
  readonly key: string;
  readonly index: number;
  readonly stage: number;
  readonly attempt: number;
  readonly output?: unknown;
  /** Present if and only if the task failed. */
  readonly error?: TaskFailure;
  /** How long the task ran on its worker, in whole microseconds: `runTime` in `Runtime.metrics()`. */
  readonly us?: number;
  /** The index of the worker that ran it: per-worker figures in `Runtime.metrics()`. */
  readonly w?: number;
}

/** The result of a task that returned `output` after `us` µs on worker `w`. */
export function succeeded(task: Task, output: unknown, us: number, w: number): TaskResult {
  return { key: task.key, index: task.index, stage: task.stage, attempt: task.attempt, output, us, w };
}

/** What identifies a task (and its result). */
export type TaskIdentity = Pick<Task, 'key' | 'index' | 'stage' | 'attempt'>;

/**
 * What a cancellation names: every task (no key: the runtime closes), every
 * task of one directive (its routing key alone), or one attempt of one task
 * (a timeout). `why` becomes the message of the `TaskCancelledError` that
 * the tasks' `ctx.signal.reason` holds.
 */
export interface CancelScope {
  readonly key?: string;
  readonly task?: readonly [index: number, stage: number, attempt: number];
  readonly why: string;
}

/** Does `scope` cancel `task`? */
export function cancels(scope: CancelScope, task: TaskIdentity): boolean {
  if (scope.key === undefined) return true;
  if (task.key !== scope.key) return false;
  const one = scope.task;
  return one === undefined || (one[0] === task.index && one[1] === task.stage && one[2] === task.attempt);
}

/** A task's progress detail (from `ctx.progress`), on its way to the directive's `onProgress`. */
export interface TaskProgress extends TaskIdentity {
  readonly detail: unknown;
}

export function failed(task: TaskIdentity, error: unknown): TaskResult {
  return { key: task.key, index: task.index, stage: task.stage, attempt: task.attempt, error: toFailure(error) };
}

export function toFailure(error: unknown): TaskFailure {
  if (error instanceof Error) {
    return { name: error.name, message: error.message, stack: error.stack, transient: error.name === 'TransientError' };
  }
  return { name: 'Error', message: String(error), transient: false };
}

/** Rebuilds an `Error` on the orchestrator's side, keeping the remote name and stack. */
export function fromFailure(failure: TaskFailure): Error {
  const error = new Error(failure.message);
  error.name = failure.name;
  error.stack = failure.stack ?? `${failure.name}: ${failure.message}`;
  return error;
}
