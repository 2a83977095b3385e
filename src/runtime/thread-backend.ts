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

import { fileURLToPath } from 'node:url';
import { startHosted, type Hosted } from '../allocator/hosted.ts';
import type { Pull, Push } from '../allocator/index.ts';
import { LeaseTable, type Backend, type Lease, type LeaseHandlers } from './backend.ts';
import { Dispatcher } from './dispatcher.ts';
import { RuntimeClosedError, WorkerLostError } from './errors.ts';
import { failed, type Task, type TaskResult } from './task.ts';
import { RESULT_CHANNEL_BASE, TASK_CHANNEL, type HostMessage, type WorkerMessage } from './wire.ts';
import { moduleUrl } from './worker-runtime.ts';

// A task in flight on this many workers that died is given up on: it is
// likely the one killing them.
const MAX_DEATHS = 3;
// The pump parks until a ring delivers; this bound only limits how long a
// missed wake-up could stall it.
const PARK_MS = 100;
// While results keep coming the pump never parks; it yields to the event loop
// this often so timers, aborts and async sources get their turn.
const YIELD_MS = 2;

type SlotState = 'starting' | 'ready' | 'dead';

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
    for (let index = 0; index < workers; index++) this.results.push(host.allocate<WorkerMessage>(RESULT_CHANNEL_BASE + index)[1]);
    this.states = this.results.map(() => 'starting');
    this.dispatcher = new Dispatcher(workers, (index, batch) => {
      const push = this.tasks[index]!;
      for (const task of batch) push.send(task);
      push.flush();
    });
    pool.on('exit', (index: number, error: Error | undefined) => this.onExit(index, error));
  }

  /** Starts `workers` threads and resolves once each has imported `modules`. */
  static async start(options: { workers: number; modules: readonly (string | URL)[] }): Promise<ThreadBackend> {
    const modules = options.modules.map(moduleUrl);
    const pool = await startHosted({ workers: options.workers, module: workerModule(), export: 'serveThread', imports: modules });
    const backend = new ThreadBackend(pool, modules, options.workers);
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
    return this.leases.lease(handlers, (key) => {
      // Its tasks on workers are forgotten too: their results would be
      // dropped anyway, and one that never answers must not hold a slot.
      this.dispatcher.drop(key);
      void this.pump();
    });
  }

  dispatch(tasks: readonly Task[]): void {
    this.dispatcher.enqueue(tasks);
    void this.pump();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.dispatcher.clear();
    this.leases.failAll(new RuntimeClosedError('the runtime was closed'));
    this.onStarted.reject(new RuntimeClosedError('the runtime was closed while starting'));
    await this.pool.close();
  }

  private hello(index: number): void {
    this.states[index] = 'starting';
    const push = this.tasks[index]!;
    push.send({ hello: this.modules });
    push.flush();
  }

  /** Receives results while anything is outstanding; stops when idle. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      let yieldedAt = performance.now();
      while (!this.closed && (this.dispatcher.inFlight > 0 || this.states.includes('starting'))) {
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
        if ('ready' in message) this.onReady(index);
        else results.push(message);
      }
      if (results.length > 0) settled.push(...this.dispatcher.settle(index, results));
    }
    if (settled.length > 0) this.leases.route(settled);
    return any;
  }

  private onReady(index: number): void {
    this.states[index] = 'ready';
    this.dispatcher.setReady(index, true);
    if (!this.states.includes('starting')) this.onStarted.resolve();
  }

  private onExit(index: number, error: Error | undefined): void {
    if (this.closed) return;
    const wasStarting = this.states[index] === 'starting';
    this.states[index] = 'dead';
    this.dispatcher.setReady(index, false);
    if (wasStarting) {
      // It could not even import the operations: a new thread would fail alike.
      const cause = error ?? new Error(`worker ${index} exited before it was ready`);
      this.fail(new RuntimeClosedError(`worker ${index} failed to start: ${cause.message}`, { cause }));
      return;
    }
    this.requeue(this.dispatcher.takeFrom(index));
    void this.replace(index);
  }

  private requeue(lost: Task[]): void {
    const again: Task[] = [];
    const given: TaskResult[] = [];
    for (const task of lost) {
      const deaths = (this.deaths.get(task) ?? 0) + 1;
      this.deaths.set(task, deaths);
      if (deaths < MAX_DEATHS) again.push(task);
      else given.push(failed(task, new WorkerLostError(`a worker thread died while running this task, ${deaths} times`)));
    }
    this.dispatcher.requeue(again);
    if (given.length > 0) this.leases.route(given);
    void this.pump();
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
