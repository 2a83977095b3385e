// The orchestrator: runs directives on a backend. The backend decides where
// tasks run (this thread, worker threads, other processes); everything a
// directive means (order, folding, retries, abort) is decided here.

import type { Config } from '../allocator/index.ts';
import { inClosureWorker, reachedStart, testRunner } from '../allocator/internal.ts';
import { ModuleError } from '../errors.ts';
import type { AmqpBackendOptions } from './backends/amqp/shared/options.ts';
import type { Backend, BackendStats } from './core/backend.ts';
import { enroll, IndexedStream, Literal, type RunOptions, type StreamOptions } from './core/directives.ts';
import type { ExecutionOptions, Plan } from './core/execution/plan.ts';
import { checkBoolean, checkPositiveInteger, checkRunOptions, checkSharedOptions, checkStreamOptions } from './core/options.ts';
import type { Operation } from './core/registry.ts';
import { DEFAULT_RETRY, type RetryPolicy } from './core/retry.ts';
import { MetricsRecorder, type RuntimeMetrics } from './observability/metrics.ts';
import { directiveChannel, type DirectiveMessage } from './observability/channels.ts';

export interface RuntimeOptions {
  /** Retry policy for transient errors; default: 3 retries, exponential from 10 ms, capped at 1 s. */
  retry?: RetryPolicy;
  /** Per-task timeout in ms; a timeout counts as a transient error. Default: none. */
  timeoutMs?: number;
  /** Most input items of one directive in flight at once (the window is smaller for costly tasks: docs/runtime.md). Default: 4096. */
  maxInFlight?: number;
  /**
   * How long a cancelled task (its directive aborted or failed, its timeout
   * passed, a stream's consumer left) has to return before it is stopped by
   * force, in ms: its thread terminated and replaced (`Runtime.inMemory`),
   * or given up on where it cannot be (docs/runtime.md, "Cancellation").
   * Default 1000.
   */
  cancelGraceMs?: number;
  /**
   * Record how long tasks run and wait (`Runtime.metrics()`'s `runTime`,
   * `waitTime` and per-worker figures); counts are kept either way.
   * Default true.
   */
  recordTiming?: boolean;
}

export interface InMemoryOptions extends RuntimeOptions {
  /** Worker threads. Default: `os.availableParallelism()`. */
  workers?: number;
  /**
   * The module(s) whose `defineOperation` calls the workers must run, as URL
   * or path. Default: the main script (`process.argv[1]`).
   */
  operations?: string | URL | readonly (string | URL)[];
  /**
   * Async tasks one thread may have awaiting (I/O-bound operations overlap
   * this many deep), on top of the few tasks queued on it. Default 64.
   */
  concurrency?: number;
  /** The channels' bound on one frame, in bytes; an output over it fails its task (OutputError). Default 256 MiB. */
  maxMessageBytes?: number;
}

export interface ClusterRuntimeOptions extends RuntimeOptions {
  /** As for `Runtime.inMemory`; each process resolves them on its own. */
  operations?: string | URL | readonly (string | URL)[];
}

/** `Runtime.amqp`: the broker, queue names, batching and reconnection (see docs/amqp.md). */
export interface AmqpRuntimeOptions extends RuntimeOptions, AmqpBackendOptions {}

const DEFAULT_MAX_IN_FLIGHT = 4096;

type Engine = typeof import('./engine.ts');
let engine: Promise<Engine> | undefined;
/** The directives' machinery, loaded once, when the first runtime runs something (engine.ts). */
const loadEngine = (): Promise<Engine> => (engine ??= import('./engine.ts'));

/** `Runtime.local`'s backend, made when the runtime first runs something. */
const LOCAL = (cancelGraceMs: number | undefined) => (e: Engine): Backend => new e.LoopbackBackend(cancelGraceMs);

function operationsModules(operations: string | URL | readonly (string | URL)[] | undefined): readonly (string | URL)[] {
  const modules = operations ?? process.argv[1];
  if (modules === undefined) return [];
  const runner = operations === undefined ? testRunner(modules as string) : undefined;
  if (runner !== undefined) {
    throw new ModuleError(`the workers import the main script for its operations when \`operations\` is not given, and under ${runner} that is the test runner's; pass { operations: <the module that defines them> } (README: Testing code that uses weft)`);
  }
  return typeof modules === 'string' || modules instanceof URL ? [modules] : modules;
}

/** The options every `Runtime.*` takes, checked before anything starts. */
function checkRuntimeOptions(options: RuntimeOptions): void {
  checkSharedOptions('runtime option', options);
  checkBoolean('runtime option', 'recordTiming', options.recordTiming);
}

// Reach into a Runtime from this module only (the class sets them).
let wrap: (backend: Backend, options: RuntimeOptions, kind: string) => Runtime;
let unwrap: (runtime: Runtime) => Backend;

/** A runtime over `backend`: for tests of what the runtime makes of a backend's behaviour. */
export function runtimeOver(backend: Backend, options: RuntimeOptions = {}): Runtime {
  return wrap(backend, options, 'custom');
}

/** The backend a runtime runs on: for tests that look at it. */
export function backendOf(runtime: Runtime): Backend {
  return unwrap(runtime);
}

/** The `weft:directive` message of a directive of `plan` on a backend of `kind`. */
function directiveMessage(plan: Plan, kind: string): DirectiveMessage {
  return { operations: plan.stages.map((stage) => stage.name), fold: plan.fold?.name, backend: kind, tasks: 0 };
}

/**
 * The orchestrator: runs directives (`IndexedStream`, `Fold`, `Literal`,
 * `call`, `fanout`) on the workers of one backend. Made by `Runtime.local`,
 * `inMemory`, `cluster` or `amqp`.
 */
export class Runtime implements AsyncDisposable {
  /** Undefined until a `Runtime.local` first runs something (see LOCAL). */
  #backend: Backend | undefined;
  readonly #make: ((e: Engine) => Backend) | undefined;
  readonly #metrics: MetricsRecorder;

  static {
    wrap = (backend, options, kind) => new Runtime(backend, options, kind);
    unwrap = (runtime) => {
      if (runtime.#backend === undefined) throw new Error('a local runtime has no backend before it runs something');
      return runtime.#backend;
    };
  }

  private constructor(given: Backend | ((e: Engine) => Backend), options: RuntimeOptions, kind: string) {
    checkRuntimeOptions(options);
    const made = typeof given === 'function' ? undefined : given;
    this.#backend = made;
    this.#make = typeof given === 'function' ? given : undefined;
    const backendOn = (e: Engine): Backend => this.#backendOn(e);
    const metrics = (this.#metrics = new MetricsRecorder(options.recordTiming ?? true, made?.workerName?.bind(made)));
    const executionOptions = (run: RunOptions): ExecutionOptions => ({
      signal: run.signal,
      retry: run.retry ?? options.retry ?? DEFAULT_RETRY,
      timeoutMs: run.timeoutMs ?? options.timeoutMs,
      maxInFlight: run.maxInFlight ?? options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
      onProgress: run.onProgress,
      cancelGraceMs: run.cancelGraceMs ?? options.cancelGraceMs,
      metrics,
    });
    enroll(this, {
      run: (plan, source, run) => {
        try {
          checkRunOptions(run);
        } catch (error) {
          return Promise.reject(error);
        }
        const execution = executionOptions(run);
        if (!directiveChannel.hasSubscribers) return loadEngine().then((e) => e.execute(backendOn(e), plan, source, execution));
        const message = directiveMessage(plan, kind);
        return directiveChannel.tracePromise(() => loadEngine().then((e) => e.execute(backendOn(e), plan, source, { ...execution, trace: message })), message);
      },
      stream: (plan, source, run: StreamOptions) => {
        checkStreamOptions(run);
        const execution = executionOptions(run);
        // A stream starts at its first next(), which is async: the engine loads then.
        let inner: Promise<InstanceType<Engine['OutputStream']>> | undefined;
        const open = () => (inner ??= loadEngine().then((e) => new e.OutputStream(backendOn(e), plan, source, execution, run.ordered ?? false, () => directiveMessage(plan, kind))));
        return {
          [Symbol.asyncIterator]() {
            return this;
          },
          next: () => open().then((stream) => stream.next()),
          return: () => open().then((stream) => stream.return()),
        };
      },
    });
  }

  #backendOn(e: Engine): Backend {
    return (this.#backend ??= this.#make!(e));
  }

  /** Runs tasks on this thread: for tests, and for programs too small for threads. */
  static local(options: RuntimeOptions = {}): Runtime {
    checkRuntimeOptions(options);
    return new Runtime(LOCAL(options.cancelGraceMs), options, 'local');
  }

  /** Runs tasks on worker threads that import the `operations` module(s). */
  static async inMemory(options: InMemoryOptions = {}): Promise<Runtime> {
    if (reachedStart()) return new Promise<never>(() => {});
    checkRuntimeOptions(options);
    checkPositiveInteger('runtime option', 'workers', options.workers);
    checkPositiveInteger('runtime option', 'concurrency', options.concurrency);
    checkPositiveInteger('runtime option', 'maxMessageBytes', options.maxMessageBytes);
    // The closure form re-runs the main script in each worker thread, and
    // this call comes before the initialize() the thread serves: its
    // directives run here, as the rest of the script's top level does,
    // rather than on a pool of threads per worker.
    if (inClosureWorker()) return new Runtime(LOCAL(options.cancelGraceMs), options, 'local');
    // Loaded on demand: a program on `Runtime.local()` or on another backend
    // never pulls in the thread allocator.
    const { ThreadBackend } = await import('./backends/threads/thread-backend.ts');
    const backend = await ThreadBackend.start({
      // node:os when it is needed: not every thread that loads weft starts a runtime.
      workers: options.workers ?? process.getBuiltinModule('node:os').availableParallelism(),
      modules: operationsModules(options.operations),
      concurrency: options.concurrency,
      cancelGraceMs: options.cancelGraceMs,
      maxMessageBytes: options.maxMessageBytes,
    });
    return new Runtime(backend, options, 'threads');
  }

  /**
   * Runs on a weft cluster: call it with the same config in every process
   * (`Config.fromArgs()` under `weft launch`). In process 0 it resolves to
   * the orchestrator; in the others it serves tasks until that runtime is
   * closed, then resolves to undefined. Worker 0 relays tasks, so the
   * cluster needs at least 2 workers. A lost serving process is survived
   * (its tasks run on the others); losing process 0, or a worker that
   * throws, fails every running directive.
   */
  static async cluster(config: Config, options: ClusterRuntimeOptions = {}): Promise<Runtime | undefined> {
    if (reachedStart()) return new Promise<never>(() => {});
    checkRuntimeOptions(options);
    const { ClusterBackend } = await import('./backends/cluster/cluster-backend.ts');
    const backend = await ClusterBackend.start(config, operationsModules(options.operations), options.cancelGraceMs);
    return backend === undefined ? undefined : new Runtime(backend, options, 'cluster');
  }

  /**
   * Runs tasks on AMQP (RabbitMQ) workers: processes running
   * `weft worker --amqp <url> --operations <module>` or `WorkerRuntime.amqp`.
   * Resolves once connected; the workers may start before or after.
   */
  static async amqp(options: AmqpRuntimeOptions): Promise<Runtime> {
    if (reachedStart()) return new Promise<never>(() => {});
    checkRuntimeOptions(options);
    const { AmqpBackend } = await import('./backends/amqp/orchestrator/backend.ts');
    return new Runtime(await AmqpBackend.start(options), options, 'amqp');
  }

  /** One operation on one input. */
  call<I, O>(operation: Operation<I, O>, input: I, options?: RunOptions): Promise<O> {
    return new Literal(operation, input).run(this, options);
  }

  /** One operation on each input; outputs in input order. */
  fanout<I, O>(operation: Operation<I, O>, inputs: Iterable<I> | AsyncIterable<I>, options?: RunOptions): Promise<O[]> {
    return IndexedStream.from(inputs).map(operation).run(this, options);
  }

  /** What the backend has lived through so far: lost processes, tasks dispatched again, spare processes joined. */
  stats(): BackendStats {
    return this.#backend?.stats?.() ?? { lostProcesses: [], redispatched: 0, joinedProcesses: [] };
  }

  /**
   * What the directives run here have done since the runtime started (or
   * since `resetMetrics()`): per operation, tasks completed, failed and
   * retried, and summaries of their run and wait times in ms; per worker,
   * its tasks and utilization. Prometheus text: `prometheusText(metrics)`.
   */
  metrics(): RuntimeMetrics {
    return this.#metrics.snapshot();
  }

  /** Starts the metrics afresh: counts and times from now on. */
  resetMetrics(): void {
    this.#metrics.reset();
  }

  /** Stops the workers; running directives reject with `RuntimeClosedError`. */
  close(): Promise<void> {
    // A local runtime that never ran closes its backend too: what it runs later is refused as closed.
    if (this.#backend !== undefined) return this.#backend.close();
    return loadEngine().then((e) => this.#backendOn(e).close());
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
