// The public face of the worker side: what a user calls to serve tasks in a
// process of their own. Backends use core's Executor directly.

import type { Executor } from './core/executor.ts';
import type { Task, TaskResult } from './core/task.ts';
import type { AmqpWorker } from './backends/amqp/worker/worker.ts';
import type { AmqpWorkerOptions } from './backends/amqp/shared/options.ts';

export class WorkerRuntime {
  readonly #executor: Executor;

  /** Made by `WorkerRuntime.load`, which imports the operations first. */
  private constructor(executor: Executor) {
    this.#executor = executor;
  }

  /**
   * Imports the modules that define operations (their `defineOperation` calls
   * register them) and returns a runtime that serves them. A module that
   * starts a runtime at top level, as a main script does, counts as loaded
   * once it reaches that call.
   */
  static async load(modules: readonly (string | URL)[]): Promise<WorkerRuntime> {
    // On demand: a program that imports weft and serves no task never loads the executor.
    const { Executor, loadOperations } = await import('./core/executor.ts');
    await loadOperations(modules);
    return new WorkerRuntime(new Executor());
  }

  /**
   * Serves tasks from an AMQP broker (RabbitMQ) until closed: imports
   * `options.operations`, connects with reconnection, and consumes the task
   * queue that `Runtime.amqp` publishes to. What `weft worker --amqp` runs.
   */
  static async amqp(options: AmqpWorkerOptions): Promise<AmqpWorker> {
    const { AmqpWorker } = await import('./backends/amqp/worker/worker.ts');
    return AmqpWorker.start(options);
  }

  /**
   * Runs one task. Returns synchronously when the operation does. Never
   * throws: failures, including an unknown operation name, become error
   * results.
   */
  execute(task: Task): TaskResult | Promise<TaskResult> {
    return this.#executor.execute(task);
  }
}
