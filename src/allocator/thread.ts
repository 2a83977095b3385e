// Starting one weft worker thread: the bootstrap, and whether it needs tsx.

import { Worker } from 'node:worker_threads';
import type { Boot } from './worker.ts';
import type { Wiring } from './allocator.ts';

const BOOTSTRAP = new URL('./bootstrap.mjs', import.meta.url);
const RUNNER = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.js', import.meta.url).href;
const TS = /\.[cm]?tsx?$/;

export type Task =
  | { mode: 'closure'; script: string; ordinal: number; history: unknown[][] }
  | { mode: 'module'; module: string; export: string };

export function startThread(task: Task, wiring: Wiring): Worker {
  const target = task.mode === 'closure' ? task.script : task.module;
  const tsx = TS.test(new URL(target).pathname) || TS.test(RUNNER);
  const boot: Boot = { ...task, wiring, runner: RUNNER, tsx };
  // The closure form re-runs the main script, which typically reads its
  // arguments (Config.fromArgs(process.argv.slice(2))): it must see the same
  // ones as the main thread, or each worker would pick another program.
  const argv = task.mode === 'closure' ? process.argv.slice(2) : [];
  return new Worker(BOOTSTRAP, { workerData: { weft: boot }, argv, name: `weft worker ${wiring.index}` });
}
