// A worker's service loop over allocator channels: run task batches as they
// arrive from the coordinator and stream results back to it. The thread
// backend's threads and the cluster backend's workers both run it.

import type { Allocator, Push } from '../allocator/index.ts';
import type { TaskResult } from './task.ts';
import { RESULT_CHANNEL_BASE, TASK_CHANNEL, type HostMessage, type WorkerMessage } from './wire.ts';
import { WorkerRuntime } from './worker-runtime.ts';

// Results of cheap tasks leave in batches at the end of a run of tasks; once
// a run has taken this long, each result is flushed as it is made, so the
// coordinator learns quickly that a slow worker is free and can send more.
const FLUSH_AFTER_MS = 1;

/**
 * Serves tasks from worker `coordinator` until it says stop. With `modules`,
 * imports them first and reports ready; without, waits for a hello naming them.
 */
export async function serveTasks(allocator: Allocator, coordinator: number, modules?: readonly string[]): Promise<void> {
  const [, tasks] = allocator.allocate<HostMessage>(TASK_CHANNEL);
  const [pushers] = allocator.allocate<WorkerMessage>(RESULT_CHANNEL_BASE + allocator.index);
  const results = pushers[coordinator]!;
  const later = new LateResults(results);
  // A module that cannot be imported ends this worker with the error; the
  // coordinator reports it rather than starting another worker.
  const load = async (urls: readonly string[]) => {
    const runtime = await WorkerRuntime.load(urls);
    results.send({ ready: 1 });
    results.flush();
    return runtime;
  };
  let runtime = modules === undefined ? undefined : await load(modules);
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
        runtime = await load(message.hello);
        continue;
      }
      // The orchestrator is closing: results of async operations still
      // running would go nowhere.
      if ('stop' in message) return results.flush();
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
