// Starting one weft worker thread: the bootstrap, and whether it must
// register tsx; and a cluster process's network thread, the same way.

import { Worker, type WorkerOptions } from 'node:worker_threads';
import type { Boot } from './worker.ts';
import type { Wiring } from '../transport/index.ts';
import type { NetworkBoot } from '../transport/network.ts';
import { mustRegisterTsx, tsxLeftOut, TYPESCRIPT_FILE, workerExecArgv } from '../typescript.ts';

const BOOTSTRAP = new URL('./bootstrap.mjs', import.meta.url);
const EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const RUNNER = new URL(`./worker${EXT}`, import.meta.url).href;
const NETWORK = new URL(`../transport/network${EXT}`, import.meta.url).href;

export type Task = (
  | { mode: 'closure'; script: string; ordinal: number; history: unknown[][] }
  | { mode: 'module'; module: string; export: string; args?: unknown }
) & {
  /** File URLs the worker imports later by itself (operations modules). */
  imports?: readonly string[];
};

/**
 * Whether a worker thread must register tsx before it imports anything:
 * when the code it runs is TypeScript (the entry script, which the closure
 * form re-runs and runtimes default their operations to; the module it
 * starts; a module it will import; weft itself in a checkout) and neither
 * an inherited tsx nor Node's own type stripping runs it (typescript.ts).
 */
function needsTsx(task: Task): boolean {
  const entry = process.argv[1];
  const urls = [task.mode === 'closure' ? task.script : task.module, ...(task.imports ?? []), RUNNER];
  const typescript = [...(entry === undefined ? [] : [entry]), ...urls].find((u) => TYPESCRIPT_FILE.test(pathname(u)));
  return typescript !== undefined && mustRegisterTsx(`a worker thread running TypeScript (${typescript})`);
}

function pathname(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return url;
  }
}

export function startThread(task: Task, wiring: Wiring): Worker {
  const { imports: _, ...rest } = task;
  const boot: Boot = { ...rest, wiring, runner: RUNNER, tsx: needsTsx(task), tsxOnDemand: undefined };
  // The closure form re-runs the main script, which typically reads its
  // arguments (Config.fromArgs(process.argv.slice(2))): it must see the same
  // ones as the main thread, or each worker would pick another program.
  const argv = task.mode === 'closure' ? process.argv.slice(2) : [];
  // A thread that inherits this process's tsx has nothing left for it to
  // register: a second registration would cure nothing, only re-run modules.
  return spawn((leftOut) => ({ workerData: { weft: { ...boot, tsxOnDemand: leftOut ? tsxLeftOut() : undefined } }, argv, name: `weft worker ${wiring.index}` }));
}

/**
 * Starts a cluster process's network thread (src/transport/network.ts). It
 * runs weft's code only, so it needs tsx only where weft is TypeScript.
 */
export function startNetworkThread(boot: NetworkBoot, process: number): Worker {
  const tsx = EXT === '.ts' && mustRegisterTsx(`a cluster's network thread (${NETWORK})`);
  return spawn(() => ({ workerData: { weft: { ...boot, runner: NETWORK, tsx } }, name: `weft network ${process}` }));
}

/** Starts a thread with `options(leftOut)`: leftOut when the thread is given this process's flags less its tsx (workerExecArgv). */
function spawn(options: (leftOut: boolean) => WorkerOptions): Worker {
  const execArgv = inheritOnly ? undefined : workerExecArgv();
  if (execArgv === undefined) return new Worker(BOOTSTRAP, options(false));
  try {
    return new Worker(BOOTSTRAP, { ...options(true), execArgv });
  } catch (error) {
    // Node refuses per-process flags given explicitly, which it leaves out
    // by itself when a thread inherits them (a `node --test` child carries
    // several): such a process's threads inherit, tsx included.
    if ((error as { code?: unknown }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw error;
    inheritOnly = true;
    return new Worker(BOOTSTRAP, options(false));
  }
}

/** This process's flags cannot be given to a thread explicitly (see startThread). */
let inheritOnly = false;
