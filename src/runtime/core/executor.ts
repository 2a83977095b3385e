// The worker side: imports the modules that define operations and runs tasks
// by looking their operation up by name. Every backend's worker (a thread, a
// cluster process, an AMQP consumer) wraps one of these; it knows nothing of
// how tasks arrive, so that each can.

import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ModuleError } from '../../errors.ts';
import { UnknownOperationError } from './errors.ts';
import { lookupOperation } from './registry.ts';
import { failed, succeeded, type Task, type TaskResult } from './task.ts';

/** A module given as URL, file URL string, or path (relative to the current directory) as a URL string. */
export function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (/^[a-z][a-z0-9+.-]*:/i.test(module) && !isAbsolute(module)) return module;
  return pathToFileURL(resolve(module)).href;
}

// While a worker imports an operations module, this global holds a function
// that the module's own `Runtime.*` call invokes (see `reachedRuntime`). On
// the global object, not in a module variable, because the module may import
// another copy of weft than the worker runs.
const LOADING = Symbol.for('weft.loadingOperations');

/**
 * Called by `Runtime.inMemory`/`cluster`/`amqp`: true when this call is the
 * operations module's own top-level runtime start, reached while a worker
 * imports that module (the main script, by default). The worker then has
 * every operation defined above the call; the caller must not start a
 * nested runtime, and never resolves instead, so the rest of the script (the
 * directives) runs only in the main thread.
 */
export function reachedRuntime(): boolean {
  const signal = (globalThis as Record<symbol, unknown>)[LOADING];
  if (typeof signal !== 'function') return false;
  (signal as () => void)();
  return true;
}

/**
 * Imports the modules that define operations (their `defineOperation` calls
 * register them). A module that starts a runtime at top level, as a main
 * script does, counts as loaded once it reaches that call.
 */
export async function loadOperations(modules: readonly (string | URL)[]): Promise<void> {
  const global = globalThis as Record<symbol, unknown>;
  for (const module of modules) {
    const url = moduleUrl(module);
    const reached = new Promise<void>((resolve) => (global[LOADING] = resolve));
    try {
      await Promise.race([import(url), reached]);
    } catch (error) {
      throw new ModuleError(`cannot import operations module ${url}: ${(error as Error)?.message ?? error}`, { cause: error });
    } finally {
      delete global[LOADING];
    }
  }
}

/** Runs tasks of the operations this thread has loaded. */
export class Executor {
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
