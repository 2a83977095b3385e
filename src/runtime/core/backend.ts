// The seam between orchestration (directives: ordering, folding, retries,
// abort, dedup) and the transport of tasks to workers. A backend moves task
// batches out and result batches back; it knows nothing about directives.
//
// Design notes
// - One stable task stream that every worker serves, and one result lease per
//   directive, addressed by a routing key (Paladin's coordinated channel).
//   Workers stay oblivious of directives: they copy the key from the task to
//   its result, and the backend routes the result to the lease by that key.
// - Delivery is at least once where a worker can be lost and the backend goes
//   on: the thread backend re-queues a dead or stuck thread's tasks, the
//   cluster backend those of a lost serving process, and on AMQP the broker
//   redelivers an unacknowledged batch; the loopback backend has no worker to
//   lose, and a loss a backend cannot survive fails its leases instead. The
//   orchestrator drops a result it already counted, so a backend never has
//   to know whether a lost worker had finished a task.
// - Push, not pull: results arrive through the callback given to `lease`, in
//   batches, so a backend can hand over everything one read produced at once.

import type { Task, TaskIdentity, TaskProgress, TaskResult } from './task.ts';

/** A directive's claim on the results routed to `key`. */
export interface Lease {
  readonly key: string;
  /**
   * Ends the lease: tasks with this key still queued in the backend are
   * dropped, and results for it that arrive later are discarded. Tasks of
   * it running on workers are cancelled (their `ctx.signal` aborts with
   * `why`), on backends that can reach them.
   */
  release(why?: string): void;
  /**
   * Cancels one attempt of one task (its timeout passed): its `ctx.signal`
   * aborts on its worker, or it never starts. A backend that has this
   * promises a result for that attempt once it no longer runs: its own, a
   * TaskCancelledError (not started, or its thread was terminated), or a
   * TaskStuckError (it runs on and cannot be stopped); the directive retries
   * only then, so two attempts of a task never run at once. Without it, the
   * directive retries at once.
   */
  cancel?(task: TaskIdentity, why: string): void;
}

export interface LeaseHandlers {
  /** A batch of results whose `key` is this lease's. May include duplicates. */
  results(results: readonly TaskResult[]): void;
  /** The backend can no longer run this lease's tasks (closed, lost every worker). */
  failed(error: Error): void;
  /** Progress details from this lease's tasks (`ctx.progress`), in the order they were sent. */
  progress?(updates: readonly TaskProgress[]): void;
  /** The backend lost a process or saw one join (its `stats()` changed): a moment to report progress. */
  membership?(): void;
}

/** Default time a cancelled task has to return before it is stopped by force, in ms. */
export const DEFAULT_CANCEL_GRACE_MS = 1000;

/** How a lease's tasks are treated, set per directive. */
export interface LeaseOptions {
  /**
   * How long a cancelled task of this lease has to return before the
   * backend stops it by force (terminates its thread, or gives up on it);
   * default: the backend's own (DEFAULT_CANCEL_GRACE_MS unless configured).
   */
  readonly cancelGraceMs?: number | undefined;
}

export interface Backend {
  /**
   * How many tasks it can run at once (async ones overlapping), or Infinity
   * when it cannot know: twice this is the floor of a directive's window
   * below `maxInFlight` (see execution.ts).
   */
  readonly parallelism: number;
  /** Opens a result lease with a routing key unique among this backend's open leases. */
  lease(handlers: LeaseHandlers, options?: LeaseOptions): Lease;
  /**
   * Queues tasks for the workers. Never blocks, and never delivers results
   * from inside the call (callers dispatch while iterating their own state).
   * Every task's `key` must be an open lease's; tasks run in no particular order.
   */
  dispatch(tasks: readonly Task[]): void;
  /** Stops the workers. Open leases get `failed`. */
  close(): Promise<void>;
  /** What the backend has survived so far; a backend that loses nothing may omit it. */
  stats?(): BackendStats;
  /**
   * The name of worker `worker` (a result's `w`), where the backend's
   * workers name themselves (`Runtime.amqp`: each `AmqpWorker.id`), for
   * `Runtime.metrics()`.
   */
  workerName?(worker: number): string | undefined;
}

/** What a backend has survived so far, for `Runtime.stats()`. */
export interface BackendStats {
  /** Worker processes lost while the runtime ran (`Runtime.cluster`: their indices). */
  readonly lostProcesses: readonly number[];
  /** Tasks that a lost process held and that were dispatched again to the others. */
  readonly redispatched: number;
  /** Spare processes that joined while the runtime ran (`Runtime.cluster`: their indices). */
  readonly joinedProcesses: readonly number[];
}

/**
 * The open leases of a backend: issues keys, routes results and progress,
 * fails them all when the backend stops. `onRelease` drops what the backend
 * still holds for a key (queued tasks, work on workers); `onCancel`, when
 * given, is the lease's `cancel`.
 */
export class LeaseTable {
  private readonly open = new Map<string, LeaseHandlers>();
  private next = 0;

  constructor(private readonly prefix = '') {}

  lease(
    handlers: LeaseHandlers,
    onRelease: (key: string, why: string) => void,
    onCancel?: (task: TaskIdentity, why: string) => void,
  ): Lease {
    const key = `${this.prefix}${this.next++}`;
    this.open.set(key, handlers);
    const lease: Lease = {
      key,
      release: (why = 'its directive ended') => {
        if (this.open.delete(key)) onRelease(key, why);
      },
    };
    return onCancel === undefined ? lease : { ...lease, cancel: onCancel };
  }

  /** Hands each open lease its tasks' progress details; details for other keys are dropped. */
  routeProgress(updates: readonly TaskProgress[]): void {
    for (const update of updates) this.open.get(update.key)?.progress?.([update]);
  }

  has(key: string): boolean {
    return this.open.has(key);
  }

  route(results: readonly TaskResult[]): void {
    routeResults(results, this.open);
  }

  /** Tells every open lease that the backend's processes changed. */
  membershipChanged(): void {
    for (const h of [...this.open.values()]) h.membership?.();
  }

  /** Fails and forgets every open lease. */
  failAll(error: Error): void {
    const handlers = [...this.open.values()];
    this.open.clear();
    for (const h of handlers) h.failed(error);
  }
}

/**
 * Hands each lease its share of a batch of results, in one call per lease;
 * results for keys no longer leased are dropped.
 */
export function routeResults(results: readonly TaskResult[], leases: ReadonlyMap<string, LeaseHandlers>): void {
  const byKey = new Map<string, TaskResult[]>();
  for (const result of results) {
    const group = byKey.get(result.key);
    if (group === undefined) byKey.set(result.key, [result]);
    else group.push(result);
  }
  for (const [key, group] of byKey) leases.get(key)?.results(group);
}
