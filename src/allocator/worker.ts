// The worker-thread side of initialize: build the allocator from shared
// memory, run the user's function, close its channels, and report the
// outcome to the main thread. Also the entry the bootstrap calls.

import { parentPort } from 'node:worker_threads';
import { WorkerAllocator, type Allocator } from './allocator.ts';
import { Endpoint } from './endpoint.ts';
import type { Wiring } from '../transport/index.ts';
import { codecs } from './codec.ts';
import { FailStopError, CodecError, ModuleError } from '../errors.ts';

/** A worker's function; `args` is the module form's ModuleSpec.args (undefined in the closure form). */
export type WorkerFn<R> = (allocator: Allocator, args?: unknown) => R | Promise<R>;

/** What the main thread tells a worker thread to do; travels in workerData.weft. */
export type Boot =
  | { mode: 'closure'; script: string; ordinal: number; history: unknown[][]; wiring: Wiring; runner: string; tsx: boolean }
  | { mode: 'module'; module: string; export: string; args?: unknown; wiring: Wiring; runner: string; tsx: boolean };

/** Messages from a worker thread to the main thread. */
export type Report =
  | { type: 'ready' }
  /** The return value, encoded by the default codec (see encodeReturn), or as it is where cloning it is the same (see Plain). */
  | { type: 'result'; value: Uint8Array | Plain }
  | { type: 'error'; error: SerializedError; aborted: boolean };

export interface SerializedError {
  name: string;
  message: string;
  stack: string | undefined;
}

// Set when the re-run script reached its initialize call: the script may
// import another copy of weft than the bootstrap did, so this lives on the
// global object rather than in a module variable.
const REACHED = Symbol.for('weft.closureReached');

function post(report: Report): void {
  parentPort!.postMessage(report);
}

// A worker's return value travels by the default codec, like every message:
// join() resolves to the values a channel would deliver, and a value the
// codec refuses fails the worker with a CodecError, not a clone error.
const returns = codecs.msgpack<unknown>();

/** A return value that arrives the same cloned as through msgpack: it skips the codec, so a worker returning nothing never loads msgpackr. */
type Plain = { plain: undefined | null | boolean | number };

function encodeReturn(value: unknown): Uint8Array | Plain {
  // Not -0: msgpack carries it as 0, and a clone would not.
  if (value === undefined || value === null || typeof value === 'boolean' || (typeof value === 'number' && !Object.is(value, -0))) return { plain: value };
  const batcher = returns.batcher();
  batcher.add(value);
  return batcher.take().slice();
}

/** The main thread's side of encodeReturn. */
export function decodeReturn(bytes: Uint8Array | Plain): unknown {
  if (!(bytes instanceof Uint8Array)) return bytes.plain;
  return returns.decode(bytes, 1, true)[0];
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) return { name: error.name, message: error.message, stack: error.stack };
  return { name: 'Error', message: `non-Error thrown: ${String(error)}`, stack: undefined };
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

/** Called by a re-run script's initialize() when it reaches the call this thread serves. */
export function runClosure<R>(fn: WorkerFn<R>, wiring: Wiring): void {
  (globalThis as Record<symbol, unknown>)[REACHED] = true;
  void runWorker(fn, wiring);
}

/** Entry point from bootstrap.mjs. */
export async function serve(boot: Boot): Promise<void> {
  if (boot.mode === 'closure') {
    try {
      await import(boot.script);
    } catch (error) {
      post({ type: 'error', error: serializeError(error), aborted: false });
      return;
    }
    if ((globalThis as Record<symbol, unknown>)[REACHED] !== true) {
      const e = new ModuleError(`${boot.script} ran to its end in worker ${boot.wiring.index} without reaching its initialize() call #${boot.ordinal}; make that call unconditional, or use initialize(config, { module, export })`);
      post({ type: 'error', error: serializeError(e), aborted: false });
    }
    return;
  }
  let fn: unknown;
  try {
    const mod = (await import(boot.module)) as Record<string, unknown>;
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
