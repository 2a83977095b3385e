// Channels and messages between a coordinator (the thread backend's host,
// or the cluster backend's gateway) and the workers it feeds over allocator
// channels. Shared by both ends so they cannot disagree.

import type { CancelScope, Task, TaskResult } from '../core/task.ts';
import type { Detached } from '../../allocator/index.ts';

/** Coordinator to every worker: the one stable task channel. */
export const TASK_CHANNEL = 0;

/**
 * Worker `w` to coordinator: channel `RESULT_CHANNEL_BASE + w`. One channel
 * per worker tells the coordinator which worker a result came from without a
 * field in every result, and a replacement worker gets its own channel back.
 */
export const RESULT_CHANNEL_BASE = 1;

/**
 * Worker `w` to coordinator: channel `PIECE_CHANNEL_BASE + w` carries the
 * pieces of a large binary output (outputs.ts), raw bytes, in order.
 */
export const PIECE_CHANNEL_BASE = 0x40000000;

/** First message to a (new) thread worker: the operations modules to import, as URL strings. */
export interface Hello {
  readonly hello: readonly string[];
  /** The channels' bound on one frame: results are batched and outputs checked against it. */
  readonly maxMessageBytes: number;
}

/** A worker's first message, once its operations modules are imported. */
export interface Ready {
  readonly ready: 1;
}

/** Ends a cluster worker's service: it returns, and its process can end. */
export interface Stop {
  readonly stop: 1;
}

/** Asks a worker to answer `{ pong }` once it has run everything sent before: is its thread stuck? */
export interface Ping {
  readonly ping: number;
}

export interface Pong {
  readonly pong: number;
}

/**
 * Cancels tasks on a worker: the running ones see `ctx.signal` abort, and
 * those received but not started answer at once with a TaskCancelledError.
 * Every cancelled task still answers, so the coordinator learns when it ended.
 */
export interface Cancel {
  readonly cancel: CancelScope;
}

/** A task's progress detail, carried as a result whose output is the detail (packed as outputs are). */
export interface ProgressReport {
  readonly progress: TaskResult | PackedResult;
}

/**
 * How many of a worker's tasks are async operations awaiting settlement,
 * sent when the number changes: they run concurrently, so the coordinator
 * may send that many more (up to its concurrency bound).
 */
export interface Parked {
  readonly parked: number;
}

/** A task's identity, as `[key, index, stage, attempt]`. */
export type TaskId = readonly [key: string, index: number, stage: number, attempt: number];

/** Sent as a worker thread exits (process.exit): the tasks it was running, so only they are blamed. */
export interface Dying {
  readonly dying: readonly TaskId[];
}

/** A result whose output travels already encoded (see outputs.ts); the coordinator decodes it. */
export interface PackedResult extends Omit<TaskResult, 'output'> {
  readonly packed: Uint8Array;
}

/**
 * A result whose output is binary (a typed array, Buffer, DataView or
 * ArrayBuffer of 64 KiB or more): its bytes travel detached from the batch
 * (codec-msgpack's Detached: one copy into the slab, one out), `kind` says
 * what to rebuild.
 */
export interface RawResult extends Omit<TaskResult, 'output'> {
  readonly raw: Detached | Uint8Array;
  readonly kind: string;
  /**
   * Set on an output sent in pieces: its bytes (this many) follow on the
   * worker's piece channel, and `raw` is empty.
   */
  readonly pieces?: number;
}

export type HostMessage = Hello | Task | Stop | Ping | Cancel;
export type WorkerMessage = Ready | TaskResult | PackedResult | RawResult | Pong | Parked | Dying | ProgressReport;

/** True for a worker's result (packed or not), false for its other messages. */
export function isResult(message: WorkerMessage): message is TaskResult | PackedResult | RawResult {
  return 'key' in message;
}

/** True for a task (not a control message) from the coordinator. */
export function isTask(message: HostMessage): message is Task {
  return 'key' in message;
}
