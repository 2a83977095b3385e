// The backend of `Runtime.inMemory`: worker threads of the hosted allocator,
// tasks and results over its shared-memory rings, in batches, scheduled by a
// Dispatcher.
//
// Design notes
// - The allocator is fail-stop, the runtime is not: when a worker thread dies
//   the host takes back its in-flight tasks, puts them at the front of the
//   queue for the other workers, and asks the pool for a new thread at the
//   same index with fresh rings (whatever was in the old rings is lost, and
//   was just re-queued). The newcomer gets the same hello as the first
//   thread did and joins in when it answers ready.
// - The pump runs only while something is outstanding, so an idle runtime
//   holds no timer and parks no thread.
// - A thread cannot be interrupted, only terminated. When a directive's task
//   times out, the host pings the thread holding it and sends it nothing
//   more; a thread that has not answered within `cancelGraceMs` is stuck
//   (the ping waits behind the task) and is terminated and replaced like a
//   dead one, except that the timed-out tasks are given up, not re-queued
//   (the directive has already retried or failed them).
// - Who killed a thread: a thread that exits (process.exit) first sends the
//   results it made and names the tasks it was running; only those count a
//   death, so an innocent task queued behind the killer is never given up
//   with it. A thread that dies without that note (a crash) gets every
//   unanswered task blamed, as before.

import { fileURLToPath } from 'node:url';
import { startHosted, type Hosted } from '../../../allocator/hosted.ts';
import type { Pull, Push } from '../../../allocator/index.ts';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../../allocator/config.ts';
import { LeaseTable, type Backend, type Lease, type LeaseHandlers } from '../../core/backend.ts';
import { Dispatcher } from '../../channel-protocol/dispatcher.ts';
import { RuntimeClosedError, WorkerLostError } from '../../core/errors.ts';
import { unpackProgress, unpackResult } from '../../core/outputs.ts';
import { failed, type Task, type TaskIdentity, type TaskResult } from '../../core/task.ts';
import { isResult, RESULT_CHANNEL_BASE, TASK_CHANNEL, type HostMessage, type TaskId, type WorkerMessage } from '../../channel-protocol/messages.ts';
import { moduleUrl } from '../../core/executor.ts';

// A task in flight on this many workers that died is given up on: it is
// likely the one killing them.
const MAX_DEATHS = 3;
// The pump parks until a ring delivers; this bound only limits how long a
// missed wake-up could stall it.
const PARK_MS = 100;
// While results keep coming the pump never parks; it yields to the event loop
// this often so timers, aborts and async sources get their turn.
const YIELD_MS = 2;
/** Default time a thread holding a timed-out task has to show it is not stuck. */
export const DEFAULT_CANCEL_GRACE_MS = 1000;

type SlotState = 'starting' | 'ready' | 'dead';

/** A ping to a thread holding timed-out tasks (`suspects`), and the timer that ends its grace. */
interface Probe {
  readonly id: number;
  readonly suspects: Task[];
  readonly timer: ReturnType<typeof setTimeout>;
}

export interface ThreadBackendOptions {
  workers: number;
  modules: readonly (string | URL)[];
  /** Most parked async tasks per thread (see Dispatcher). */
  concurrency?: number | undefined;
  cancelGraceMs?: number | undefined;
  maxMessageBytes?: number | undefined;
}

const sameTask = (task: Task, [key, index, stage, attempt]: TaskId) =>
  task.key === key && task.index === index && task.stage === stage && task.attempt === attempt;

function workerModule(): string {
  const self = import.meta.url;
  return fileURLToPath(new URL(self.endsWith('.ts') ? './thread-worker.ts' : './thread-worker.js', self));
}

export class ThreadBackend implements Backend {
  readonly parallelism: number;
  private readonly tasks: Push<HostMessage>[];
  private readonly results: Pull<WorkerMessage>[] = [];
  private readonly states: SlotState[];
  private readonly dispatcher: Dispatcher;
  private readonly leases = new LeaseTable();
  private readonly deaths = new WeakMap<Task, number>();
  private readonly probes: (Probe | undefined)[];
  /** What each thread said it was running as it exited, until it is replaced. */
  private readonly dying: (readonly TaskId[] | undefined)[];
  private nextPing = 0;
  private readonly cancelGraceMs: number;
  private readonly maxMessageBytes: number;
  private pumping = false;
  private closed = false;
  private readonly started: Promise<void>;
  private onStarted!: { resolve: () => void; reject: (error: Error) => void };

  private constructor(
    private readonly pool: Hosted,
    private readonly modules: readonly string[],
    options: ThreadBackendOptions,
  ) {
    const workers = options.workers;
    this.parallelism = workers;
    this.cancelGraceMs = options.cancelGraceMs ?? DEFAULT_CANCEL_GRACE_MS;
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.probes = new Array<Probe | undefined>(workers).fill(undefined);
    this.dying = new Array<readonly TaskId[] | undefined>(workers).fill(undefined);
    this.started = new Promise((resolve, reject) => (this.onStarted = { resolve, reject }));
    const host = pool.host;
    this.tasks = host.allocate<HostMessage>(TASK_CHANNEL)[0];
    for (let index = 0; index < workers; index++) this.results.push(host.allocate<WorkerMessage>(RESULT_CHANNEL_BASE + index)[1]);
    this.states = this.results.map(() => 'starting');
    this.dispatcher = new Dispatcher(
      workers,
      (index, batch) => {
        const push = this.tasks[index]!;
        for (const task of batch) push.send(task);
        push.flush();
      },
      options.concurrency,
    );
    pool.on('exit', (index: number, error: Error | undefined) => this.onExit(index, error));
  }

  /** Starts `workers` threads and resolves once each has imported `modules`. */
  static async start(options: ThreadBackendOptions): Promise<ThreadBackend> {
    const modules = options.modules.map(moduleUrl);
    const pool = await startHosted({
      workers: options.workers,
      module: workerModule(),
      export: 'serveThread',
      imports: modules,
      maxMessageBytes: options.maxMessageBytes,
    });
    const backend = new ThreadBackend(pool, modules, options);
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
    return this.leases.lease(
      handlers,
      (key) => {
        // Its tasks on workers are forgotten too: their results would be
        // dropped anyway, and one that never answers must not hold a slot.
        this.dispatcher.drop(key);
        void this.pump();
      },
      (task) => this.onTimedOut(task),
    );
  }

  dispatch(tasks: readonly Task[]): void {
    this.dispatcher.enqueue(tasks);
    void this.pump();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const probe of this.probes) clearTimeout(probe?.timer);
    this.dispatcher.clear();
    this.leases.failAll(new RuntimeClosedError('the runtime was closed'));
    this.onStarted.reject(new RuntimeClosedError('the runtime was closed while starting'));
    await this.pool.close();
  }

  private hello(index: number): void {
    this.states[index] = 'starting';
    const push = this.tasks[index]!;
    push.send({ hello: this.modules, maxMessageBytes: this.maxMessageBytes });
    push.flush();
  }

  /** Receives results while anything is outstanding; stops when idle. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      let yieldedAt = performance.now();
      while (!this.closed && (this.dispatcher.inFlight > 0 || this.states.includes('starting') || this.probes.some((p) => p !== undefined))) {
        this.pool.host.receive();
        if (!this.collect()) {
          await this.pool.host.awaitEventsAsync(PARK_MS);
          yieldedAt = performance.now();
        } else if (performance.now() - yieldedAt > YIELD_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          yieldedAt = performance.now();
        }
      }
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.pumping = false;
    }
  }

  /** Moves arrived results to their leases; true if anything arrived. */
  private collect(): boolean {
    let any = false;
    const settled: TaskResult[] = [];
    for (let index = 0; index < this.results.length; index++) {
      const pull = this.results[index]!;
      const results: TaskResult[] = [];
      for (let message = pull.recv(); message !== undefined; message = pull.recv()) {
        any = true;
        if (isResult(message)) results.push(unpackResult(message));
        else if ('ready' in message) this.onReady(index);
        else if ('parked' in message) this.dispatcher.setParked(index, message.parked);
        else if ('pong' in message) this.onPong(index, message.pong);
        else if ('progress' in message) this.leases.routeProgress([unpackProgress(message.progress)]);
        else this.dying[index] = message.dying;
      }
      if (results.length > 0) settled.push(...this.dispatcher.settle(index, results));
    }
    if (settled.length > 0) this.leases.route(settled);
    return any;
  }

  private onReady(index: number): void {
    this.states[index] = 'ready';
    this.dying[index] = undefined;
    this.dispatcher.setReady(index, true);
    if (!this.states.includes('starting')) this.onStarted.resolve();
  }

  private onExit(index: number, error: Error | undefined): void {
    // A thread this backend terminated as stuck is already dealt with.
    if (this.closed || this.states[index] === 'dead') return;
    const wasStarting = this.states[index] === 'starting';
    this.states[index] = 'dead';
    this.dispatcher.setReady(index, false);
    if (wasStarting) {
      // It could not even import the operations: a new thread would fail alike.
      const cause = error ?? new Error(`worker ${index} exited before it was ready`);
      this.fail(new RuntimeClosedError(`worker ${index} failed to start: ${cause.message}`, { cause }));
      return;
    }
    this.endProbe(index);
    // What the thread sent before it ended: its last results and its note of
    // what it was running. Its rings are dropped by the replacement.
    this.pool.host.receive();
    this.collect();
    const running = this.dying[index];
    const lost = this.dispatcher.takeFrom(index);
    const blamed = running === undefined ? lost : lost.filter((task) => running.some((id) => sameTask(task, id)));
    this.requeue(lost, new Set(blamed), error);
    void this.replace(index);
  }

  /**
   * Puts a dead thread's tasks back in the queue; those it was running count
   * a death, and one that has been running on MAX_DEATHS dead threads is
   * given up with WorkerLostError.
   */
  private requeue(lost: Task[], blamed: ReadonlySet<Task>, error: Error | undefined): void {
    const again: Task[] = [];
    const given: TaskResult[] = [];
    for (const task of lost) {
      if (!blamed.has(task)) {
        again.push(task);
        continue;
      }
      const deaths = (this.deaths.get(task) ?? 0) + 1;
      this.deaths.set(task, deaths);
      if (deaths < MAX_DEATHS) again.push(task);
      else {
        const others = blamed.size > 1 ? ` (the last time, ${blamed.size - 1} other tasks were running alongside it)` : '';
        const how = error === undefined ? '' : ` (${error.message})`;
        given.push(failed(task, new WorkerLostError(`a worker thread died while running this task, ${deaths} times${how}${others}`)));
      }
    }
    this.dispatcher.requeue(again);
    if (given.length > 0) this.leases.route(given);
    void this.pump();
  }

  // ---------------------------------------------------------------- stuck threads

  /** A directive gave up waiting for `id`: if a thread still holds it, is that thread stuck? */
  private onTimedOut(id: TaskIdentity): void {
    if (this.closed) return;
    const held = this.dispatcher.holder(id);
    if (held === undefined || this.states[held.worker] !== 'ready') return;
    const { worker, task } = held;
    let probe = this.probes[worker];
    if (probe === undefined) {
      probe = { id: this.nextPing++, suspects: [], timer: setTimeout(() => this.terminateStuck(worker), this.cancelGraceMs) };
      this.probes[worker] = probe;
      this.dispatcher.setReady(worker, false);
      const push = this.tasks[worker]!;
      push.send({ ping: probe.id });
      push.flush();
      void this.pump();
    }
    probe.suspects.push(task);
  }

  private onPong(index: number, id: number): void {
    if (this.probes[index]?.id !== id) return;
    this.endProbe(index);
    if (this.states[index] === 'ready') this.dispatcher.setReady(index, true);
  }

  private endProbe(index: number): Probe | undefined {
    const probe = this.probes[index];
    clearTimeout(probe?.timer);
    this.probes[index] = undefined;
    return probe;
  }

  /** No pong within the grace: the thread is stuck in a task. Its timed-out tasks are given up, the rest re-queued. */
  private terminateStuck(index: number): void {
    const probe = this.endProbe(index);
    if (probe === undefined || this.closed || this.states[index] !== 'ready') return;
    this.states[index] = 'dead';
    this.dispatcher.setReady(index, false);
    const suspects = new Set(probe.suspects);
    this.requeue(
      this.dispatcher.takeFrom(index).filter((task) => !suspects.has(task)),
      new Set(),
      undefined,
    );
    void this.replace(index);
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
    this.leases.failAll(error);
    this.onStarted.reject(error);
    void this.close();
  }
}
