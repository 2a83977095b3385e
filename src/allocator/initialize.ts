// initialize(config, fn): run fn(allocator) once per worker thread.
//
// The closure form re-runs the user's main script in every worker thread,
// the way Node's cluster and MPI re-run one program everywhere: that is
// what makes the script's imports and top-level values usable inside fn.
// In a worker, the script's k-th call to initialize() (k = the call the main
// thread is serving) runs fn; earlier calls resolve to guards whose join()
// replays the results the main thread already has. Top-level side effects
// of the script therefore happen once per worker too (docs/semantics.md).

import { isMainThread, workerData } from 'node:worker_threads';
import { checkConfig, type Config } from './config.ts';
import type { WorkerGuards } from './guards.ts';
import { checkLaunched } from './launched.ts';
import { moduleUrl } from './module-url.ts';
import type { Task } from './thread.ts';
import type { Boot, WorkerFn } from './worker.ts';
import { ModuleError } from '../errors.ts';
import { importUserModule } from '../typescript.ts';

export interface ModuleSpec {
  /** The module to import in each worker: a file URL, or a path. */
  module: URL | string;
  /** The function export to call with the allocator. Default 'default'. */
  export?: string;
  /** Passed to that function as its second argument in every worker (copied by structured clone). */
  args?: unknown;
}

// While a worker thread imports a module for its operations (the main
// script, by default), this global holds a function that the module's
// first initialize() or Runtime.* call invokes (see reachedStart). On the
// global object, not in a module variable, because the module may import
// another copy of weft than the worker runs.
const LOADING = Symbol.for('weft.loadingOperations');

/**
 * Imports `url` for what it defines: resolves once it is imported, or once
 * it reaches its first initialize() or Runtime.* call at top level, as a
 * main script does; what it defines above that call is defined then.
 */
export async function importUntilStart(url: string): Promise<void> {
  const global = globalThis as Record<symbol, unknown>;
  let started = false;
  const reached = new Promise<void>((resolve) => {
    global[LOADING] = (): void => {
      started = true;
      resolve();
    };
  });
  try {
    await Promise.race([importUserModule(url, () => started), reached]);
  } finally {
    delete global[LOADING];
  }
}

/**
 * Called by initialize() and `Runtime.*`: true when this call is reached
 * while importUntilStart imports the module. The caller must start
 * nothing and never resolve, so that the rest of the script runs only
 * where it was started.
 */
export function reachedStart(): boolean {
  const signal = (globalThis as Record<symbol, unknown>)[LOADING];
  if (typeof signal !== 'function') return false;
  (signal as () => void)();
  return true;
}

/**
 * True in a worker thread of the closure form, which re-runs the main
 * script up to the initialize() call it serves: a runtime the script
 * starts before that call runs its directives on this thread.
 */
export function inClosureWorker(): boolean {
  return boot()?.mode === 'closure';
}

// Set when the re-run script reached the initialize() call its thread
// serves, before that thread's runner is loaded to run it: serve() tells a
// script that ended without reaching it by this. On the global object
// because the script may import another copy of weft than the bootstrap did.
const REACHED = Symbol.for('weft.closureReached');

/** In a worker thread of the closure form: whether its script reached the initialize() call the thread serves. */
export function closureReached(): boolean {
  return (globalThis as Record<symbol, unknown>)[REACHED] === true;
}

let closureCalls = 0;
const history: unknown[][] = [];

function boot(): Boot | undefined {
  if (isMainThread) return undefined;
  return (workerData as { weft?: Boot } | null)?.weft;
}

export async function initialize<R>(config: Config, logic: WorkerFn<R> | ModuleSpec): Promise<WorkerGuards<R>> {
  if (reachedStart()) return new Promise<never>(() => {});
  checkLaunched();
  if (typeof logic === 'function') {
    const ordinal = closureCalls++;
    const b = boot();
    if (b?.mode === 'closure') {
      if (ordinal === b.ordinal) {
        (globalThis as Record<symbol, unknown>)[REACHED] = true;
        // On demand: the bootstrap loaded the runner already (one copy of
        // weft); what the main thread needs to launch threads, and the
        // runner's rings and channels, stay out of both sides' start-up.
        const { runClosure } = await import('./worker.ts');
        runClosure(logic, b.wiring);
        // This thread serves the call: the rest of the script must not run here.
        return new Promise<never>(() => {});
      }
      return replay<R>(b.history[ordinal]);
    }
    const task: Task = { mode: 'closure', script: mainScript(), ordinal, history: history.slice() };
    const guards = await launch<R>(config, task);
    void guards.join().then((r) => (history[ordinal] = r), () => {});
    return guards;
  }
  if (logic === null || typeof logic !== 'object' || !('module' in logic)) {
    throw new ModuleError('initialize needs a function or { module, export }');
  }
  return initializeModule<R>(config, logic);
}

/** The module form, for weft's own runtimes: `imports` are modules the workers will import by themselves. */
export function initializeModule<R>(config: Config, spec: ModuleSpec, imports: readonly string[] = []): Promise<WorkerGuards<R>> {
  return launch<R>(config, { mode: 'module', module: moduleUrl(spec.module), export: spec.export ?? 'default', args: spec.args, imports });
}

const EVAL_FLAG = /^(-e|--eval|-p|--print)(=|$)/;

function mainScript(): string {
  // Node's own flags are in execArgv, not argv: with --eval, argv[1] is the
  // first user argument (if any), and with a script read from stdin (`node -`)
  // it is '-'. Neither names a file a worker could re-run.
  const script = process.argv[1];
  if (script === undefined || script === '' || script === '-' || process.execArgv.some((a) => EVAL_FLAG.test(a))) {
    throw new ModuleError('initialize(config, fn) re-runs the main script in each worker, and this process has none (REPL, --eval or stdin); use the module form, initialize(config, { module, export })');
  }
  const runner = testRunner(script);
  if (runner !== undefined) {
    throw new ModuleError(`initialize(config, fn) re-runs the main script in each worker, and under ${runner} that would re-run the test runner; use the module form, initialize(config, { module, export }) (README: Testing code that uses weft)`);
  }
  return moduleUrl(script);
}

/**
 * The test runner whose script `script` is, if any: re-running it in a
 * worker thread would run the tests again there (node:test reports them
 * twice, or cancelled) or start another runner (vitest's pool refuses).
 * A main script inside node_modules is a tool's, never the user's program.
 */
export function testRunner(script: string): string | undefined {
  if (/[\\/]node_modules[\\/]/.test(script)) return /[\\/]vitest[\\/]/.test(script) ? 'vitest' : `a tool's script (${script})`;
  // Undocumented but present since Node 0.x: the built-in modules loaded so
  // far. node:test loaded means this script registers tests.
  const loaded = (process as { moduleLoadList?: string[] }).moduleLoadList;
  if (loaded?.some((m) => m.includes('test_runner'))) return 'node --test (node:test)';
  return undefined;
}

async function launch<R>(given: Config, task: Task): Promise<WorkerGuards<R>> {
  const config = checkConfig(given);
  // Loaded on demand: a program of threads in one process never loads the
  // mesh, the router and their sockets.
  if (config.kind === 'cluster') return (await import('./cluster.ts')).launchCluster<R>(config, task);
  // Also on demand: a worker thread re-running the script never launches.
  return (await import('./launch.ts')).launchThreads<R>(config, task);
}

/** In a worker: an earlier closure call, already served by the main thread. */
function replay<R>(results: unknown[] | undefined): Promise<WorkerGuards<R>> {
  const known = results as R[] | undefined;
  const done = (): Promise<void> => Promise.resolve();
  return Promise.resolve({
    join: () => (known !== undefined ? Promise.resolve(known) : new Promise<R[]>(() => {})),
    close: done,
    [Symbol.asyncDispose]: done,
    refuseJoins: () => {},
  });
}
