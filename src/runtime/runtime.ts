// The orchestrator: runs directives on a backend. The backend decides where
// tasks run (this thread, worker threads, other processes); everything a
// directive means (order, folding, retries, abort) is decided here.

import { availableParallelism } from 'node:os';
import type { Backend } from './backend.ts';
import { IndexedStream, Literal, type RunOptions } from './directives.ts';
import { execute, type Plan } from './execution.ts';
import { LoopbackBackend } from './loopback.ts';
import type { Operation } from './registry.ts';
import { DEFAULT_RETRY, type RetryPolicy } from './retry.ts';

export interface RuntimeOptions {
  /** Retry policy for transient errors; default: 3 retries, exponential from 10 ms, capped at 1 s. */
  retry?: RetryPolicy;
  /** Per-task timeout in ms; a timeout counts as a transient error. Default: none. */
  timeoutMs?: number;
  /** Most input items of one directive in flight at once. Default: 4096. */
  maxInFlight?: number;
}

export interface InMemoryOptions extends RuntimeOptions {
  /** Worker threads. Default: `os.availableParallelism()`. */
  workers?: number;
  /**
   * The module(s) whose `defineOperation` calls the workers must run, as URL
   * or path. Default: the main script (`process.argv[1]`).
   */
  operations?: string | URL | readonly (string | URL)[];
}

const DEFAULT_MAX_IN_FLIGHT = 4096;

export class Runtime implements AsyncDisposable {
  private readonly options: RuntimeOptions;

  /** Wraps any backend, such as one written for another transport. */
  constructor(
    readonly backend: Backend,
    options: RuntimeOptions = {},
  ) {
    this.options = options;
  }

  /** Runs tasks on this thread: for tests, and for programs too small for threads. */
  static local(options: RuntimeOptions = {}): Runtime {
    return new Runtime(new LoopbackBackend(), options);
  }

  /** Runs tasks on worker threads that import the `operations` module(s). */
  static async inMemory(options: InMemoryOptions = {}): Promise<Runtime> {
    const operations = options.operations ?? process.argv[1];
    const modules = operations === undefined ? [] : Array.isArray(operations) ? operations : [operations];
    // Loaded on demand: a program on `Runtime.local()` or on another backend
    // never pulls in the thread allocator.
    const { ThreadBackend } = await import('./thread-backend.ts');
    const backend = await ThreadBackend.start({ workers: options.workers ?? availableParallelism(), modules });
    return new Runtime(backend, options);
  }

  /** Runs a directive's plan over `source`; directives call this from their `run`. */
  execute(plan: Plan, source: Iterable<unknown> | AsyncIterable<unknown>, options: RunOptions = {}): Promise<unknown> {
    return execute(this.backend, plan, source, {
      signal: options.signal,
      retry: options.retry ?? this.options.retry ?? DEFAULT_RETRY,
      timeoutMs: options.timeoutMs ?? this.options.timeoutMs,
      maxInFlight: options.maxInFlight ?? this.options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
      onProgress: options.onProgress,
    });
  }

  /** One operation on one input. */
  call<I, O>(operation: Operation<I, O>, input: I, options?: RunOptions): Promise<O> {
    return new Literal(operation, input).run(this, options);
  }

  /** One operation on each input; outputs in input order. */
  fanout<I, O>(operation: Operation<I, O>, inputs: Iterable<I> | AsyncIterable<I>, options?: RunOptions): Promise<O[]> {
    return IndexedStream.from(inputs).map(operation).run(this, options);
  }

  /** Stops the workers; running directives reject with `RuntimeClosedError`. */
  close(): Promise<void> {
    return this.backend.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
