// The worker side: runs tasks by looking their operation up by name. Every
// backend's worker loop (a thread, a cluster process, an AMQP consumer) wraps
// one of these; it is transport-free so that each can.

import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ModuleError } from '../errors.ts';
import { UnknownOperationError } from './errors.ts';
import type { AmqpWorker, AmqpWorkerOptions } from './amqp/worker.ts';
import { lookupOperation } from './registry.ts';
import { failed, succeeded, type Task, type TaskResult } from './task.ts';

/** A module given as URL, file URL string, or path (relative to the current directory) as a URL string. */
export function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(module) && !isAbsolute(module)) return module;
  return pathToFileURL(resolve(module)).href;
}

export class WorkerRuntime {
  /**
   * Imports the modules that define operations (their `defineOperation` calls
   * register them) and returns a runtime that serves them.
   */
  static async load(modules: readonly (string | URL)[]): Promise<WorkerRuntime> {
    for (const module of modules) {
      const url = moduleUrl(module);
      try {
        await import(url);
      } catch (error) {
        throw new ModuleError(`cannot import operations module ${url}: ${(error as Error)?.message ?? error}`, { cause: error });
      }
    }
    return new WorkerRuntime();
  }

  /**
   * Serves tasks from an AMQP broker (RabbitMQ) until closed: imports
   * `options.operations`, connects with reconnection, and consumes the task
   * queue that `Runtime.amqp` publishes to. What `weft worker --amqp` runs.
   */
  static async amqp(options: AmqpWorkerOptions): Promise<AmqpWorker> {
    const { AmqpWorker } = await import('./amqp/worker.ts');
    return AmqpWorker.start(options);
  }

  /**
   * Runs one task. Returns synchronously when the operation does, so a batch
   * of cheap tasks costs no promise per task. Never throws: failures, including
   * an unknown operation name, become error results.
   */
  execute(task: Task): TaskResult | Promise<TaskResult> {
    const operation = lookupOperation(task.op);
    if (operation === undefined) return failed(task, new UnknownOperationError(task.op));
    try {
      const output = operation.fn(task.input);
      if (output instanceof Promise) {
        return output.then(
          (value) => succeeded(task, value),
          (error) => failed(task, error),
        );
      }
      return succeeded(task, output);
    } catch (error) {
      return failed(task, error);
    }
  }
}
