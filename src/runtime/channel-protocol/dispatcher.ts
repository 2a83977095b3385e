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

import { Fifo } from '../../fifo.ts';
import type { Task, TaskIdentity, TaskResult } from '../core/task.ts';
import { TaskTime } from '../core/task-time.ts';

// Work queued on a worker beyond the task it is running, in milliseconds.
const QUEUED_WORK_MS = 4;
const MAX_QUEUED_TASKS = 1024;
/** Default bound on one worker's parked async tasks. */
export const DEFAULT_CONCURRENCY = 64;

interface WorkerState {
  ready: boolean;
  readonly inFlight: Fifo<Task>;
  /** Async tasks awaiting settlement on the worker, as it last reported (at most `concurrency`). */
  parked: number;
  /** When the worker last delivered results, or received work while idle. */
  mark: number;
}

export class Dispatcher {
  private readonly queue = new Fifo<Task>();
  private readonly workers: WorkerState[];
  private readonly taskTime = new TaskTime();
  private outstanding = 0;
  private nextWorker = 0;

  /** `send` must hand the batch to worker `worker` and publish it. */
  constructor(
    workers: number,
    private readonly send: (worker: number, tasks: Task[]) => void,
    private readonly concurrency = DEFAULT_CONCURRENCY,
  ) {
    this.workers = Array.from({ length: workers }, () => ({ ready: false, inFlight: new Fifo<Task>(), parked: 0, mark: 0 }));
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
    for (const task of tasks) this.queue.push(task);
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

  /** Takes back everything a worker has in flight, as when it is lost. */
  takeFrom(worker: number): Task[] {
    const state = this.workers[worker]!;
    const tasks = state.inFlight.take();
    state.parked = 0;
    this.outstanding -= tasks.length;
    return tasks;
  }

  /** The worker holding a task with this identity, and the task, if one does. */
  holder(id: TaskIdentity): { worker: number; task: Task } | undefined {
    const same = (task: Task) => task.key === id.key && task.index === id.index && task.stage === id.stage && task.attempt === id.attempt;
    for (let worker = 0; worker < this.workers.length; worker++) {
      const task = this.workers[worker]!.inFlight.find(same);
      if (task !== undefined) return { worker, task };
    }
    return undefined;
  }

  /** Removes one task from a worker's in-flight list (it is given up, not re-queued). */
  forget(worker: number, task: Task): void {
    this.outstanding -= this.workers[worker]!.inFlight.removeAll((held) => held === task);
  }

  /** Forgets the tasks of one routing key, queued or in flight, and gives the room freed to others. */
  drop(key: string): void {
    this.queue.removeAll((task) => task.key === key);
    for (const worker of this.workers) this.outstanding -= worker.inFlight.removeAll((task) => task.key === key);
    this.assign();
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
      if (found !== undefined) matched.push(result);
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
    const limit = Math.max(2, Math.min(fairShare, MAX_QUEUED_TASKS, Math.ceil(QUEUED_WORK_MS / this.taskTime.ms)));
    const now = performance.now();
    // Start at a different worker each time so the remainder of an uneven
    // split does not always land on worker 0.
    const first = this.nextWorker++ % this.workers.length;
    for (let step = 0; step < this.workers.length && this.queue.length > 0; step++) {
      const index = (first + step) % this.workers.length;
      const worker = this.workers[index]!;
      const room = limit + worker.parked;
      if (!worker.ready || worker.inFlight.length >= room) continue;
      if (worker.inFlight.length === 0) worker.mark = now;
      const batch: Task[] = [];
      while (worker.inFlight.length < room) {
        const task = this.queue.shift();
        if (task === undefined) break;
        batch.push(task);
        worker.inFlight.push(task);
      }
      this.outstanding += batch.length;
      this.send(index, batch);
    }
  }
}
