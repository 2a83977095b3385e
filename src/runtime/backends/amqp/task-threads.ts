// Where an AMQP worker runs its tasks: N worker threads of the thread
// backend (`Runtime.inMemory`'s machinery: its pool, dispatcher, stuck-thread
// replacement and cancellation), fed one task message at a time. The
// worker's main thread keeps the broker connection, so heartbeats, acks and
// cancellations never wait behind a synchronous task.
//
// Design notes
// - Each task message runs under a lease of its own on the thread backend,
//   its tasks re-keyed to that lease and their results and progress keyed
//   back: the message's results are all in once that lease has one per
//   task, and releasing it cancels exactly that message's running tasks.
// - At least once inside too: a thread that dies has its tasks run again
//   on another, so a task may answer twice; the first answer counts.

import { ThreadBackend } from '../threads/thread-backend.ts';
import type { Lease } from '../../core/backend.ts';
import type { Task, TaskIdentity, TaskProgress, TaskResult } from '../../core/task.ts';
import { MetricsRecorder } from '../../observability/metrics.ts';

export interface TaskThreadsOptions {
  threads: number;
  modules: readonly (string | URL)[];
  cancelGraceMs?: number | undefined;
}

/** One task message running on the threads. */
interface Batch {
  readonly lease: Lease;
  /** `index:stage:attempt` of each task, in order. */
  readonly ids: readonly string[];
  readonly settle: (results: TaskResult[] | undefined) => void;
  done: boolean;
}

const idOf = (task: Omit<TaskIdentity, 'key'>) => `${task.index}:${task.stage}:${task.attempt}`;

export class TaskThreads {
  /** Running batches, by the key of their tasks (the AMQP lease key). */
  private readonly batches = new Map<string, Set<Batch>>();
  /** When the last batch's results were in (performance.now()). */
  private lastFinished = -Infinity;

  /**
   * What the threads ran, for `AmqpWorker.metrics()`: per operation, tasks
   * completed and failed, their run times, and their waits from the
   * message's arrival on the threads to their start.
   */
  readonly metrics = new MetricsRecorder(true);

  /** Resolves with the error once the threads fail for good, running a batch or not. */
  readonly failed: Promise<Error>;

  /** Why the threads failed for good, once they have. */
  get failure(): Error | undefined {
    return this.backend.failure;
  }

  private constructor(private readonly backend: ThreadBackend) {
    this.failed = backend.failed;
  }

  /** Starts the threads; resolves once every one has imported the operations. */
  static async start(options: TaskThreadsOptions): Promise<TaskThreads> {
    const backend = await ThreadBackend.start({ workers: options.threads, modules: options.modules, cancelGraceMs: options.cancelGraceMs });
    return new TaskThreads(backend);
  }

  /**
   * Runs the tasks of one message (all of one key) and resolves with one
   * result per task, in order; with undefined if their lease is released
   * meanwhile. Rejects if the threads are closed or fail for good.
   * `graceMs`: their run's `cancelGraceMs`, if it set one (else the
   * worker's). `progress` gets their progress details, keyed as the tasks.
   */
  run(tasks: readonly Task[], graceMs: number | undefined, progress: (updates: readonly TaskProgress[]) => void): Promise<TaskResult[] | undefined> {
    if (tasks.length === 0) return Promise.resolve([]);
    const key = tasks[0]!.key;
    const ids = tasks.map(idOf);
    const expected = new Set(ids).size;
    const answers = new Map<string, TaskResult>();
    const started = performance.now();
    const ops = new Map(ids.map((id, i) => [id, tasks[i]!.op]));
    return new Promise((resolve, reject) => {
      const lease = this.backend.lease({
        results: (results) => {
          for (const result of results) {
            const id = idOf(result);
            if (answers.has(id)) continue;
            answers.set(id, { ...result, key });
            this.record(ops.get(id)!, result, started);
          }
          if (answers.size < expected || batch.done) return;
          this.end(key, batch, 'its results are in');
          resolve(ids.map((id) => answers.get(id)!));
        },
        failed: (error) => {
          batch.done = true;
          this.batches.get(key)?.delete(batch);
          reject(error);
        },
        progress: (updates) => progress(updates.map((update) => ({ ...update, key }))),
      }, { cancelGraceMs: graceMs });
      const batch: Batch = { lease, ids, settle: resolve, done: false };
      let running = this.batches.get(key);
      if (running === undefined) this.batches.set(key, (running = new Set()));
      running.add(batch);
      this.backend.dispatch(tasks.map((task) => ({ ...task, key: lease.key })));
    });
  }

  /** Lease `key` was released: its running tasks are cancelled (`why`), and their batches resolve undefined. */
  release(key: string, why: string): void {
    for (const batch of [...(this.batches.get(key) ?? [])]) {
      this.end(key, batch, why);
      batch.settle(undefined);
    }
  }

  /** One task is cancelled: its signal aborts, or its thread is replaced after `cancelGraceMs`; it still answers. */
  cancel(task: TaskIdentity, why: string): void {
    const id = idOf(task);
    for (const batch of this.batches.get(task.key) ?? []) {
      if (batch.ids.includes(id)) batch.lease.cancel?.({ key: batch.lease.key, index: task.index, stage: task.stage, attempt: task.attempt }, why);
    }
  }

  /**
   * The time a batch started at `started` took the threads, for `x-weft-ms`
   * (the orchestrator sizes messages from it): batches queue behind each
   * other on the threads, so its wall time would count the others' work
   * too, and the orchestrator would cut ever smaller messages. Since the
   * previous batch finished, the threads worked on this one (as the
   * channel-protocol Dispatcher times its workers).
   */
  workTime(started: number): number {
    const now = performance.now();
    const took = Math.min(now - started, now - this.lastFinished);
    this.lastFinished = now;
    return took;
  }

  close(): Promise<void> {
    return this.backend.close();
  }

  private record(operation: string, result: TaskResult, started: number): void {
    const record = this.metrics.operation(operation);
    if (result.error !== undefined) {
      record.failed++;
      return;
    }
    record.completed++;
    this.metrics.timed(record, performance.now() - started, result.us, result.w);
  }

  private end(key: string, batch: Batch, why: string): void {
    batch.done = true;
    batch.lease.release(why);
    const running = this.batches.get(key);
    running?.delete(batch);
    if (running?.size === 0) this.batches.delete(key);
  }
}
