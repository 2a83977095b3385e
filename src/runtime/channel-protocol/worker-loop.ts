// A worker's service loop over allocator channels: run task batches as they
// arrive from the coordinator and stream results back to it. The thread
// backend's threads and the cluster backend's workers both run it.

import { codecs, PeerError, type Allocator, type Push } from '../../allocator/index.ts';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../../allocator/internal.ts';
import { packResult, PIECE_BYTES, pieced, RESULT_ROOM, sizeOf } from './outputs.ts';
import { TaskCancelledError } from '../core/errors.ts';
import { Fifo } from '../../fifo.ts';
import { cancels, failed, type Task, type TaskResult } from '../core/task.ts';
import { isTask, PIECE_CHANNEL_BASE, RESULT_CHANNEL_BASE, TASK_CHANNEL, type Cancel, type HostMessage, type RawResult, type TaskId, type WorkerMessage } from './messages.ts';
import { Executor, loadOperations } from '../core/executor.ts';
import { batchOperations } from '../core/registry.ts';
import { serveAsWorker, TaskBatches, taskChannel } from '../observability/channels.ts';
import { flushBeforeThreadEnd } from '../observability/flush.ts';

// Results leave in one batch at the end of a run of tasks, and within a
// longer run at most once per FLUSH_AFTER_MS: what was made since the last
// flush goes as soon as this long has passed. So cheap results still travel
// together, the result of a task that alone takes this long leaves right
// after it, and the coordinator learns quickly that a slow worker is free.
// A batch operation's result (a whole AMQP message's) leaves as soon as it
// returns: held for the messages handed over with it, it waited 0.8-1 ms
// on the thread where the batch ran in 0.1.
const FLUSH_AFTER_MS = 1;
// A batch that goes on this long is reported, and the next begins (weft:task).
const BATCH_MS = 100;

const EMPTY = new Uint8Array(0);

const idOf = (task: Task): TaskId => [task.key, task.index, task.stage, task.attempt];

/**
 * Serves tasks from worker `coordinator` until it says stop. With `modules`,
 * imports them first and reports ready; without, waits for a hello naming them.
 */
export async function serveTasks(allocator: Allocator, coordinator: number, modules?: readonly string[]): Promise<void> {
  const [, tasks] = allocator.allocate<HostMessage>(TASK_CHANNEL);
  const [pushers] = allocator.allocate<WorkerMessage>(RESULT_CHANNEL_BASE + allocator.index);
  const [piecePushers] = allocator.allocate(PIECE_CHANNEL_BASE + allocator.index, codecs.typedArray(Uint8Array));
  const out = new Results(pushers[coordinator]!, piecePushers[coordinator]!, allocator);
  // A module that cannot be imported ends this worker with the error; the
  // coordinator reports it rather than starting another worker.
  const load = async (urls: readonly string[]) => {
    await loadOperations(urls);
    const runtime = new Executor((task, detail) => out.progress(task, detail), allocator.index);
    out.send({ ready: 1 });
    out.flush();
    return runtime;
  };
  // An operation that ends the thread (process.exit) still lets the results
  // made before it leave, and names what was running: the coordinator blames
  // those tasks only.
  const onExit = () => {
    try {
      out.dying();
    } catch {
      // the channel is gone already (the runtime is closing)
    }
  };
  process.on('exit', onExit);
  let runtime: Executor | undefined;
  const batches = new TaskBatches(allocator.index);
  serveAsWorker(allocator.index);
  // Messages received and not yet handled. A cancellation is applied as
  // soon as it is received, ahead of the messages before it: tasks it names
  // that wait here never start (they answer TaskCancelledError at once).
  const inbox = new Fifo<Exclude<HostMessage, Cancel>>();
  const take = () => {
    for (let message = tasks.recv(); message !== undefined; message = tasks.recv()) {
      if (!('cancel' in message)) {
        inbox.push(message);
        continue;
      }
      const scope = message.cancel;
      runtime?.cancel(scope);
      for (const task of inbox.extract((queued) => isTask(queued) && cancels(scope, queued))) {
        out.send(failed(task as Task, new TaskCancelledError(`${scope.why} (before it started)`)));
      }
    }
  };
  try {
    if (modules !== undefined) runtime = await load(modules);
    for (;;) {
      allocator.receive();
      // Only a cluster loses peers; losing the coordinator's process leaves nobody to serve.
      for (const loss of allocator.peerLosses()) {
        if (loss.workers.includes(coordinator)) {
          throw new PeerError(loss.process, `process ${loss.process}, the orchestrator's, was lost: the directive cannot go on without it`);
        }
      }
      take();
      if (inbox.length === 0) {
        // The batch ends as the worker runs out of tasks; it goes on across
        // the refills that arrive while it runs (a span per refill cost a
        // tiny-task directive as much as its tasks).
        batches.end();
        // Async tasks started since the last wait may have settled already
        // (any that awaits nothing slow): a turn of the event loop runs
        // their callbacks, which send and flush their results, before this
        // worker spins for the next tasks (spinning first held the results
        // back until the spin gave up), and before it reports how many it
        // holds parked (the count of tasks about to settle made the
        // coordinator send small extra batches).
        if (out.startedAsync) {
          out.startedAsync = false;
          out.flush(false);
          await new Promise(setImmediate);
          continue;
        }
        out.flush();
        await allocator.awaitEventsAsync();
        continue;
      }
      let flushedAt = performance.now();
      // Tasks run back to back are timed from the previous one's return: a
      // clock reading per task, which the flush check below reuses.
      let clock = flushedAt;
      /** Runs `task` and sends its result (or its promise's); flushes when due. */
      const run = (task: Task, traced: boolean): void => {
        if (task.timeoutMs !== undefined) {
          out.flush();
          clock = performance.now();
        }
        out.running = task;
        const outcome = runtime!.execute(task, clock);
        if (traced) batches.after(outcome);
        out.running = undefined;
        clock = runtime!.returnedAt;
        if (outcome instanceof Promise) out.later(task, outcome);
        else out.send(outcome);
        if (clock - flushedAt >= FLUSH_AFTER_MS || batchOperations.has(task.op)) {
          out.flush();
          // A slow run: look for cancellations of what waits here.
          allocator.receive();
          take();
          flushedAt = clock = performance.now();
        }
      };
      for (let message = inbox.shift(); message !== undefined; message = inbox.shift()) {
        if ('hello' in message) {
          out.maxMessageBytes = message.maxMessageBytes;
          runtime = await load(message.hello);
          clock = performance.now();
          continue;
        }
        if ('ping' in message) {
          out.send({ pong: message.ping });
          continue;
        }
        // The orchestrator is closing: results of async operations still
        // running would go nowhere, but their signals tell them to stop.
        if ('stop' in message) {
          runtime?.cancel({ why: 'the runtime was closed' });
          // The stop can come in the same turn as the batch's last tasks: end the batch (its span) before the thread.
          batches.end();
          out.flush();
          return await flushBeforeThreadEnd();
        }
        if (!taskChannel.hasSubscribers || batchOperations.has(message.op)) {
          run(message, false);
          continue;
        }
        // The batch's tasks that wait here run inside one call of its
        // subscriber's wrap: entering a context costs about 1 µs a time on
        // Node 24 (AsyncLocalStorage.run), as much as a tiny task.
        batches.before(message);
        const first = message;
        batches.run(() => {
          run(first, true);
          for (let next = inbox.peek(); next !== undefined && isTask(next) && batches.continues(next); next = inbox.peek()) {
            inbox.shift();
            batches.before(next);
            run(next, true);
          }
        });
      }
      // A long stream of one directive's tasks still reports its batches as it goes.
      batches.endIfOlder(clock, BATCH_MS);
      out.flush(!out.startedAsync);
    }
  } finally {
    process.off('exit', onExit);
  }
}

/**
 * The worker's outgoing side: results packed (outputs checked, see
 * outputs.ts) and flushed before a batch would outgrow a frame, and the
 * count of parked async tasks reported when it changes.
 *
 * Async operations run concurrently, not one after another: an I/O-bound
 * operation does not hold up the tasks behind it, and one that never settles
 * costs its own task (which the orchestrator times out), not the worker.
 * Results that settle in the same turn leave in one flush.
 */
class Results {
  maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
  /** The synchronous task being run, if any. */
  running: Task | undefined;
  private readonly parked = new Set<Task>();
  private reported = 0;
  private pendingBytes = 0;
  private scheduled = false;
  /** An async task started since the service loop last looked. */
  startedAsync = false;

  constructor(
    private readonly push: Push<WorkerMessage>,
    /** The piece channel to the coordinator, for large binary outputs (outputs.ts). */
    private readonly pieces: Push<Uint8Array>,
    private readonly allocator: Allocator,
  ) {}

  send(message: WorkerMessage | TaskResult): void {
    const packed = 'key' in message ? packResult(message, this.maxMessageBytes) : message;
    if ('key' in packed && pieced(packed)) {
      this.sendPieces(packed);
      return;
    }
    const bytes = sizeOf(packed);
    if (this.pendingBytes + bytes > this.maxMessageBytes) this.flush();
    this.pendingBytes += bytes;
    this.push.send(packed);
  }

  /**
   * A large binary output: its result, with no bytes, then its bytes in
   * pieces. Once send() says the pieces are past the high-water mark, the
   * thread waits (receiving meanwhile) until no backlog is left, so that it
   * sends through the few slab chunks the coordinator keeps giving back
   * rather than copying the rest of the output into overflow.
   */
  private sendPieces(result: RawResult & { raw: { bytes: Uint8Array } }): void {
    const bytes = result.raw.bytes;
    // The result first: the coordinator opens the output's buffer on it.
    if (this.pendingBytes + RESULT_ROOM > this.maxMessageBytes) this.flush();
    this.pendingBytes += RESULT_ROOM;
    this.push.send({ ...result, raw: EMPTY, pieces: bytes.length });
    this.flush();
    for (let at = 0; at < bytes.length; at += PIECE_BYTES) {
      if (this.pieces.send(bytes.subarray(at, Math.min(at + PIECE_BYTES, bytes.length)))) continue;
      this.pieces.flush();
      while (this.pieces.backlog > 0) {
        this.allocator.receive();
        this.allocator.awaitEvents();
      }
    }
    this.pieces.flush();
  }

  /** Sends what is pending, and the parked count when it changed, unless `parked` is false. */
  flush(parked = true): void {
    const report = parked && this.parked.size !== this.reported;
    if (this.pendingBytes === 0 && !report) return;
    if (report) {
      this.reported = this.parked.size;
      this.push.send({ parked: this.reported });
    }
    this.pendingBytes = 0;
    this.push.flush();
  }

  later(task: Task, outcome: Promise<TaskResult>): void {
    this.parked.add(task);
    this.startedAsync = true;
    void outcome.then((result) => {
      this.parked.delete(task);
      this.send(result);
      if (this.scheduled) return;
      this.scheduled = true;
      // After the callbacks already queued: the results of tasks that
      // settled together leave in one flush, before the event loop turns.
      queueMicrotask(() => {
        this.scheduled = false;
        this.flush();
      });
    });
  }

  /** A task's progress detail leaves at once (the context has throttled it). */
  progress(task: Task, detail: unknown): void {
    const report = packResult({ key: task.key, index: task.index, stage: task.stage, attempt: task.attempt, output: detail }, this.maxMessageBytes);
    this.send({ progress: report });
    this.flush();
  }

  /** The thread is exiting: what is made leaves, and what was running is named. */
  dying(): void {
    const running = [...this.parked].map(idOf);
    if (this.running !== undefined) running.push(idOf(this.running));
    this.send({ dying: running });
    this.flush();
  }
}
