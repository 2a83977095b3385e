// The worker side: imports the modules that define operations and runs tasks
// by looking their operation up by name. Every backend's worker (a thread, a
// cluster process, an AMQP consumer) wraps one of these; it knows nothing of
// how tasks arrive, so that each can.

import { moduleUrl } from '../../allocator/index.ts';
import { importUntilStart } from '../../allocator/internal.ts';
import { ModuleError } from '../../errors.ts';
import { RunningContext, type ProgressSink } from './context.ts';
import { TaskCancelledError, UnknownOperationError } from './errors.ts';
import { lookupOperation } from './registry.ts';
import { cancels, failed, succeeded, type CancelScope, type Task, type TaskResult } from './task.ts';

/**
 * Imports the modules that define operations (their `defineOperation` calls
 * register them). A module that starts a runtime (or initialize) at top
 * level, as a main script does, counts as loaded once it reaches that call.
 */
export async function loadOperations(modules: readonly (string | URL)[]): Promise<void> {
  for (const module of modules) {
    const url = moduleUrl(module);
    try {
      await importUntilStart(url);
    } catch (error) {
      throw new ModuleError(`cannot import operations module ${url}: ${(error as Error)?.message ?? error}`, { cause: error });
    }
  }
}

/**
 * Runs tasks of the operations this thread has loaded, each with its
 * TaskContext, and keeps the contexts of those still running (async
 * operations, and any that read their signal) so that `cancel` can abort
 * their signals.
 */
// Whole microseconds: a small integer encodes in a byte or three, a float in nine.
function microsSince(startedAt: number, now: number): number {
  return Math.round((now - startedAt) * 1000);
}

export class Executor {
  private readonly running = new Set<RunningContext>();
  /**
   * When the last synchronous run returned (performance.now()): a caller
   * that runs tasks back to back passes it as the next one's start, so a
   * task costs one clock reading.
   */
  returnedAt = 0;

  /**
   * `progress` receives each task's throttled progress details; without it
   * they are dropped. `worker` is this worker's index, which its results carry.
   */
  constructor(
    private readonly progress?: ProgressSink,
    private readonly worker = 0,
  ) {}

  /**
   * Runs one task, timed from `startedAt` (performance.now()). Returns
   * synchronously when the operation does, so a batch of cheap tasks costs
   * no promise per task. Never throws: failures, including an unknown
   * operation name, become error results.
   */
  execute(task: Task, startedAt = performance.now()): TaskResult | Promise<TaskResult> {
    const operation = lookupOperation(task.op);
    if (operation === undefined) {
      this.returnedAt = performance.now();
      return failed(task, new UnknownOperationError(task.op));
    }
    const context = new RunningContext(task, this.progress, this.running);
    try {
      const output = operation.fn(task.input, context);
      if (output instanceof Promise) {
        this.running.add(context);
        this.returnedAt = performance.now();
        return output.then(
          (value) => this.settled(context, succeeded(task, value, microsSince(startedAt, performance.now()), this.worker)),
          (error) => this.settled(context, failed(task, error)),
        );
      }
      context.finish();
      return succeeded(task, output, microsSince(startedAt, (this.returnedAt = performance.now())), this.worker);
    } catch (error) {
      context.finish();
      this.returnedAt = performance.now();
      return failed(task, error);
    }
  }


  /**
   * Aborts the signal of every running task that `scope` names, with a
   * TaskCancelledError saying why; returns how many. Their results still
   * come, whenever their operations return.
   */
  cancel(scope: CancelScope): number {
    let count = 0;
    for (const context of this.running) {
      if (!cancels(scope, context.task)) continue;
      context.abort(new TaskCancelledError(scope.why));
      count++;
    }
    return count;
  }

  private settled(context: RunningContext, result: TaskResult): TaskResult {
    context.finish();
    return result;
  }
}
