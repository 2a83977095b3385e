// A backend that runs tasks on the calling thread, between turns of its event
// loop. It needs no module loading (the operations are already registered
// here), which makes it the backend for unit tests and for `Runtime.local()`.
// Tasks and results are encoded and decoded as the thread backend's are (the
// same value model, copies, an OutputError for an output that cannot be
// sent), so a test on it sees what the other backends would.

import { codecs, type Codec } from '../../../allocator/index.ts';
import { packResult, unpackResult } from '../../channel-protocol/outputs.ts';
import { LeaseTable, type Backend, type Lease, type LeaseHandlers } from '../../core/backend.ts';
import { RuntimeClosedError } from '../../core/errors.ts';
import type { Task, TaskResult } from '../../core/task.ts';
import type { WorkerMessage } from '../../channel-protocol/messages.ts';
import { Executor } from '../../core/executor.ts';

const taskCodec = codecs.msgpack<Task>();
const resultCodec = codecs.msgpack<WorkerMessage>();

/** One message through `codec`, as a receiver on another thread gets it. */
function across<T>(codec: Codec<T>, message: T): T {
  const batcher = codec.batcher();
  batcher.add(message);
  return codec.decode(batcher.take(), 1, false)[0]!;
}

const delivered = (result: TaskResult): TaskResult => unpackResult(across(resultCodec, packResult(result, Infinity)) as TaskResult);

export class LoopbackBackend implements Backend {
  readonly parallelism = 1;
  private readonly worker = new Executor();
  private readonly leases = new LeaseTable();
  private queue: Task[] = [];
  private scheduled = false;
  private closed = false;

  lease(handlers: LeaseHandlers): Lease {
    if (this.closed) throw new RuntimeClosedError('the runtime is closed');
    return this.leases.lease(handlers, (key) => {
      this.queue = this.queue.filter((task) => task.key !== key);
    });
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
    this.leases.failAll(new RuntimeClosedError('the runtime was closed'));
  }

  // Runs what is queued now, then yields to the event loop so that timers,
  // aborts and new dispatches interleave with long queues. Async operations
  // run concurrently, each result delivered when it settles.
  private drain(): void {
    const batch = this.queue;
    this.queue = [];
    this.scheduled = false;
    const results: TaskResult[] = [];
    for (const task of batch) {
      if (!this.leases.has(task.key)) continue;
      // Inputs the codec refuses never get here (Execution fails them).
      const result = this.worker.execute(across(taskCodec, task));
      if (result instanceof Promise) void result.then((settled) => this.leases.route([delivered(settled)]));
      else results.push(delivered(result));
    }
    this.leases.route(results);
  }
}
