// What a worker knows to be withdrawn: released leases, whose task messages
// it acks unread instead of running them, and cancelled tasks, which answer
// TaskCancelledError at once if they arrive after their cancellation.
//
// Design notes
// - Released leases (abort, failure) arrive on the control fanout. A worker
//   that was not listening when a lease was released (it started later, or
//   was cut off) learns it otherwise: the first time it sees a lease key it
//   checks that the lease's result queue exists (a release deletes it), on
//   a channel of its own since a missing queue closes the channel that
//   asked. Keys seen alive are then covered by the control fanout, which the
//   worker has been bound to since before it consumed them.
// - A cancellation (a task's timeout passed) names one attempt of one task.
//   It reaches every worker, and the one running the task acts on it; the
//   others remember it in case the task's message comes to them later (it
//   was still queued, or its worker died).
// - Every set is bounded: keys are never reused, so forgetting an old one
//   costs at most one more check, or one run of a cancelled task.

import type { TaskIdentity } from '../../../core/task.ts';
import type { Session } from '../shared/connection.ts';
import { taskId, type LeaseTaskId } from '../shared/messages.ts';

const MAX_KNOWN_KEYS = 10_000;

export class Withdrawn {
  private readonly released = new Set<string>();
  /** Lease keys whose result queue was seen to exist. */
  private readonly live = new Set<string>();
  private readonly checks = new Map<string, Promise<boolean>>();
  /** Cancelled tasks, `[index, stage, attempt, why]`, by lease key and task. */
  private readonly cancelled = new Map<string, Map<LeaseTaskId, readonly [number, number, number, string]>>();

  /** The control fanout says `key` was released. */
  release(key: string): void {
    remember(this.released, key);
    this.live.delete(key);
  }

  /** The control fanout says this task was cancelled. */
  cancel(task: TaskIdentity, why: string): void {
    let tasks = this.cancelled.get(task.key);
    if (tasks === undefined) {
      tasks = new Map();
      this.cancelled.set(task.key, tasks);
      if (this.cancelled.size > MAX_KNOWN_KEYS) this.cancelled.delete(this.cancelled.keys().next().value!);
    }
    tasks.set(taskId(task.index, task.stage, task.attempt), [task.index, task.stage, task.attempt, why]);
    if (tasks.size > MAX_KNOWN_KEYS) tasks.delete(tasks.keys().next().value!);
  }

  /** The cancelled tasks of lease `key`, `[index, stage, attempt, why]`. */
  cancelledOf(key: string): readonly (readonly [number, number, number, string])[] {
    const tasks = this.cancelled.size === 0 ? undefined : this.cancelled.get(key);
    return tasks === undefined ? [] : [...tasks.values()];
  }

  isReleased(key: string): boolean {
    return this.released.has(key);
  }

  /** Known to be open, with no need to ask the broker. */
  isLive(key: string): boolean {
    return this.live.has(key);
  }

  /** Does the lease `key` still exist? One check of its result queue `queue` per key, shared by its messages. */
  check(session: Session, key: string, queue: string): Promise<boolean> {
    let check = this.checks.get(key);
    if (check === undefined) {
      check = queueExists(session, queue).then((exists) => {
        this.checks.delete(key);
        if (!this.released.has(key)) remember(exists ? this.live : this.released, key);
        return exists && !this.released.has(key);
      });
      this.checks.set(key, check);
    }
    return check;
  }
}

/** Adds `key` to a bounded set of keys, forgetting the oldest. */
function remember(keys: Set<string>, key: string): void {
  keys.add(key);
  if (keys.size > MAX_KNOWN_KEYS) keys.delete(keys.values().next().value!);
}

/**
 * True unless the broker says `queue` does not exist. Asked on a channel of
 * its own, which the broker closes when the answer is no; any other failure
 * counts as yes (the tasks run, their results possibly unread).
 */
async function queueExists(session: Session, queue: string): Promise<boolean> {
  let channel;
  try {
    channel = await session.connection.createChannel();
  } catch {
    return true;
  }
  channel.on('error', () => {});
  try {
    await channel.checkQueue(queue);
    await channel.close().catch(() => {});
    return true;
  } catch (error) {
    return (error as { code?: number }).code !== 404;
  }
}
