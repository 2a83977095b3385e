// One directive running on a backend: pulls inputs lazily within a bounded
// window, sends each item through its chain of operations one task at a
// time, retries transient failures, drops duplicate results, and gathers the
// outputs in input order or folds them by neighbours.

import type { Backend, Lease } from './backend.ts';
import { AbortError, OperationError, RetriesExhaustedError, TaskTimeoutError } from './errors.ts';
import { RangeFold } from './ranges.ts';
import type { Monoid, Operation } from './registry.ts';
import type { RetryPolicy } from './retry.ts';
import { fromFailure, type Task, type TaskResult } from './task.ts';

// An async source yields one item per await. Items that are ready within
// one turn of the event loop leave as one batch, up to this many; a source
// that stalls has what it gave sent at the end of the turn.
const ASYNC_BATCH = 256;

/** Task counts of one directive, for progress bars. Retries count as new dispatches. */
export interface Progress {
  dispatched: number;
  done: number;
  failed: number;
}

export interface ExecutionOptions {
  signal?: AbortSignal | undefined;
  retry: RetryPolicy;
  /** A task without a result after this long is treated as a transient failure. */
  timeoutMs?: number | undefined;
  /** Most input items between pulled and finished at once. */
  maxInFlight: number;
  onProgress?: ((progress: Readonly<Progress>) => void) | undefined;
}

export interface Plan {
  readonly stages: readonly Operation[];
  readonly fold?: Monoid | undefined;
}

/** An input item somewhere in its chain of tasks. */
interface Pending {
  readonly index: number;
  stage: number;
  attempt: number;
  input: unknown;
  timer?: ReturnType<typeof setTimeout> | undefined;
}

export function execute(
  backend: Backend,
  plan: Plan,
  source: Iterable<unknown> | AsyncIterable<unknown>,
  options: ExecutionOptions,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    new Execution(backend, plan, source, options, resolve, reject).start();
  });
}

class Execution {
  private readonly pending = new Map<number, Pending>();
  private readonly outputs: unknown[] = [];
  private readonly fold: RangeFold<unknown> | undefined;
  private readonly progress: Progress = { dispatched: 0, done: 0, failed: 0 };
  private readonly iterator: Iterator<unknown> | AsyncIterator<unknown>;
  private readonly sync: boolean;
  private lease: Lease | undefined;
  /** Items of an async source admitted this turn, not yet dispatched. */
  private unbatched: Task[] = [];
  private length = 0;
  private sourceDone = false;
  private pulling = false;
  private settled = false;
  private readonly onAbort = () => this.fail(new AbortError({ cause: this.options.signal?.reason }));

  constructor(
    private readonly backend: Backend,
    private readonly plan: Plan,
    source: Iterable<unknown> | AsyncIterable<unknown>,
    private readonly options: ExecutionOptions,
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    this.fold = plan.fold === undefined ? undefined : new RangeFold(plan.fold);
    this.sync = Symbol.iterator in source;
    this.iterator = this.sync
      ? (source as Iterable<unknown>)[Symbol.iterator]()
      : (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  }

  start(): void {
    const { signal } = this.options;
    if (signal?.aborted) return this.fail(new AbortError({ cause: signal.reason }));
    this.lease = this.backend.lease({ results: (results) => this.onResults(results), failed: (error) => this.fail(error) });
    signal?.addEventListener('abort', this.onAbort, { once: true });
    void this.pull();
  }

  /** Pulls inputs while the window has room. Re-entered calls return: the running loop re-checks the window. */
  private async pull(): Promise<void> {
    if (this.pulling) return;
    this.pulling = true;
    try {
      while (!this.settled && !this.sourceDone && this.pending.size < this.options.maxInFlight) {
        if (this.sync) {
          const batch: Task[] = [];
          while (this.pending.size < this.options.maxInFlight) {
            const next = (this.iterator as Iterator<unknown>).next();
            if (next.done) {
              this.sourceDone = true;
              break;
            }
            this.admit(next.value, batch);
          }
          this.send(batch);
        } else {
          const next = await (this.iterator as AsyncIterator<unknown>).next();
          if (this.settled) return;
          if (next.done) {
            this.sourceDone = true;
            this.sendUnbatched();
          } else {
            this.admit(next.value, this.unbatched);
            if (this.unbatched.length >= ASYNC_BATCH) this.sendUnbatched();
            else if (this.unbatched.length === 1) setImmediate(() => this.sendUnbatched());
          }
        }
      }
      this.finishIfDone();
    } catch (error) {
      this.fail(error);
    } finally {
      this.pulling = false;
    }
  }

  private admit(input: unknown, batch: Task[]): void {
    const item: Pending = { index: this.length++, stage: 0, attempt: 0, input };
    // A stream with no operation (a bare fold, say) completes without a task.
    if (this.plan.stages.length === 0) return this.complete(item, input);
    this.pending.set(item.index, item);
    batch.push(this.taskOf(item));
  }

  private taskOf(item: Pending): Task {
    const op = this.plan.stages[item.stage]!.name;
    if (this.options.timeoutMs !== undefined) {
      const { attempt, stage } = item;
      item.timer = setTimeout(() => this.onTimeout(item, stage, attempt), this.options.timeoutMs);
    }
    return { op, input: item.input, key: this.lease!.key, index: item.index, stage: item.stage, attempt: item.attempt };
  }

  private sendUnbatched(): void {
    const tasks = this.unbatched;
    this.unbatched = [];
    this.send(tasks);
  }

  private send(tasks: Task[]): void {
    if (tasks.length === 0 || this.settled) return;
    this.progress.dispatched += tasks.length;
    this.backend.dispatch(tasks);
    this.report();
  }

  private onResults(results: readonly TaskResult[]): void {
    if (this.settled) return;
    const next: Task[] = [];
    for (const result of results) {
      const item = this.pending.get(result.index);
      // A result counts once: it must be for the item's current stage, and a
      // failure only for its current attempt (a late success of an earlier,
      // timed-out attempt is as good as any).
      if (item === undefined || item.stage !== result.stage) continue;
      if (result.error !== undefined) {
        if (result.attempt === item.attempt) this.onFailure(item, fromFailure(result.error), result.error.transient);
      } else {
        this.onSuccess(item, result.output, next);
      }
      if (this.settled) return;
    }
    this.send(next);
    this.report();
    if (this.pending.size < this.options.maxInFlight) void this.pull();
    this.finishIfDone();
  }

  private onSuccess(item: Pending, output: unknown, next: Task[]): void {
    clearTimeout(item.timer);
    this.progress.done++;
    if (item.stage + 1 < this.plan.stages.length) {
      item.stage++;
      item.attempt = 0;
      item.input = output;
      next.push(this.taskOf(item));
      return;
    }
    this.pending.delete(item.index);
    this.complete(item, output);
  }

  private complete(item: Pending, output: unknown): void {
    if (this.fold === undefined) {
      this.outputs[item.index] = output;
      return;
    }
    try {
      this.fold.add(item.index, output);
    } catch (error) {
      this.fail(error);
    }
  }

  private onFailure(item: Pending, error: Error, transient: boolean): void {
    clearTimeout(item.timer);
    this.progress.failed++;
    const op = this.plan.stages[item.stage]!.name;
    const attempts = item.attempt + 1;
    if (!transient) return this.fail(new OperationError(op, item.index, attempts, error));
    if (item.attempt >= this.options.retry.retries) return this.fail(new RetriesExhaustedError(op, item.index, attempts, error));
    item.attempt++;
    const delay = this.options.retry.delayMs(item.attempt);
    const { stage, attempt } = item;
    const retry = () => {
      // A late success of the failed attempt may have moved the item on meanwhile.
      if (this.settled || this.pending.get(item.index) !== item || item.stage !== stage || item.attempt !== attempt) return;
      this.send([this.taskOf(item)]);
    };
    if (delay <= 0) retry();
    else item.timer = setTimeout(retry, delay);
  }

  private onTimeout(item: Pending, stage: number, attempt: number): void {
    if (this.settled || this.pending.get(item.index) !== item || item.stage !== stage || item.attempt !== attempt) return;
    const op = this.plan.stages[stage]!.name;
    this.onFailure(item, new TaskTimeoutError(op, item.index, this.options.timeoutMs!), true);
  }

  private report(): void {
    this.options.onProgress?.({ ...this.progress });
  }

  private finishIfDone(): void {
    if (this.settled || !this.sourceDone || this.pending.size > 0) return;
    let value: unknown;
    try {
      value = this.fold === undefined ? this.outputs : this.fold.result(this.length);
    } catch (error) {
      return this.fail(error);
    }
    this.settle();
    this.resolve(value);
  }

  private fail(error: unknown): void {
    if (this.settled) return;
    this.settle();
    for (const item of this.pending.values()) clearTimeout(item.timer);
    this.pending.clear();
    // Let the source release what it holds (files, cursors); its own errors
    // on the way out must not hide the directive's.
    try {
      void Promise.resolve(this.iterator.return?.()).catch(() => {});
    } catch {
      // a synchronous throw from return() is equally irrelevant
    }
    this.reject(error);
  }

  private settle(): void {
    this.settled = true;
    this.options.signal?.removeEventListener('abort', this.onAbort);
    this.lease?.release();
  }
}
