// Starting one weft worker thread: the bootstrap, and whether it needs tsx.

import { Worker } from 'node:worker_threads';
import type { Boot } from './worker.ts';
import type { Wiring } from '../transport/wiring.ts';

const BOOTSTRAP = new URL('./bootstrap.mjs', import.meta.url);
const RUNNER = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url).href;
const TS = /\.[cm]?tsx?$/;

export type Task = (
  | { mode: 'closure'; script: string; ordinal: number; history: unknown[][] }
  | { mode: 'module'; module: string; export: string; args?: unknown }
) & {
  /** File URLs the worker imports later by itself (operations modules). */
  imports?: readonly string[];
};

/**
 * Whether a worker thread must register tsx before it imports anything.
 * Node 20 does not carry the main thread's loader into worker threads, so
 * the worker needs its own whenever the user's code is TypeScript: the entry
 * script (the closure form re-runs it, and runtimes default their operations
 * to it), the module it starts, or a module it will import. Weft's own file
 * extension counts only in a checkout, where weft itself is TypeScript; an
 * installed weft is JavaScript and says nothing of the user's code.
 */
function needsTsx(task: Task): boolean {
  // A Node that strips types itself (23.6 and later), running an installed
  // (JavaScript) weft from a main thread that did without tsx, needs no tsx
  // in its workers either: registering it costs each worker about 0.1 s.
  if ((process.features as { typescript?: unknown }).typescript && !TS.test(RUNNER) && !process.execArgv.some((a) => a.includes('tsx'))) return false;
  const entry = process.argv[1];
  const urls = [task.mode === 'closure' ? task.script : task.module, ...(task.imports ?? []), RUNNER];
  return (entry !== undefined && TS.test(entry)) || urls.some((u) => TS.test(pathname(u)));
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
  const boot: Boot = { ...rest, wiring, runner: RUNNER, tsx: needsTsx(task) };
  // The closure form re-runs the main script, which typically reads its
  // arguments (Config.fromArgs(process.argv.slice(2))): it must see the same
  // ones as the main thread, or each worker would pick another program.
  const argv = task.mode === 'closure' ? process.argv.slice(2) : [];
  return new Worker(BOOTSTRAP, { workerData: { weft: boot }, argv, name: `weft worker ${wiring.index}` });
}
