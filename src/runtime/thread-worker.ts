// The entry of each worker thread of `Runtime.inMemory`: wait for the hello
// naming the operations modules, import them, then run task batches as they
// arrive and stream results back.

import type { Allocator, Push } from '../allocator/index.ts';
import type { TaskResult } from './task.ts';
import { RESULT_CHANNEL_BASE, TASK_CHANNEL, type HostMessage, type WorkerMessage } from './thread-wire.ts';
import { WorkerRuntime } from './worker-runtime.ts';

// Results of cheap tasks leave in batches at the end of a run of tasks; once
// a run has taken this long, each result is flushed as it is made, so the
// host learns quickly that a slow worker is free and can hand it more work.
const FLUSH_AFTER_MS = 1;

export async function serveThread(allocator: Allocator): Promise<void> {
  const [, tasks] = allocator.allocate<HostMessage>(TASK_CHANNEL);
  const [pushers] = allocator.allocate<WorkerMessage>(RESULT_CHANNEL_BASE + allocator.index);
  const results = pushers[allocator.peers - 1]!;
  const later = new LateResults(results);
  let runtime: WorkerRuntime | undefined;
  for (;;) {
    allocator.receive();
    let message = tasks.recv();
    if (message === undefined) {
      await allocator.awaitEventsAsync();
      continue;
    }
    let flushedAt = performance.now();
    for (; message !== undefined; message = tasks.recv()) {
      if ('hello' in message) {
        // A module that cannot be imported ends this thread with the error;
        // the host reports it rather than replacing the thread.
        runtime = await WorkerRuntime.load(message.hello);
        results.send({ ready: 1 });
        results.flush();
        continue;
      }
      const outcome = runtime!.execute(message);
      if (outcome instanceof Promise) later.add(outcome);
      else results.send(outcome);
      const now = performance.now();
      if (now - flushedAt >= FLUSH_AFTER_MS) {
        results.flush();
        flushedAt = now;
      }
    }
    results.flush();
  }
}

/**
 * Async operations run concurrently, not one after another: an I/O-bound
 * operation does not hold up the tasks behind it, and one that never settles
 * costs its own task (which the orchestrator times out), not the worker.
 * Results that settle in the same turn leave in one flush.
 */
class LateResults {
  private scheduled = false;

  constructor(private readonly results: Push<WorkerMessage>) {}

  add(outcome: Promise<TaskResult>): void {
    void outcome.then((result) => {
      this.results.send(result);
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.results.flush();
      });
    });
  }
}
