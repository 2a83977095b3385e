// initialize() for Config.thread and Config.process: one process's worker
// threads on one fabric of rings, and the guards that follow them. Loaded
// when a program launches, so that a worker thread re-running the program
// (which imports initialize) never loads it.

import { peersOf, type Settings } from './config.ts';
import { Guards, type WorkerGuards } from './guards.ts';
import { buildFabric, Control, Doorbell } from '../transport/index.ts';
import { startThread, type Task } from './thread.ts';

export async function launchThreads<R>(config: Exclude<Settings, { kind: 'cluster' }>, task: Task): Promise<WorkerGuards<R>> {
  const fabric = buildFabric(peersOf(config), config.options.ringBytes, config.options);
  const workers = fabric.wirings.map((w) => startThread(task, w));
  const guards = new Guards<R>(workers, new Control(fabric.control), fabric.bells.map((b) => new Doorbell(b)));
  await guards.ready;
  return guards.handle;
}
