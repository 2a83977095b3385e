// A backend that runs tasks on the calling thread, between turns of its event
// loop. It needs no module loading (the operations are already registered
// here), which makes it the backend for unit tests and for `Runtime.local()`.
// Inputs and outputs are passed by reference, not encoded.

import { LeaseTable, type Backend, type Lease, type LeaseHandlers } from './backend.ts';
import { RuntimeClosedError } from './errors.ts';
import type { Task, TaskResult } from './task.ts';
import { WorkerRuntime } from './worker-runtime.ts';

export class LoopbackBackend implements Backend {
  readonly parallelism = 1;
  private readonly worker = new WorkerRuntime();
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
      const result = this.worker.execute(task);
      if (result instanceof Promise) void result.then((settled) => this.leases.route([settled]));
      else results.push(result);
    }
    this.leases.route(results);
  }
}
