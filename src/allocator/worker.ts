// The worker-thread side of initialize: build the allocator from shared
// memory, run the user's function, close its channels, and report the
// outcome to the main thread. Also the entry the bootstrap calls.

import { parentPort } from 'node:worker_threads';
import { WorkerAllocator, type Allocator } from './allocator.ts';
import { Endpoint } from './endpoint.ts';
import type { Wiring } from '../transport/index.ts';
import { FailStopError, CodecError, ModuleError } from '../errors.ts';
import { closureReached } from './initialize.ts';
import { encodeReturn, serializeError, type Plain, type Report } from './returns.ts';
import { importUserModule, tsxOnDemand } from '../typescript.ts';

/** A worker's function; `args` is the module form's ModuleSpec.args (undefined in the closure form). */
export type WorkerFn<R> = (allocator: Allocator, args?: unknown) => R | Promise<R>;

/** What the main thread tells a worker thread to do; travels in workerData.weft. */
export type Boot =
  | ({ mode: 'closure'; script: string; ordinal: number; history: unknown[][] } & Start)
  | ({ mode: 'module'; module: string; export: string; args?: unknown } & Start);

interface Start {
  wiring: Wiring;
  runner: string;
  /** Register tsx before anything (bootstrap.mjs). */
  tsx: boolean;
  /** tsx's API, for what Node's type stripping refuses, where the program runs under a tsx left out of this thread (typescript.ts). */
  tsxOnDemand: string | undefined;
}

function post(report: Report): void {
  parentPort!.postMessage(report);
}

/** Runs `fn` as this thread's worker and reports how it ended. */
export async function runWorker<R>(fn: WorkerFn<R>, wiring: Wiring): Promise<void> {
  const endpoint = new Endpoint(wiring);
  post({ type: 'ready' });
  let value: R;
  try {
    value = await fn(new WorkerAllocator(endpoint));
    endpoint.shutdown();
  } catch (error) {
    endpoint.retire();
    const aborted = error instanceof FailStopError;
    if (!aborted) endpoint.abort();
    post({ type: 'error', error: serializeError(error), aborted });
    return;
  }
  let bytes: Uint8Array | Plain;
  try {
    bytes = encodeReturn(value);
  } catch (error) {
    post({ type: 'error', error: serializeError(new CodecError(`worker ${wiring.index} returned a value that cannot be sent: ${(error as Error).message}`, { cause: error })), aborted: false });
    return;
  }
  post({ type: 'result', value: bytes });
}

/** Called by a re-run script's initialize() when it reaches the call this thread serves (which marked it reached). */
export function runClosure<R>(fn: WorkerFn<R>, wiring: Wiring): void {
  void runWorker(fn, wiring);
}

/** Entry point from bootstrap.mjs. */
export async function serve(boot: Boot): Promise<void> {
  tsxOnDemand(boot.tsxOnDemand);
  if (boot.mode === 'closure') {
    try {
      await importUserModule(boot.script, closureReached);
    } catch (error) {
      post({ type: 'error', error: serializeError(error), aborted: false });
      return;
    }
    if (!closureReached()) {
      const e = new ModuleError(`${boot.script} ran to its end in worker ${boot.wiring.index} without reaching its initialize() call #${boot.ordinal}; make that call unconditional, or use initialize(config, { module, export })`);
      post({ type: 'error', error: serializeError(e), aborted: false });
    }
    return;
  }
  let fn: unknown;
  try {
    const mod = (await importUserModule(boot.module)) as Record<string, unknown>;
    fn = mod[boot.export];
  } catch (error) {
    const e = new ModuleError(`cannot import worker module ${boot.module}: ${(error as Error).message}`, { cause: error });
    post({ type: 'error', error: serializeError(e), aborted: false });
    return;
  }
  if (typeof fn !== 'function') {
    const e = new ModuleError(`module ${boot.module} has no function export '${boot.export}' (found ${fn === undefined ? 'nothing' : typeof fn})`);
    post({ type: 'error', error: serializeError(e), aborted: false });
    return;
  }
  const args = boot.args;
  await runWorker((allocator) => (fn as WorkerFn<unknown>)(allocator, args), boot.wiring);
}
