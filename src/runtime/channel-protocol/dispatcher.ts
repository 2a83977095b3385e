// Pull-shaped scheduling over push channels: the dispatching side keeps the
// queue and tops each ready worker up to a few milliseconds' worth of tasks
// beyond what it is running, refilling it as its results come back. A slow
// worker therefore never sits on a queue that an idle one could take. The
// "few milliseconds" is measured: a moving average of how fast results come
// back. Used by every backend whose workers are reached by allocator
// channels (threads, cluster).
//
// A worker runs its tasks in the order they were sent, so what it has in
// flight is a FIFO and a result usually pops its head (async operations may
// answer out of order; their results are looked up further in).
//
// Async operations awaiting settlement ("parked", as the worker reports)
// do not count against that queue: a worker may hold up to `concurrency` of
// them on top of it, so I/O-bound operations overlap by the dozen.
//
// Cancelled tasks: those still queued here are removed; those on a worker
// stay its own, marked with the time their grace ends, until they answer
// (every cancelled task answers: see Cancel in messages.ts). The backend
// asks for the workers with a task past its grace (`overdue`) and stops
// them by force, as it can. A worker holding cancelled tasks gets no new
// ones meanwhile.

import { Fifo } from '../../fifo.ts';
import { cancels, type CancelScope, type Task, type TaskResult } from '../core/task.ts';
import { TaskTime } from '../core/task-time.ts';
import { Recent } from '../core/recent.ts';
import type { TraceCarrier } from '../observability/channels.ts';

// Work queued on a worker beyond the task it is running, in milliseconds.
const QUEUED_WORK_MS = 4;
const MAX_QUEUED_TASKS = 1024;
const MIN_QUEUED_TASKS = 2;
const TIMER_SLACK_MS = 5;
// Directives whose trace context the dispatcher remembers: more than run at once.
const MAX_CARRIERS = 256;
/** Default bound on one worker's parked async tasks. */
export const DEFAULT_CONCURRENCY = 64;

interface WorkerState {
  ready: boolean;
  readonly inFlight: Fifo<Task>;
  /** Async tasks awaiting settlement on the worker, as it last reported (at most `concurrency`). */
  parked: number;
  /** When the worker last delivered results, or received work while idle. */
  mark: number;
  /** Its cancelled tasks not answered yet, with when their grace ends (performance.now() time). */
  readonly cancelled: Map<Task, number>;
}

/** What a worker held, taken back: tasks to run elsewhere, and cancelled ones that never answered. */
export interface TakenBack {
  readonly live: Task[];
  readonly cancelled: Task[];
}

export class Dispatcher {
  private readonly queue = new Fifo<Task>();
  private readonly workers: WorkerState[];
  private readonly taskTime = new TaskTime();
  /**
   * Each traced directive's trace context, from the one task of it that
   * carries it (its first: see Execution): every batch gives it to the first
   * task of that directive in the batch, which the worker carries over to
   * the tasks after it. A context on every task would cost more bytes than
   * tiny tasks have, and stripping it from all but one would copy every task.
   */
  private readonly carriers = new Recent<string, TraceCarrier>(MAX_CARRIERS);
  private outstanding = 0;
  private nextWorker = 0;

  /** `send` must hand the batch to worker `worker` and publish it. */
  constructor(
    workers: number,
    private readonly send: (worker: number, tasks: Task[]) => void,
    private readonly concurrency = DEFAULT_CONCURRENCY,
    /** Tasks a worker may always hold, whatever they cost: more where each task is a whole batch (an AMQP message). */
    private readonly minQueued = MIN_QUEUED_TASKS,
  ) {
    this.workers = Array.from({ length: workers }, () => ({ ready: false, inFlight: new Fifo<Task>(), parked: 0, mark: 0, cancelled: new Map() }));
  }

  /** Tasks sent to workers and not yet answered. */
  get inFlight(): number {
    return this.outstanding;
  }

  /** Only ready workers are given tasks; one that becomes ready gets its share at once. */
  setReady(worker: number, ready: boolean): void {
    this.workers[worker]!.ready = ready;
    if (ready) this.assign();
  }

  enqueue(tasks: readonly Task[]): void {
    for (const task of tasks) {
      if (task.tc !== undefined) this.carriers.set(task.key, task.tc);
      this.queue.push(task);
    }
    this.assign();
  }

  /** Puts tasks back at the front of the queue, for the next worker to free up. */
  requeue(tasks: readonly Task[]): void {
    this.queue.prepend(tasks);
    this.assign();
  }

  /** The worker's report of its parked async tasks: room for that many more, up to `concurrency`. */
  setParked(worker: number, parked: number): void {
    this.workers[worker]!.parked = Math.min(parked, this.concurrency);
    this.assign();
  }

  /** Takes back everything a worker has in flight, as when it is lost or stopped by force. */
  takeFrom(worker: number): TakenBack {
    const state = this.workers[worker]!;
    const tasks = state.inFlight.take();
    state.parked = 0;
    this.outstanding -= tasks.length;
    const cancelled = tasks.filter((task) => state.cancelled.has(task));
    state.cancelled.clear();
    return { live: cancelled.length === 0 ? tasks : tasks.filter((task) => !cancelled.includes(task)), cancelled };
  }

  /**
   * Cancels the tasks `scope` names, with `graceMs` to answer: those queued
   * here are removed, those on workers are marked. Returns the workers
   * holding any, to be sent the cancellation.
   */
  cancel(scope: CancelScope, graceMs: number): number[] {
    const unsent = this.queue.removeAll((task) => cancels(scope, task));
    const holders: number[] = [];
    const until = performance.now() + graceMs;
    for (let worker = 0; worker < this.workers.length; worker++) {
      const state = this.workers[worker]!;
      let held = false;
      for (let i = 0, n = state.inFlight.length; i < n; i++) {
        const task = state.inFlight.at(i)!;
        if (!cancels(scope, task) || state.cancelled.has(task)) continue;
        state.cancelled.set(task, until);
        held = true;
      }
      if (held) holders.push(worker);
    }
    if (unsent > 0) this.assign();
    return holders;
  }

  /** Workers holding a cancelled task whose grace has ended. */
  overdue(): number[] {
    // A timer may fire a little before performance.now() says its delay
    // has passed (libuv's clock is coarser): a grace ending within the
    // slack counts as ended, or its only timer would find nothing to do.
    const now = performance.now() + TIMER_SLACK_MS;
    const late: number[] = [];
    for (let worker = 0; worker < this.workers.length; worker++) {
      for (const until of this.workers[worker]!.cancelled.values()) {
        if (until > now) continue;
        late.push(worker);
        break;
      }
    }
    return late;
  }

  /** Cancelled tasks still on workers. */
  get cancelling(): number {
    let count = 0;
    for (const worker of this.workers) count += worker.cancelled.size;
    return count;
  }

  clear(): void {
    this.queue.take();
    for (let worker = 0; worker < this.workers.length; worker++) this.takeFrom(worker);
  }

  /**
   * Matches results from `worker` with its in-flight tasks and returns those
   * that matched (a result for a task it no longer holds, dropped or taken
   * back, is left out), then refills the workers.
   */
  settle(worker: number, results: readonly TaskResult[]): TaskResult[] {
    const state = this.workers[worker]!;
    const matched: TaskResult[] = [];
    for (const result of results) {
      const same = (task: Task) =>
        task.key === result.key && task.index === result.index && task.stage === result.stage && task.attempt === result.attempt;
      const head = state.inFlight.peek();
      const found = head !== undefined && same(head) ? state.inFlight.shift() : state.inFlight.removeFirst(same);
      if (found === undefined) continue;
      matched.push(result);
      if (state.cancelled.size > 0) state.cancelled.delete(found);
    }
    this.outstanding -= matched.length;
    if (matched.length > 0) {
      // Results that came back together say little about one task's cost;
      // the time since the worker's previous delivery, shared among them, does.
      const now = performance.now();
      this.taskTime.observe(now - state.mark, matched.length);
      state.mark = now;
    }
    this.assign();
    return matched;
  }

  /** Tops up every ready worker to its share of the queue. */
  private assign(): void {
    if (this.queue.length === 0) return;
    const ready = this.workers.filter((worker) => worker.ready).length;
    if (ready === 0) return;
    const fairShare = Math.ceil((this.queue.length + this.outstanding) / ready);
    const limit = Math.max(this.minQueued, Math.min(fairShare, MAX_QUEUED_TASKS, Math.ceil(QUEUED_WORK_MS / this.taskTime.ms)));
    const now = performance.now();
    // Start at a different worker each time so the remainder of an uneven
    // split does not always land on worker 0.
    const first = this.nextWorker++ % this.workers.length;
    for (let step = 0; step < this.workers.length && this.queue.length > 0; step++) {
      const index = (first + step) % this.workers.length;
      const worker = this.workers[index]!;
      const room = limit + worker.parked;
      // A worker still holding cancelled tasks gets nothing more until they
      // answer: it may be stuck in one, and what waits behind it would wait too.
      if (!worker.ready || worker.cancelled.size > 0 || worker.inFlight.length >= room) continue;
      if (worker.inFlight.length === 0) worker.mark = now;
      const batch: Task[] = [];
      let key: string | undefined;
      while (worker.inFlight.length < room) {
        const task = this.queue.shift();
        if (task === undefined) break;
        worker.inFlight.push(task);
        // Tasks come mostly in runs of one directive: a key that changes
        // starts a run, which its directive's trace context must reach.
        const carrier = task.key === key || this.carriers.size === 0 ? undefined : this.carriers.get(task.key);
        key = task.key;
        batch.push(carrier === undefined || task.tc !== undefined ? task : { ...task, tc: carrier });
      }
      this.outstanding += batch.length;
      this.send(index, batch);
    }
  }

}
