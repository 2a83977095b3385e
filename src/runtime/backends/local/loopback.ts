// A backend that runs tasks on the calling thread, between turns of its event
// loop. It needs no module loading (the operations are already registered
// here), which makes it the backend for unit tests and for `Runtime.local()`.
// Tasks and results are encoded and decoded as the thread backend's are (the
// same value model, copies, an OutputError for an output that cannot be
// sent), so a test on it sees what the other backends would.

//
// Cancellation: a cancelled async operation sees its signal abort at once; a
// synchronous one cannot be running when a cancellation arrives (it holds
// the very thread). This thread cannot be terminated, so an async operation
// that ignores its signal past the grace is given up on: a timed-out one
// fails its directive with TaskStuckError rather than run beside its retry.

import { codecs, type Codec } from '../../../allocator/index.ts';
import { packResult, unpackResult } from '../../channel-protocol/outputs.ts';
import { DEFAULT_CANCEL_GRACE_MS, LeaseTable, type Backend, type Lease, type LeaseHandlers, type LeaseOptions } from '../../core/backend.ts';
import { RuntimeClosedError, TaskCancelledError, TaskStuckError } from '../../core/errors.ts';
import { cancels, failed, type CancelScope, type Task, type TaskIdentity, type TaskResult } from '../../core/task.ts';
import type { WorkerMessage } from '../../channel-protocol/messages.ts';
import { Executor } from '../../core/executor.ts';
import { TaskBatches, taskChannel } from '../../observability/channels.ts';

const taskCodec = codecs.msgpack<Task>();
const resultCodec = codecs.msgpack<WorkerMessage>();
const detailCodec = codecs.msgpack<unknown>();

/** One message through `codec`, as a receiver on another thread gets it. */
function across<T>(codec: Codec<T>, message: T): T {
  const batcher = codec.batcher();
  batcher.add(message);
  return codec.decode(batcher.take(), 1, false)[0]!;
}

const delivered = (result: TaskResult): TaskResult => unpackResult(across(resultCodec, packResult(result, Infinity)) as TaskResult);

export class LoopbackBackend implements Backend {
  // Async operations overlap without a bound here.
  readonly parallelism = Infinity;
  private readonly leases = new LeaseTable();
  private readonly worker = new Executor((task, detail) =>
    this.leases.routeProgress([{ key: task.key, index: task.index, stage: task.stage, attempt: task.attempt, detail: across(detailCodec, detail) }]),
  );
  private readonly batches = new TaskBatches(0);
  private queue: Task[] = [];
  /** Tasks whose async operation has not settled. */
  private readonly running = new Set<Task>();
  /** Timers that give up on cancelled tasks that run on. */
  private readonly graces = new Set<ReturnType<typeof setTimeout>>();
  private scheduled = false;
  private closed = false;

  /** `cancelGraceMs`: how long a cancelled async task has to settle (default 1000 ms). */
  constructor(private readonly cancelGraceMs = DEFAULT_CANCEL_GRACE_MS) {}

  lease(handlers: LeaseHandlers, options?: LeaseOptions): Lease {
    if (this.closed) throw new RuntimeClosedError('the runtime is closed');
    const grace = options?.cancelGraceMs ?? this.cancelGraceMs;
    return this.leases.lease(
      handlers,
      (key, why) => {
        this.queue = this.queue.filter((task) => task.key !== key);
        this.worker.cancel({ key, why });
      },
      (task, why) => this.cancel(task, why, grace),
    );
  }

  dispatch(tasks: readonly Task[]): void {
    for (const task of tasks) this.queue.push(task);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.queue = [];
    for (const timer of this.graces) clearTimeout(timer);
    this.graces.clear();
    this.worker.cancel({ why: 'the runtime was closed' });
    this.leases.failAll(new RuntimeClosedError('the runtime was closed'));
  }

  /** One attempt timed out: it never starts, or its signal aborts; either way a result for it follows. */
  private cancel(id: TaskIdentity, why: string, grace: number): void {
    const scope: CancelScope = { key: id.key, task: [id.index, id.stage, id.attempt], why };
    const queued = this.queue.findIndex((task) => cancels(scope, task));
    const running = [...this.running].find((task) => cancels(scope, task));
    if (queued >= 0 || running === undefined) {
      if (queued >= 0) this.queue.splice(queued, 1);
      const answer = [failed(id, new TaskCancelledError(`${why} (before it started)`))];
      setImmediate(() => this.leases.route(answer));
      return;
    }
    this.worker.cancel(scope);
    const timer = setTimeout(() => {
      this.graces.delete(timer);
      if (!this.running.has(running)) return;
      const message = `the task went on ${grace} ms after it was cancelled (${why}), and Runtime.local cannot stop it: it is not retried, so that two attempts never run at once`;
      this.leases.route([failed(running, new TaskStuckError(message))]);
    }, grace);
    this.graces.add(timer);
  }

  // Runs what is queued now, then yields to the event loop so that timers,
  // aborts and new dispatches interleave with long queues. Async operations
  // run concurrently, each result delivered when it settles.
  private drain(): void {
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    const results: TaskResult[] = [];
    let i = 0;
    while (i < batch.length) {
      const task = batch[i++]!;
      if (!this.leases.has(task.key)) continue;
      // Inputs the codec refuses never get here (Execution fails them).
      const copy = across(taskCodec, task);
      if (!taskChannel.hasSubscribers) {
        this.run(copy, false, results);
        continue;
      }
      // The batch's tasks queued after this one run inside one call of its
      // subscriber's wrap: entering a context costs about 1 µs a time on
      // Node 24 (AsyncLocalStorage.run), as much as a tiny task.
      this.batches.before(copy);
      this.batches.run(() => {
        this.run(copy, true, results);
        while (i < batch.length && this.batches.continues(batch[i]!)) {
          const next = batch[i++]!;
          if (!this.leases.has(next.key)) continue;
          const nextCopy = across(taskCodec, next);
          this.batches.before(nextCopy);
          this.run(nextCopy, true, results);
        }
      });
    }
    this.batches.end();
    this.leases.route(results);
  }

  /** Runs `copy` (a task on a copy of its input): its result into `results`, or routed once it settles. */
  private run(copy: Task, traced: boolean, results: TaskResult[]): void {
    const result = this.worker.execute(copy);
    if (traced) this.batches.after(result);
    if (result instanceof Promise) {
      this.running.add(copy);
      void result.then((settled) => {
        this.running.delete(copy);
        this.leases.route([delivered(settled)]);
      });
    } else results.push(delivered(result));
  }
}
