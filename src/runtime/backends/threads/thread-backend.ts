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
// - Cancellation (a directive ended, a task timed out, the runtime closes,
//   see channel-protocol/cancels.ts): a thread cannot be interrupted, only
//   terminated, so one still holding a cancelled task `cancelGraceMs` after
//   it was told is terminated and replaced like a dead one; its cancelled
//   tasks answer TaskCancelledError (a timed-out attempt's directive may now
//   retry it) and its other tasks go to the other threads.
// - Of a dead thread's tasks, only those it was running are blamed (blame.ts).
// - The pool of threads and its options: pool.ts.

import type { Hosted } from '../../../allocator/hosted.ts';
import type { Pull, Push } from '../../../allocator/index.ts';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../../allocator/internal.ts';
import { DEFAULT_CANCEL_GRACE_MS, LeaseTable, type Backend, type Lease, type LeaseHandlers, type LeaseOptions } from '../../core/backend.ts';
import { DEFAULT_CONCURRENCY, Dispatcher } from '../../channel-protocol/dispatcher.ts';
import { Cancellations } from '../../channel-protocol/cancels.ts';
import { RuntimeClosedError, TaskCancelledError } from '../../core/errors.ts';
import { Pieces, unpackProgress } from '../../channel-protocol/outputs.ts';
import { failed, type CancelScope, type Task, type TaskResult } from '../../core/task.ts';
import { isResult, RESULT_CHANNEL_BASE, TASK_CHANNEL, type HostMessage, type TaskId, type WorkerMessage } from '../../channel-protocol/messages.ts';
import { Pump } from '../../channel-protocol/pump.ts';
import { sendTasks } from '../../channel-protocol/send-tasks.ts';
import { moduleUrl } from '../../../allocator/index.ts';
import { Blame } from './blame.ts';
import { startPool, type ThreadBackendOptions } from './pool.ts';
import { threadReplacedChannel, type ThreadReplacedMessage } from '../../observability/channels.ts';

// The pump parks until a ring delivers; this bound only limits how long a
// missed wake-up could stall it.
const PARK_MS = 100;

type SlotState = 'starting' | 'ready' | 'dead';

export class ThreadBackend implements Backend {
  readonly parallelism: number;
  private readonly tasks: Push<HostMessage>[];
  private readonly results: Pull<WorkerMessage>[] = [];
  /** Large binary outputs coming in pieces (outputs.ts). */
  private readonly pieces: Pieces;
  private readonly states: SlotState[];
  private readonly dispatcher: Dispatcher;
  private readonly leases = new LeaseTable();
  private readonly blame = new Blame();
  private readonly cancellations: Cancellations;
  private readonly cancelGraceMs: number;
  /** Called once no cancelled task is left on a thread (close waits for it). */
  private onCancelsAnswered: (() => void) | undefined;
  /** close() was called: nothing new is accepted; the threads stop once cancelled tasks answered. */
  private closing: Promise<void> | undefined;
  /** Threads being replaced. */
  private readonly replacing = new Set<Promise<void>>();
  /** What each thread said it was running as it exited, until it is replaced. */
  private readonly dying: (readonly TaskId[] | undefined)[];
  private readonly maxMessageBytes: number;
  /** Receives results while anything is outstanding; stops when idle. */
  private readonly pumper: Pump;
  private closed = false;
  private failedWith: Error | undefined;
  /**
   * Resolves with the error once the backend fails for good (a thread that
   * cannot be replaced), whether or not a directive was running to see it.
   */
  readonly failed: Promise<Error>;
  private onFailed!: (error: Error) => void;
  private readonly started: Promise<void>;
  private onStarted!: { resolve: () => void; reject: (error: Error) => void };

  private constructor(
    private readonly pool: Hosted,
    private readonly modules: readonly string[],
    options: ThreadBackendOptions,
  ) {
    const workers = options.workers;
    this.parallelism = workers * (options.concurrency ?? DEFAULT_CONCURRENCY);
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.dying = new Array<readonly TaskId[] | undefined>(workers).fill(undefined);
    this.started = new Promise((resolve, reject) => (this.onStarted = { resolve, reject }));
    this.failed = new Promise((resolve) => (this.onFailed = resolve));
    const host = pool.host;
    this.tasks = host.allocate<HostMessage>(TASK_CHANNEL)[0];
    for (let index = 0; index < workers; index++) this.results.push(host.allocate<WorkerMessage>(RESULT_CHANNEL_BASE + index)[1]);
    this.pieces = Pieces.on(host, workers);
    this.states = this.results.map(() => 'starting');
    this.dispatcher = new Dispatcher(
      workers,
      (index, batch) => {
        const refused = sendTasks(this.tasks[index]!, batch, this.maxMessageBytes);
        // Settled once the dispatcher is done sending: settling refills the workers.
        if (refused.length > 0) queueMicrotask(() => this.leases.route(this.dispatcher.settle(index, refused)));
      },
      options.concurrency,
      options.minQueued,
    );
    this.cancelGraceMs = options.cancelGraceMs ?? DEFAULT_CANCEL_GRACE_MS;
    this.cancellations = new Cancellations(
      this.dispatcher,
      (worker, cancel) => {
        const push = this.tasks[worker]!;
        push.send(cancel);
        push.flush();
      },
      (answered) => this.leases.route(answered),
      (worker) => {
        // Closing, every thread is about to be terminated anyway.
        if (this.closing === undefined && this.states[worker] === 'ready') this.terminate(worker);
      },
    );
    this.pumper = new Pump(
      pool.host,
      PARK_MS,
      () => !this.closed && (this.dispatcher.inFlight > 0 || this.states.includes('starting')),
      () => this.collect(),
    );
    pool.on('exit', (index: number, error: Error | undefined) => this.onExit(index, error));
  }

  /** Starts `workers` threads and resolves once each has imported `modules`. */
  static async start(options: ThreadBackendOptions): Promise<ThreadBackend> {
    const modules = options.modules.map(moduleUrl);
    const pool = await startPool(options, modules);
    const backend = new ThreadBackend(pool, modules, options);
    for (let index = 0; index < options.workers; index++) backend.hello(index);
    backend.pump();
    try {
      await backend.started;
    } catch (error) {
      await backend.close();
      throw error;
    }
    return backend;
  }

  /** Why the backend failed for good, once it has. */
  get failure(): Error | undefined {
    return this.failedWith;
  }

  lease(handlers: LeaseHandlers, options?: LeaseOptions): Lease {
    if (this.failedWith !== undefined) throw new RuntimeClosedError(`the runtime stopped: ${this.failedWith.message}`, { cause: this.failedWith });
    if (this.closing !== undefined) throw new RuntimeClosedError('the runtime is closed');
    const grace = options?.cancelGraceMs ?? this.cancelGraceMs;
    return this.leases.lease(
      handlers,
      (key, why) => this.cancel({ key, why }, grace),
      (task, why) => this.cancel({ key: task.key, task: [task.index, task.stage, task.attempt], why }, grace),
    );
  }

  dispatch(tasks: readonly Task[]): void {
    if (this.closing !== undefined) return;
    this.dispatcher.enqueue(tasks);
    this.pump();
  }

  /**
   * Fails the open directives, cancels the running tasks, and stops the
   * threads once those have answered or `cancelGraceMs` has passed.
   */
  close(): Promise<void> {
    this.closing ??= this.stop();
    return this.closing;
  }

  private async stop(): Promise<void> {
    const held = this.cancel({ why: 'the runtime was closed' }, this.cancelGraceMs);
    this.leases.failAll(new RuntimeClosedError('the runtime was closed'));
    this.onStarted.reject(new RuntimeClosedError('the runtime was closed while starting'));
    if (held) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.cancelGraceMs);
        this.onCancelsAnswered = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.closed = true;
    this.cancellations.clear();
    this.dispatcher.clear();
    await Promise.allSettled(this.replacing);
    await this.pool.close();
  }

  private cancel(scope: CancelScope, graceMs: number): boolean {
    if (this.closed) return false;
    const held = this.cancellations.cancel(scope, graceMs);
    if (held) this.pump();
    return held;
  }

  private hello(index: number): void {
    this.states[index] = 'starting';
    const push = this.tasks[index]!;
    push.send({ hello: this.modules, maxMessageBytes: this.maxMessageBytes });
    push.flush();
  }

  /** Starts the pump unless it runs. */
  private pump(): void {
    this.pumper.run().catch((error: unknown) => {
      this.fail(error instanceof Error ? error : new RuntimeClosedError(`the host's receive loop failed: ${String(error)}`, { cause: error }));
    });
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
        if (isResult(message)) this.pieces.result(index, message, results);
        else if ('ready' in message) this.onReady(index);
        else if ('parked' in message) this.dispatcher.setParked(index, message.parked);
        else if ('progress' in message) this.leases.routeProgress([unpackProgress(message.progress)]);
        else if ('dying' in message) this.dying[index] = message.dying;
      }
      if (this.pieces.take(index, results)) any = true;
      if (results.length > 0) settled.push(...this.dispatcher.settle(index, results));
    }
    if (settled.length > 0) this.leases.route(settled);
    if (this.onCancelsAnswered !== undefined && this.dispatcher.cancelling === 0) this.onCancelsAnswered();
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
    if (this.closing !== undefined || this.states[index] === 'dead') return;
    const wasStarting = this.states[index] === 'starting';
    this.states[index] = 'dead';
    this.dispatcher.setReady(index, false);
    if (wasStarting) {
      // It could not even import the operations: a new thread would fail alike.
      const why = error?.message ?? `worker ${index} exited before it was ready`;
      this.fail(new RuntimeClosedError(`worker ${index} failed to start: ${why}`, { cause: error }));
      return;
    }
    // What the thread sent before it ended: its last results and its note of
    // what it was running. Its rings are dropped by the replacement.
    this.pool.host.receive();
    this.collect();
    this.pieces.drop(index);
    const { live: lost, cancelled } = this.dispatcher.takeFrom(index);
    this.answerStopped(cancelled, `its thread ended (${error?.message ?? 'it exited'})`);
    this.requeue(lost, Blame.blamed(lost, this.dying[index]), error);
    if (threadReplacedChannel.hasSubscribers) threadReplacedChannel.publish({ worker: index, reason: 'died', error } satisfies ThreadReplacedMessage);
    void this.replace(index);
  }

  /** Puts a dead thread's tasks back in the queue, but for those given up (see Blame). */
  private requeue(lost: readonly Task[], blamed: ReadonlySet<Task>, error: Error | undefined): void {
    const { again, given } = this.blame.sort(lost, blamed, error);
    this.dispatcher.requeue(again);
    if (given.length > 0) this.leases.route(given);
    this.pump();
  }

  // ---------------------------------------------------------------- cancelled tasks past their grace

  /** A cancelled task outlived its grace: its thread is terminated and replaced, its other tasks re-queued. */
  private terminate(index: number): void {
    this.states[index] = 'dead';
    this.pieces.drop(index);
    this.dispatcher.setReady(index, false);
    const { live, cancelled } = this.dispatcher.takeFrom(index);
    this.answerStopped(cancelled, 'it ran on past its grace, so its thread was terminated');
    this.requeue(live, new Set(), undefined);
    if (threadReplacedChannel.hasSubscribers) threadReplacedChannel.publish({ worker: index, reason: 'terminated', error: undefined } satisfies ThreadReplacedMessage);
    void this.replace(index);
  }

  /** Cancelled tasks whose thread is gone answer, so that a timed-out attempt can be retried. */
  private answerStopped(cancelled: readonly Task[], how: string): void {
    if (cancelled.length === 0) return;
    this.leases.route(cancelled.map((task) => failed(task, new TaskCancelledError(`the task was cancelled and ${how}`))));
  }

  private async replace(index: number): Promise<void> {
    const replacing = this.pool.replace(index);
    // close() waits for it: a thread started after the pool closed would keep the process alive.
    this.replacing.add(replacing);
    try {
      await replacing;
    } catch (error) {
      this.fail(new RuntimeClosedError(`cannot replace worker ${index}: ${(error as Error).message}`, { cause: error }));
      return;
    } finally {
      this.replacing.delete(replacing);
    }
    if (this.closed) return;
    this.hello(index);
    this.pump();
  }

  /** The backend cannot go on: every directive on it fails and the threads stop. */
  private fail(error: Error): void {
    if (this.closing !== undefined) return;
    this.failedWith = error;
    this.onFailed(error);
    this.leases.failAll(error);
    this.onStarted.reject(error);
    void this.close();
  }
}
