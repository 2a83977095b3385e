// Runtime failures, one class per failure, so a caller can branch on `name`
// or `instanceof` instead of parsing messages.

import { WeftError } from '../../errors.ts';

/**
 * Thrown by an operation to say "try me again": the runtime retries the task
 * according to its retry policy. Anything else an operation throws is fatal.
 */
export class TransientError extends WeftError {
  override name = 'TransientError';
}

/** A call was given a value it cannot use: the message names the argument or option, what it must be, and what it got. */
export class ArgumentError extends WeftError {
  override name = 'ArgumentError';
}

/** Two different definitions were registered under one operation or monoid name. */
export class DuplicateDefinitionError extends WeftError {
  override name = 'DuplicateDefinitionError';
  constructor(readonly definition: string, options?: { cause?: unknown }) {
    super(`a different definition is already registered under the name '${definition}'`, options);
  }
}

/** A worker received a task naming an operation its registry does not hold. */
export class UnknownOperationError extends WeftError {
  override name = 'UnknownOperationError';
  constructor(readonly operation: string, options?: { cause?: unknown }) {
    super(
      `unknown operation '${operation}': the worker did not import a module that defines it ` +
        `(pass that module in the runtime's 'operations' option)`,
      options,
    );
  }
}

/** A task produced no result within the per-task timeout. Retried like a transient error. */
export class TaskTimeoutError extends WeftError {
  override name = 'TaskTimeoutError';
  constructor(readonly operation: string, readonly index: number, readonly timeoutMs: number, options?: { cause?: unknown }) {
    super(`operation ${operation} on input index ${index} produced no result within ${timeoutMs} ms`, options);
  }
}

/**
 * A task's input cannot travel to its worker: it is over the channels'
 * frame bound (maxMessageBytes) once encoded. The directive rejects with an
 * OperationError whose cause is this.
 */
export class InputError extends WeftError {
  override name = 'InputError';
}

/**
 * A task's output cannot travel back: the codec refuses it (a function, a
 * symbol, a value it cannot encode) or it is over the channels' frame bound.
 * The directive rejects with an OperationError whose cause is this.
 */
export class OutputError extends WeftError {
  override name = 'OutputError';
}

/**
 * The reason a task's `ctx.signal` aborted with: its directive was aborted,
 * failed or closed, its timeout passed, or a stream's consumer left. Also
 * the error result of a cancelled task that had not started.
 */
export class TaskCancelledError extends WeftError {
  override name = 'TaskCancelledError';
}

/**
 * A timed-out task went on past `cancelGraceMs` after its cancellation, on a
 * backend that cannot terminate its thread (a cluster worker in another
 * process): it is not retried, since two attempts of one task never run at
 * once, and its directive fails with this as the cause.
 */
export class TaskStuckError extends WeftError {
  override name = 'TaskStuckError';
}

/** The worker thread running a task kept dying: the task is given up rather than retried forever. */
export class WorkerLostError extends WeftError {
  override name = 'WorkerLostError';
}

/**
 * A task failed for good: the directive rejects with this. It names the
 * operation and the input index; `cause` is the original error rebuilt with
 * its name, message and remote stack, and that stack is appended to ours.
 */
export class OperationError extends WeftError {
  override name = 'OperationError';
  constructor(
    readonly operation: string,
    readonly index: number,
    readonly attempts: number,
    cause: Error,
    reason = 'failed',
  ) {
    super(`operation ${operation} ${reason} on input index ${index} (attempt ${attempts}): ${cause.name}: ${cause.message}`, {
      cause,
    });
    this.stack = `${this.stack}\nCaused by: ${cause.stack ?? `${cause.name}: ${cause.message}`}`;
  }
}

/** A transient failure that outlived the retry policy. */
export class RetriesExhaustedError extends OperationError {
  override name = 'RetriesExhaustedError';
  constructor(operation: string, index: number, attempts: number, cause: Error) {
    // With Retry.none() the one attempt was all there was: nothing was retried.
    super(operation, index, attempts, cause, attempts === 1 ? 'failed and its retry policy allows no retry' : `still failing after ${attempts - 1} retries`);
  }
}

/** A monoid's `combine` threw while joining the ranges [start, middle) and [middle, end). */
export class FoldError extends WeftError {
  override name = 'FoldError';
  constructor(
    readonly monoid: string,
    readonly start: number,
    readonly middle: number,
    readonly end: number,
    cause: unknown,
  ) {
    const inner = cause instanceof Error ? cause : new Error(String(cause));
    super(
      `monoid ${monoid} failed combining input indices [${start}, ${middle}) and [${middle}, ${end}): ${inner.name}: ${inner.message}`,
      { cause: inner },
    );
    this.stack = `${this.stack}\nCaused by: ${inner.stack ?? inner.message}`;
  }
}

/** The directive was cancelled through its `AbortSignal`. */
export class AbortError extends WeftError {
  override name = 'AbortError';
  constructor(options?: { cause?: unknown }) {
    super('the directive was aborted', options);
  }
}

/** The runtime was closed (or lost its workers) while a directive was running. */
export class RuntimeClosedError extends WeftError {
  override name = 'RuntimeClosedError';
}
