// Stuck threads. A thread cannot be interrupted, only terminated. When a
// directive's task times out, the host pings the thread holding it and
// sends it nothing more; a thread that has not answered within
// `cancelGraceMs` is stuck (the ping waits behind the task) and is
// terminated and replaced like a dead one, except that the timed-out tasks
// are given up, not re-queued (the directive has already retried or failed
// them). A thread answers a ping once it has run everything sent before, so
// an async task that never settles does not keep it from answering.

import type { Dispatcher } from '../../channel-protocol/dispatcher.ts';
import type { Task, TaskIdentity } from '../../core/task.ts';

/** Default time a thread holding a timed-out task has to show it is not stuck. */
export const DEFAULT_CANCEL_GRACE_MS = 1000;

/** A ping to a thread holding timed-out tasks (`suspects`), and the timer that ends its grace. */
interface Probe {
  readonly id: number;
  readonly suspects: Task[];
  readonly timer: ReturnType<typeof setTimeout>;
}

/** The thread backend, as the watch sees it. */
export interface Watched {
  readonly dispatcher: Dispatcher;
  /** The thread serves tasks (it is neither starting nor dead, and the backend is open). */
  isReady(worker: number): boolean;
  /** Sends the thread `{ ping: id }` and receives until it answers. */
  ping(worker: number, id: number): void;
  /** The thread is stuck: terminate and replace it, giving up `suspects` and re-queuing the rest. */
  stuck(worker: number, suspects: ReadonlySet<Task>): void;
}

export class StuckWatch {
  private readonly probes: (Probe | undefined)[];
  private nextPing = 0;

  constructor(
    workers: number,
    private readonly graceMs: number,
    private readonly backend: Watched,
  ) {
    this.probes = new Array<Probe | undefined>(workers).fill(undefined);
  }

  /** Some thread has a ping unanswered. */
  get probing(): boolean {
    return this.probes.some((probe) => probe !== undefined);
  }

  /** A directive gave up waiting for `id`: if a thread still holds it, is that thread stuck? */
  timedOut(id: TaskIdentity): void {
    const held = this.backend.dispatcher.holder(id);
    if (held === undefined || !this.backend.isReady(held.worker)) return;
    const { worker, task } = held;
    let probe = this.probes[worker];
    if (probe === undefined) {
      probe = { id: this.nextPing++, suspects: [], timer: setTimeout(() => this.expire(worker), this.graceMs) };
      this.probes[worker] = probe;
      this.backend.dispatcher.setReady(worker, false);
      this.backend.ping(worker, probe.id);
    }
    probe.suspects.push(task);
  }

  /** The thread answered ping `id`: it is not stuck, and gets work again. */
  pong(worker: number, id: number): void {
    if (this.probes[worker]?.id !== id) return;
    this.end(worker);
    if (this.backend.isReady(worker)) this.backend.dispatcher.setReady(worker, true);
  }

  /** Forgets the thread's probe (it died, or answered). */
  end(worker: number): Probe | undefined {
    const probe = this.probes[worker];
    clearTimeout(probe?.timer);
    this.probes[worker] = undefined;
    return probe;
  }

  clear(): void {
    for (let worker = 0; worker < this.probes.length; worker++) this.end(worker);
  }

  /** No pong within the grace: the thread is stuck in a task. */
  private expire(worker: number): void {
    const probe = this.end(worker);
    if (probe === undefined || !this.backend.isReady(worker)) return;
    this.backend.stuck(worker, new Set(probe.suspects));
  }
}
