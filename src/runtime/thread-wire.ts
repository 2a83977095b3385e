// Channels and messages between the thread backend's host and its worker
// threads. Shared by both ends so the two cannot disagree.

import type { Task, TaskResult } from './task.ts';

/** Host to every worker: the one stable task channel. */
export const TASK_CHANNEL = 0;

/**
 * Worker `w` to host: channel `RESULT_CHANNEL_BASE + w`. One channel per
 * worker tells the host which worker a result came from without a field in
 * every result, and a replacement worker gets its own channel back.
 */
export const RESULT_CHANNEL_BASE = 1;

/** First message to a (new) worker: the operations modules to import, as URL strings. */
export interface Hello {
  readonly hello: readonly string[];
}

/** A worker's answer to `Hello` once its modules are imported. */
export interface Ready {
  readonly ready: 1;
}

export type HostMessage = Hello | Task;
export type WorkerMessage = Ready | TaskResult;
