// Channels and messages between a coordinator (the thread backend's host,
// or the cluster backend's gateway) and the workers it feeds over allocator
// channels. Shared by both ends so they cannot disagree.

import type { Task, TaskResult } from './task.ts';

/** Coordinator to every worker: the one stable task channel. */
export const TASK_CHANNEL = 0;

/**
 * Worker `w` to coordinator: channel `RESULT_CHANNEL_BASE + w`. One channel
 * per worker tells the coordinator which worker a result came from without a
 * field in every result, and a replacement worker gets its own channel back.
 */
export const RESULT_CHANNEL_BASE = 1;

/** First message to a (new) thread worker: the operations modules to import, as URL strings. */
export interface Hello {
  readonly hello: readonly string[];
}

/** A worker's first message, once its operations modules are imported. */
export interface Ready {
  readonly ready: 1;
}

/** Ends a cluster worker's service: it returns, and its process can end. */
export interface Stop {
  readonly stop: 1;
}

export type HostMessage = Hello | Task | Stop;
export type WorkerMessage = Ready | TaskResult;
