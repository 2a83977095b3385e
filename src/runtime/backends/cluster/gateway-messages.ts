// What the cluster backend's orchestrator (process 0's main thread) and its
// gateway (global worker 0, a thread of process 0) say to each other over a
// BroadcastChannel, and how every worker learns its settings.

import type { CancelScope, Task, TaskProgress, TaskResult } from '../../core/task.ts';

/**
 * Environment variable holding `ClusterSettings` as JSON. Worker threads
 * start with a copy of their process's environment, so each process hands
 * its own threads its own (locally resolved) module URLs.
 */
export const CLUSTER_SETTINGS_ENV = 'WEFT_RUNTIME_CLUSTER';

export interface ClusterSettings {
  /** Operations modules, as URL strings. */
  readonly operations: readonly string[];
  /** BroadcastChannel name between process 0's main thread and the gateway. */
  readonly channel: string;
}

export type ToGateway =
  | { readonly tasks: readonly Task[] }
  /** Cancels tasks (a lease released: every task of its key; a timeout: one attempt); `graceMs` before they are given up on. */
  | { readonly cancel: CancelScope; readonly graceMs: number }
  | { readonly stop: 1 };
export type FromGateway =
  | { readonly ready: number }
  | { readonly results: readonly TaskResult[] }
  /** Tasks' progress details (`ctx.progress`), already throttled by their workers. */
  | { readonly progress: readonly TaskProgress[] }
  /** A serving process was lost; the tasks its workers held went back to the queue. */
  | { readonly lost: number; readonly redispatched: number }
  /** A spare process joined; its workers get tasks once they report ready. */
  | { readonly joined: number };
