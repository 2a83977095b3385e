// Directives: descriptions of work over indexed inputs, run by a Runtime.
// Building one does nothing; `run` hands its plan to the runtime, which
// leases a result channel and drives it.

import { ArgumentError } from './errors.ts';
import type { Plan, Progress } from './execution/execution.ts';
import { checkSource, shown } from './options.ts';
import type { Monoid, Operation } from './registry.ts';
import type { RetryPolicy } from './retry.ts';
import type { Runtime } from '../runtime.ts';

export interface RunOptions {
  /** Aborting rejects this directive with `AbortError` and drops its queued tasks; others go on. */
  signal?: AbortSignal;
  /** Overrides the runtime's retry policy for this directive. */
  retry?: RetryPolicy;
  /** Overrides the runtime's per-task timeout (ms) for this directive. */
  timeoutMs?: number;
  /** Overrides the runtime's bound on input items in flight. */
  maxInFlight?: number;
  /** Called with task counts whenever they change. */
  onProgress?: (progress: Readonly<Progress>) => void;
}

/** A directive's inputs: anything `for` or `for await` can walk. */
export type Source<T> = Iterable<T> | AsyncIterable<T>;

/** How a runtime runs a directive's plan over its source. */
export type Runner = (plan: Plan, source: Source<unknown>, options: RunOptions) => Promise<unknown>;

// Each runtime's runner, set as it is made. A directive reaches its runtime
// here rather than through a method, so running a bare plan is nothing a
// user can call.
const runners = new WeakMap<Runtime, Runner>();

export function enroll(runtime: Runtime, runner: Runner): void {
  runners.set(runtime, runner);
}

function runOn(runtime: Runtime, plan: Plan, source: Source<unknown>, options: RunOptions): Promise<unknown> {
  const runner = runners.get(runtime);
  if (runner === undefined) {
    return Promise.reject(new ArgumentError(`run needs a Runtime (Runtime.local(), .inMemory(), .cluster() or .amqp()), got ${shown(runtime)}`));
  }
  return runner(plan, source, options);
}

// Fold's constructor is private: `IndexedStream.fold` makes one through this.
let foldOf: <T>(source: Source<unknown>, stages: readonly Operation[], monoid: Monoid<T>) => Fold<T>;

/**
 * A stream of inputs, each known by its index. `map` chains operations;
 * `run` resolves to the outputs in input order; `fold` reduces them.
 */
export class IndexedStream<T> {
  private constructor(
    private readonly source: Source<unknown>,
    private readonly stages: readonly Operation[],
  ) {}

  /** The source is pulled lazily, so it may be an async iterable larger than memory. */
  static from<T>(source: Source<T>): IndexedStream<T> {
    checkSource(source);
    return new IndexedStream<T>(source, []);
  }

  map<O>(operation: Operation<T, O>): IndexedStream<O> {
    return new IndexedStream<O>(this.source, [...this.stages, operation]);
  }

  fold(monoid: Monoid<T>): Fold<T> {
    return foldOf(this.source, this.stages, monoid);
  }

  run(runtime: Runtime, options: RunOptions = {}): Promise<T[]> {
    return runOn(runtime, { stages: this.stages }, this.source, options) as Promise<T[]>;
  }
}

/** The fold of an `IndexedStream` with a monoid: neighbouring ranges are combined as they complete. */
export class Fold<T> {
  static {
    foldOf = (source, stages, monoid) => new Fold(source, stages, monoid);
  }

  private constructor(
    private readonly source: Source<unknown>,
    private readonly stages: readonly Operation[],
    private readonly monoid: Monoid<T>,
  ) {}

  /** Resolves to the fold of all outputs in index order; `monoid.empty()` for no input. */
  run(runtime: Runtime, options: RunOptions = {}): Promise<T> {
    return runOn(runtime, { stages: this.stages, fold: this.monoid }, this.source, options) as Promise<T>;
  }
}

/** One operation on one value: `new Literal(FibAt, 10).run(runtime)`. */
export class Literal<I, O> {
  constructor(
    readonly operation: Operation<I, O>,
    readonly input: I,
  ) {}

  async run(runtime: Runtime, options: RunOptions = {}): Promise<O> {
    const [output] = (await runOn(runtime, { stages: [this.operation] }, [this.input], options)) as O[];
    return output as O;
  }
}
