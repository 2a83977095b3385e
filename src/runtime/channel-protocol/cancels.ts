// Cancellation on a coordinator (the thread backend's host, the cluster
// gateway). Tasks still queued are dropped; the workers holding the others
// are told, their operations' signals abort, and every cancelled task
// answers. A cancelled attempt found on no worker answers at once, so a
// directive waiting for a timed-out attempt to end can retry it. A worker
// still holding a cancelled task once its grace has passed is handed to
// `overdue`, which stops it as its backend can (a thread is terminated; a
// cluster worker in another process is set aside).

import { TaskCancelledError } from '../core/errors.ts';
import { failed, type CancelScope, type TaskResult } from '../core/task.ts';
import type { Dispatcher } from './dispatcher.ts';
import type { Cancel } from './messages.ts';

export class Cancellations {
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(
    private readonly dispatcher: Dispatcher,
    /** Sends `cancel` to `worker` and flushes. */
    private readonly tell: (worker: number, cancel: Cancel) => void,
    /** Results for cancelled tasks that answer without their worker. */
    private readonly answer: (results: TaskResult[]) => void,
    private readonly overdue: (worker: number) => void,
  ) {}

  /** Cancels what `scope` names, with `graceMs` to answer; true if workers hold any of it. */
  cancel(scope: CancelScope, graceMs: number): boolean {
    const holders = this.dispatcher.cancel(scope, graceMs);
    if (scope.task !== undefined && holders.length === 0) {
      // Not on a worker: it never starts (or its answer has left already,
      // and this one is ignored as a duplicate). On a later turn, as results are.
      const [index, stage, attempt] = scope.task;
      const answer = [failed({ key: scope.key!, index, stage, attempt }, new TaskCancelledError(`${scope.why} (before it started)`))];
      setImmediate(() => this.answer(answer));
    }
    for (const worker of holders) this.tell(worker, { cancel: scope });
    if (holders.length === 0) return false;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      for (const worker of this.dispatcher.overdue()) this.overdue(worker);
    }, graceMs);
    this.timers.add(timer);
    return true;
  }

  clear(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
