// Directives: descriptions of work over indexed inputs, run by a Runtime.
// Building one does nothing; `run` hands its plan to the runtime, which
// leases a result channel and drives it.

import { ArgumentError } from './errors.ts';
import type { Plan } from './execution/plan.ts';
import type { Progress } from './execution/progress.ts';
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
  /**
   * Called with task counts whenever they change, and with a task's own
   * report (`progress.task`: its index, attempt and detail) whenever a task
   * calls `ctx.progress(detail)`.
   */
  onProgress?: (progress: Readonly<Progress>) => void;
  /** Overrides the runtime's `cancelGraceMs` for this directive's cancelled tasks. */
  cancelGraceMs?: number;
}

/** Options of `IndexedStream.stream`: those of `run`, and the order of the pairs. */
export interface StreamOptions extends RunOptions {
  /** Yield in input order (an output waits for those before it); default: as tasks complete. */
  ordered?: boolean;
}

/** A directive's inputs: anything `for` or `for await` can walk. */
export type Source<T> = Iterable<T> | AsyncIterable<T>;

/** How a runtime runs a directive's plan over its source: to its outcome, or as a stream of `[index, output]`. */
export interface Runner {
  run(plan: Plan, source: Source<unknown>, options: RunOptions): Promise<unknown>;
  /** Throws on bad options, at once. */
  stream(plan: Plan, source: Source<unknown>, options: StreamOptions): AsyncIterableIterator<[number, unknown]>;
}

// Each runtime's runner, set as it is made. A directive reaches its runtime
// here rather than through a method, so running a bare plan is nothing a
// user can call.
const runners = new WeakMap<Runtime, Runner>();

export function enroll(runtime: Runtime, runner: Runner): void {
  runners.set(runtime, runner);
}

function runnerOf(runtime: Runtime, what: string): Runner {
  const runner = runners.get(runtime);
  if (runner === undefined) throw new ArgumentError(`${what} needs a Runtime (Runtime.local(), .inMemory(), .cluster() or .amqp()), got ${shown(runtime)}`);
  return runner;
}

function runOn(runtime: Runtime, plan: Plan, source: Source<unknown>, options: RunOptions): Promise<unknown> {
  try {
    return runnerOf(runtime, 'run').run(plan, source, options);
  } catch (error) {
    return Promise.reject(error);
  }
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
    checkDefined('map', 'operation', 'defineOperation', operation);
    return new IndexedStream<O>(this.source, [...this.stages, operation]);
  }

  fold(monoid: Monoid<T>): Fold<T> {
    checkDefined('fold', 'monoid', 'defineMonoid', monoid);
    return foldOf(this.source, this.stages, monoid);
  }

  run(runtime: Runtime, options: RunOptions = {}): Promise<T[]> {
    return runOn(runtime, { stages: this.stages }, this.source, options) as Promise<T[]>;
  }

  /**
   * Runs the directive as its outputs are consumed: `[index, output]` pairs
   * as tasks complete (in input order with `ordered: true`), pulled through
   * the same bounded window as `run` (pairs not yet taken count in it).
   * Leaving the loop early (break, return, a throw) ends the directive and
   * cancels its running tasks. The run starts at the first `next()`.
   */
  stream(runtime: Runtime, options: StreamOptions = {}): AsyncIterableIterator<[index: number, output: T]> {
    return runnerOf(runtime, 'stream').stream({ stages: this.stages }, this.source, options) as AsyncIterableIterator<[number, T]>;
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
    checkDefined('runtime.call (a Literal)', 'operation', 'defineOperation', this.operation);
    const [output] = (await runOn(runtime, { stages: [this.operation] }, [this.input], options)) as O[];
    return output as O;
  }
}

/** An operation or monoid as defineOperation/defineMonoid made it, or an ArgumentError naming what came instead. */
function checkDefined(where: string, kind: 'operation' | 'monoid', maker: string, value: unknown): void {
  const v = value as Partial<Operation> | null | undefined;
  if (v === null || typeof v !== 'object' || v.kind !== kind || typeof v.name !== 'string') {
    throw new ArgumentError(`${where} needs ${kind === 'operation' ? 'an operation' : 'a monoid'} made by ${maker}, got ${shown(value)}`);
  }
}
