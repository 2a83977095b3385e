// The backend of `Runtime.inMemory`: worker threads of the hosted allocator,
// tasks and results over its shared-memory rings, in batches.
//
// Design notes
// - Workers pull work as they free up: the host keeps the queue and gives
//   each worker only a few milliseconds' worth of tasks beyond what it is
//   running, refilling it as its results come back. A slow worker therefore
//   never sits on a queue that an idle one could take. The "few milliseconds"
//   is measured: a moving average of how fast results come back.
// - A worker runs its tasks in the order they were sent, so what a worker has
//   in flight is a FIFO and a result usually pops its head (async operations
//   may answer out of order; their results are looked up further in).
// - The allocator is fail-stop, the runtime is not: when a worker thread dies
//   the host takes back its in-flight tasks, puts them at the front of the
//   queue for the other workers, and asks the pool for a new thread at the
//   same index with fresh rings (whatever was in the old rings is lost, and
//   was just re-queued). The newcomer gets the same hello as the first
//   thread did and joins in when it answers ready.

import { fileURLToPath } from 'node:url';
import { startHosted, type Hosted } from '../allocator/hosted.ts';
import type { Pull, Push } from '../allocator/index.ts';
import { routeResults, type Backend, type Lease, type LeaseHandlers } from './backend.ts';
import { RuntimeClosedError, WorkerLostError } from './errors.ts';
import { Fifo } from './fifo.ts';
import { failed, type Task, type TaskResult } from './task.ts';
import { RESULT_CHANNEL_BASE, TASK_CHANNEL, type HostMessage, type WorkerMessage } from './thread-wire.ts';
import { moduleUrl } from './worker-runtime.ts';

// Work queued on a worker beyond the task it is running, in milliseconds.
const QUEUED_WORK_MS = 4;
const MAX_QUEUED_TASKS = 1024;
// Until results have been timed, assume tasks take this long.
const INITIAL_TASK_MS = 1;
// A task in flight on this many workers that died is given up on: it is
// likely the one killing them.
const MAX_DEATHS = 3;
// The pump parks until a ring delivers; this bound only limits how long a
// missed wake-up could stall it.
const PARK_MS = 100;

type SlotState = 'starting' | 'ready' | 'dead';

interface Slot {
  state: SlotState;
  readonly inFlight: Fifo<Task>;
  readonly results: Pull<WorkerMessage>;
  /** When the worker last delivered results, or received work while idle. */
  mark: number;
}

function workerModule(): string {
  const self = import.meta.url;
  return fileURLToPath(new URL(self.endsWith('.ts') ? './thread-worker.ts' : './thread-worker.js', self));
}

export class ThreadBackend implements Backend {
  readonly parallelism: number;
  private readonly tasks: Push<HostMessage>[];
  private readonly slots: Slot[];
  private readonly leases = new Map<string, LeaseHandlers>();
  private readonly queue = new Fifo<Task>();
  private readonly deaths = new WeakMap<Task, number>();
  private taskMs = INITIAL_TASK_MS;
  private inFlight = 0;
  private nextKey = 0;
  private nextSlot = 0;
  private pumping = false;
  private closed = false;
  private readonly started: Promise<void>;
  private onStarted!: { resolve: () => void; reject: (error: Error) => void };

  private constructor(
    private readonly pool: Hosted,
    private readonly modules: readonly string[],
    workers: number,
  ) {
    this.parallelism = workers;
    this.started = new Promise((resolve, reject) => (this.onStarted = { resolve, reject }));
    const host = pool.host;
    this.tasks = host.allocate<HostMessage>(TASK_CHANNEL)[0];
    this.slots = [];
    for (let index = 0; index < workers; index++) {
      const [, results] = host.allocate<WorkerMessage>(RESULT_CHANNEL_BASE + index);
      this.slots.push({ state: 'starting', inFlight: new Fifo(), results, mark: 0 });
    }
    pool.on('exit', (index: number, error: Error | undefined) => this.onExit(index, error));
  }

  /** Starts `workers` threads and resolves once each has imported `modules`. */
  static async start(options: { workers: number; modules: readonly (string | URL)[] }): Promise<ThreadBackend> {
    const pool = await startHosted({ workers: options.workers, module: workerModule(), export: 'serveThread' });
    const backend = new ThreadBackend(pool, options.modules.map(moduleUrl), options.workers);
    for (let index = 0; index < options.workers; index++) backend.hello(index);
    void backend.pump();
    try {
      await backend.started;
    } catch (error) {
      await backend.close();
      throw error;
    }
    return backend;
  }

  lease(handlers: LeaseHandlers): Lease {
    if (this.closed) throw new RuntimeClosedError('the runtime is closed');
    const key = String(this.nextKey++);
    this.leases.set(key, handlers);
    return {
      key,
      release: () => {
        this.leases.delete(key);
        this.queue.removeAll((task) => task.key === key);
        // Forget its tasks on workers too: their results would be dropped
        // anyway, and one that never answers must not hold a slot forever.
        for (const slot of this.slots) this.inFlight -= slot.inFlight.removeAll((task) => task.key === key);
      },
    };
  }

  dispatch(tasks: readonly Task[]): void {
    for (const task of tasks) this.queue.push(task);
    this.assign();
    void this.pump();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queue.take();
    const leases = [...this.leases.values()];
    this.leases.clear();
    for (const handlers of leases) handlers.failed(new RuntimeClosedError('the runtime was closed'));
    this.onStarted.reject(new RuntimeClosedError('the runtime was closed while starting'));
    await this.pool.close();
  }

  private hello(index: number): void {
    this.slots[index]!.state = 'starting';
    const push = this.tasks[index]!;
    push.send({ hello: this.modules });
    push.flush();
  }

  /** Tops up every ready worker to its share of the queue, then publishes. */
  private assign(): void {
    if (this.queue.length === 0 || this.closed) return;
    const ready = this.slots.filter((slot) => slot.state === 'ready').length;
    if (ready === 0) return;
    const fairShare = Math.ceil((this.queue.length + this.inFlight) / ready);
    const limit = Math.max(2, Math.min(fairShare, MAX_QUEUED_TASKS, Math.ceil(QUEUED_WORK_MS / this.taskMs)));
    const now = performance.now();
    // Start at a different worker each time so the remainder of an uneven
    // split does not always land on worker 0.
    const first = this.nextSlot++ % this.slots.length;
    for (let step = 0; step < this.slots.length && this.queue.length > 0; step++) {
      const index = (first + step) % this.slots.length;
      const slot = this.slots[index]!;
      if (slot.state !== 'ready' || slot.inFlight.length >= limit) continue;
      if (slot.inFlight.length === 0) slot.mark = now;
      const push = this.tasks[index]!;
      while (slot.inFlight.length < limit) {
        const task = this.queue.shift();
        if (task === undefined) break;
        push.send(task);
        slot.inFlight.push(task);
        this.inFlight++;
      }
      push.flush();
    }
  }

  /** Receives results while anything is outstanding; stops when idle so it holds nothing open. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed && (this.inFlight > 0 || this.slots.some((slot) => slot.state === 'starting'))) {
        this.pool.host.receive();
        if (this.collect()) this.assign();
        else await this.pool.host.awaitEventsAsync(PARK_MS);
      }
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.pumping = false;
    }
  }

  /** Moves arrived results to their leases; true if there were any. */
  private collect(): boolean {
    const results: TaskResult[] = [];
    let any = false;
    const now = performance.now();
    for (let index = 0; index < this.slots.length; index++) {
      const slot = this.slots[index]!;
      let count = 0;
      for (let message = slot.results.recv(); message !== undefined; message = slot.results.recv()) {
        any = true;
        if ('ready' in message) {
          slot.state = 'ready';
          if (this.slots.every((s) => s.state !== 'starting')) this.onStarted.resolve();
          continue;
        }
        if (this.settle(slot, message)) {
          results.push(message);
          count++;
        }
      }
      if (count > 0) {
        // Results that came back together say little about one task's cost;
        // the time since the worker's previous delivery, shared among them, does.
        this.taskMs = 0.7 * this.taskMs + (0.3 * Math.max(now - slot.mark, 0.0001)) / count;
        slot.mark = now;
      }
    }
    if (results.length > 0) routeResults(results, this.leases);
    return any;
  }

  /** Takes the result's task off its worker's in-flight list; false if it was not there. */
  private settle(slot: Slot, result: TaskResult): boolean {
    const same = (task: Task) =>
      task.key === result.key && task.index === result.index && task.stage === result.stage && task.attempt === result.attempt;
    const head = slot.inFlight.peek();
    const found = head !== undefined && same(head) ? slot.inFlight.shift() : slot.inFlight.removeFirst(same);
    if (found === undefined) return false;
    this.inFlight--;
    return true;
  }

  private onExit(index: number, error: Error | undefined): void {
    if (this.closed) return;
    const slot = this.slots[index]!;
    const wasStarting = slot.state === 'starting';
    slot.state = 'dead';
    if (wasStarting) {
      // It could not even import the operations: a new thread would fail alike.
      const cause = error ?? new Error(`worker ${index} exited before it was ready`);
      this.fail(new RuntimeClosedError(`worker ${index} failed to start: ${cause.message}`, { cause }));
      return;
    }
    this.requeue(slot.inFlight.take());
    this.assign();
    void this.replace(index);
  }

  private requeue(lost: Task[]): void {
    this.inFlight -= lost.length;
    const again: Task[] = [];
    const given: TaskResult[] = [];
    for (const task of lost) {
      const deaths = (this.deaths.get(task) ?? 0) + 1;
      this.deaths.set(task, deaths);
      if (deaths < MAX_DEATHS) again.push(task);
      else given.push(failed(task, new WorkerLostError(`a worker thread died while running this task, ${deaths} times`)));
    }
    this.queue.prepend(again);
    if (given.length > 0) routeResults(given, this.leases);
  }

  private async replace(index: number): Promise<void> {
    try {
      await this.pool.replace(index);
    } catch (error) {
      this.fail(new RuntimeClosedError(`cannot replace worker ${index}: ${(error as Error).message}`, { cause: error }));
      return;
    }
    if (this.closed) return;
    this.hello(index);
    void this.pump();
  }

  /** The backend cannot go on: every directive on it fails and the threads stop. */
  private fail(error: Error): void {
    if (this.closed) return;
    const leases = [...this.leases.values()];
    this.leases.clear();
    for (const handlers of leases) handlers.failed(error);
    this.onStarted.reject(error);
    void this.close();
  }
}
