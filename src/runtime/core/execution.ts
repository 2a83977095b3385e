// One directive running on a backend: pulls inputs lazily within a bounded
// window, sends each item through its chain of operations one task at a
// time, retries transient failures, drops duplicate results, and gathers the
// outputs in input order or folds them by neighbours.

import type { Backend, Lease } from './backend.ts';
import { AbortError, OperationError, RetriesExhaustedError, TaskTimeoutError } from './errors.ts';
import { RangeFold } from './ranges.ts';
import type { Monoid, Operation } from './registry.ts';
import type { RetryPolicy } from './retry.ts';
import { failed, fromFailure, type Task, type TaskResult } from './task.ts';
import { refusal } from '../../allocator/codec.ts';

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

/**
 * An input item somewhere in its chain of tasks. Records live in a dense
 * table indexed by `index & mask` and are reused once their item finishes
 * (`index` is then -1): a callback that outlives its item (a retry, a
 * timeout) must keep the index it was made for and compare.
 */
interface Pending {
  index: number;
  stage: number;
  attempt: number;
  input: unknown;
  /** Identifies the dispatch whose timeout is armed; -1 when none is. */
  ticket: number;
  /** When the armed timeout expires (performance.now() time). */
  deadline: number;
  /** The timer of a delayed retry. */
  timer: ReturnType<typeof setTimeout> | undefined;
}

// The table of pending items has a power of two of slots. It starts small
// and doubles when an item finds its slot taken by an older pending one, up
// to the window (at most MAX_SLOTS); beyond that, such an item (its elder is
// stuck far behind the others) goes to an overflow map.
const MAX_SLOTS = 1 << 16;
const MIN_SLOTS = 64;

const FREE = -1;

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

function slotCount(maxInFlight: number): number {
  let slots = 1;
  while (slots < maxInFlight && slots < MAX_SLOTS) slots *= 2;
  return slots;
}

class Execution {
  /** Pending items by `index & mask` (a slot may hold a finished record, index FREE, for reuse). */
  private slots: (Pending | undefined)[];
  private mask: number;
  private readonly maxSlots: number;
  /** Items waiting for a delayed retry. */
  private readonly retrying = new Set<Pending>();
  /** Pending items whose slot was taken by an older pending item. */
  private readonly overflow = new Map<number, Pending>();
  /** Items between admitted and finished. */
  private count = 0;
  private readonly outputs: unknown[] = [];
  private readonly fold: RangeFold<unknown> | undefined;
  private readonly progress: Progress = { dispatched: 0, done: 0, failed: 0 };
  private readonly iterator: Iterator<unknown> | AsyncIterator<unknown>;
  private readonly sync: boolean;
  /** Operation names by stage. */
  private readonly ops: readonly string[];
  private readonly lastStage: number;
  private readonly maxInFlight: number;
  private readonly timeoutMs: number | undefined;
  private lease: Lease | undefined;
  private key = '';
  /** Items of an async source admitted this turn, not yet dispatched. */
  private unbatched: Task[] = [];
  private length = 0;
  private sourceDone = false;
  private pulling = false;
  private settled = false;
  // Timeouts: all tasks share one `timeoutMs`, so deadlines come in dispatch
  // order; one timer serves a FIFO of (item, ticket), and an entry whose
  // ticket is no longer its item's is skipped.
  private timeoutItems: Pending[] = [];
  private timeoutTickets: number[] = [];
  private timeoutHead = 0;
  private nextTicket = 0;
  private timeoutTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly onAbort = () => this.fail(new AbortError({ cause: this.options.signal?.reason }));
  private readonly onTimeouts = () => this.expire();

  constructor(
    private readonly backend: Backend,
    plan: Plan,
    source: Iterable<unknown> | AsyncIterable<unknown>,
    private readonly options: ExecutionOptions,
    private readonly resolve: (value: unknown) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    this.fold = plan.fold === undefined ? undefined : new RangeFold(plan.fold);
    this.ops = plan.stages.map((stage) => stage.name);
    this.lastStage = plan.stages.length - 1;
    this.maxInFlight = options.maxInFlight;
    this.timeoutMs = options.timeoutMs;
    this.maxSlots = slotCount(options.maxInFlight);
    const slots = Math.min(this.maxSlots, MIN_SLOTS);
    this.slots = new Array<Pending | undefined>(slots).fill(undefined);
    this.mask = slots - 1;
    this.sync = Symbol.iterator in source;
    this.iterator = this.sync
      ? (source as Iterable<unknown>)[Symbol.iterator]()
      : (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  }

  start(): void {
    const { signal } = this.options;
    if (signal?.aborted) return this.fail(new AbortError({ cause: signal.reason }));
    this.lease = this.backend.lease({ results: (results) => this.onResults(results), failed: (error) => this.fail(error) });
    this.key = this.lease.key;
    signal?.addEventListener('abort', this.onAbort, { once: true });
    this.pull();
  }

  // ------------------------------------------------------------ pending items

  private lookup(index: number): Pending | undefined {
    const item = this.slots[index & this.mask];
    if (item !== undefined && item.index === index) return item;
    return this.overflow.size === 0 ? undefined : this.overflow.get(index);
  }

  private take(index: number, input: unknown): Pending {
    this.count++;
    for (;;) {
      const slot = index & this.mask;
      const item = this.slots[slot];
      if (item === undefined) {
        const fresh: Pending = { index, stage: 0, attempt: 0, input, ticket: -1, deadline: 0, timer: undefined };
        this.slots[slot] = fresh;
        return fresh;
      }
      if (item.index === FREE) {
        item.index = index;
        item.stage = 0;
        item.attempt = 0;
        item.input = input;
        return item;
      }
      if (this.slots.length >= this.maxSlots) break;
      this.grow();
    }
    const stray: Pending = { index, stage: 0, attempt: 0, input, ticket: -1, deadline: 0, timer: undefined };
    this.overflow.set(index, stray);
    return stray;
  }

  /** Doubles the table; pending items keep distinct slots, finished records are let go. */
  private grow(): void {
    const size = this.slots.length * 2;
    const slots = new Array<Pending | undefined>(size).fill(undefined);
    const mask = size - 1;
    for (const item of this.slots) if (item !== undefined && item.index !== FREE) slots[item.index & mask] = item;
    for (const [index, item] of this.overflow) {
      if (slots[index & mask] === undefined) {
        slots[index & mask] = item;
        this.overflow.delete(index);
      }
    }
    this.slots = slots;
    this.mask = mask;
  }

  private drop(item: Pending): void {
    this.count--;
    if (this.slots[item.index & this.mask] === item) {
      item.index = FREE;
      item.input = undefined;
      item.ticket = -1;
    } else {
      this.overflow.delete(item.index);
    }
  }

  // ------------------------------------------------------------ pulling

  /** Pulls inputs while the window has room. Re-entered calls return: the running loop re-checks the window. */
  private pull(): void {
    if (this.sync) this.pullSync();
    else void this.pullAsync();
  }

  private pullSync(): void {
    if (this.pulling) return;
    this.pulling = true;
    try {
      const iterator = this.iterator as Iterator<unknown>;
      while (!this.settled && !this.sourceDone && this.count < this.maxInFlight) {
        const batch: Task[] = [];
        while (this.count < this.maxInFlight) {
          const next = iterator.next();
          if (next.done) {
            this.sourceDone = true;
            break;
          }
          this.admit(next.value, batch);
        }
        this.send(batch, true);
      }
      this.finishIfDone();
    } catch (error) {
      this.fail(error);
    } finally {
      this.pulling = false;
    }
  }

  private async pullAsync(): Promise<void> {
    if (this.pulling) return;
    this.pulling = true;
    try {
      while (!this.settled && !this.sourceDone && this.count < this.maxInFlight) {
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
      this.finishIfDone();
    } catch (error) {
      this.fail(error);
    } finally {
      this.pulling = false;
    }
  }

  private admit(input: unknown, batch: Task[]): void {
    const index = this.length++;
    // Room for the output now, so that outputs arriving out of order write
    // inside the array (far writes past its end make V8 give up on it).
    if (this.fold === undefined) this.outputs.push(undefined);
    // A stream with no operation (a bare fold, say) completes without a task.
    if (this.lastStage < 0) return this.complete(index, input);
    batch.push(this.taskOf(this.take(index, input)));
  }

  private taskOf(item: Pending): Task {
    const task = { op: this.ops[item.stage]!, input: item.input, key: this.key, index: item.index, stage: item.stage, attempt: item.attempt };
    if (this.timeoutMs === undefined) return task;
    this.arm(item);
    return { ...task, timeoutMs: this.timeoutMs };
  }

  private sendUnbatched(): void {
    const tasks = this.unbatched;
    this.unbatched = [];
    this.send(tasks, true);
  }

  private send(tasks: Task[], report: boolean): void {
    if (tasks.length === 0 || this.settled) return;
    this.progress.dispatched += tasks.length;
    const sendable = this.sendable(tasks);
    if (sendable.length > 0) this.backend.dispatch(sendable);
    if (report) this.report();
  }

  // ------------------------------------------------------------ results

  /**
   * Tasks whose input the channels' codec carries. The others fail here, as
   * results of their own, on every backend alike: a backend would throw from
   * dispatch (threads), or send nothing in its place (AMQP).
   */
  private sendable(tasks: Task[]): Task[] {
    let refused: Map<Task, TaskResult> | undefined;
    for (const task of tasks) {
      const error = refusal(task.input);
      if (error !== undefined) (refused ??= new Map()).set(task, failed(task, error));
    }
    if (refused === undefined) return tasks;
    const failures = [...refused.values()];
    queueMicrotask(() => this.onResults(failures));
    return tasks.filter((task) => !refused.has(task));
  }

  private onResults(results: readonly TaskResult[]): void {
    if (this.settled) return;
    let next: Task[] | undefined;
    const lastStage = this.lastStage;
    for (let i = 0; i < results.length; i++) {
      const result = results[i]!;
      const item = this.lookup(result.index);
      // A result counts once: it must be for the item's current stage, and a
      // failure only for its current attempt (a late success of an earlier,
      // timed-out attempt is as good as any).
      if (item === undefined || item.stage !== result.stage) continue;
      if (result.error !== undefined) {
        if (result.attempt === item.attempt) this.onFailure(item, fromFailure(result.error), result.error.transient);
        if (this.settled) return;
        continue;
      }
      this.progress.done++;
      item.ticket = -1;
      if (item.timer !== undefined) this.cancelRetry(item);
      if (item.stage < lastStage) {
        item.stage++;
        item.attempt = 0;
        item.input = result.output;
        (next ??= []).push(this.taskOf(item));
        continue;
      }
      const index = item.index;
      this.drop(item);
      this.complete(index, result.output);
      if (this.settled) return;
    }
    if (next !== undefined) this.send(next, false);
    this.report();
    if (this.count < this.maxInFlight) this.pull();
    this.finishIfDone();
  }

  private complete(index: number, output: unknown): void {
    if (this.fold === undefined) {
      this.outputs[index] = output;
      return;
    }
    try {
      this.fold.add(index, output);
    } catch (error) {
      this.fail(error);
    }
  }

  private onFailure(item: Pending, error: Error, transient: boolean): void {
    item.ticket = -1;
    if (item.timer !== undefined) this.cancelRetry(item);
    this.progress.failed++;
    const op = this.ops[item.stage]!;
    const attempts = item.attempt + 1;
    if (!transient) return this.fail(new OperationError(op, item.index, attempts, error));
    if (item.attempt >= this.options.retry.retries) return this.fail(new RetriesExhaustedError(op, item.index, attempts, error));
    item.attempt++;
    const delay = this.options.retry.delayMs(item.attempt);
    const { index, stage, attempt } = item;
    const retry = () => {
      if (item.timer !== undefined) {
        item.timer = undefined;
        this.retrying.delete(item);
      }
      // A late success of the failed attempt may have moved the item on meanwhile.
      if (this.settled || this.lookup(index) !== item || item.stage !== stage || item.attempt !== attempt) return;
      this.send([this.taskOf(item)], true);
    };
    if (delay <= 0) return retry();
    item.timer = setTimeout(retry, delay);
    this.retrying.add(item);
  }

  private cancelRetry(item: Pending): void {
    clearTimeout(item.timer);
    item.timer = undefined;
    this.retrying.delete(item);
  }

  // ------------------------------------------------------------ timeouts

  private arm(item: Pending): void {
    const ticket = this.nextTicket++;
    item.ticket = ticket;
    item.deadline = performance.now() + this.timeoutMs!;
    this.timeoutItems.push(item);
    this.timeoutTickets.push(ticket);
    if (this.timeoutTimer === undefined) this.timeoutTimer = setTimeout(this.onTimeouts, this.timeoutMs);
    // Entries of answered tasks stay until their deadline: keep them from
    // outgrowing the live ones.
    else if (this.timeoutItems.length - this.timeoutHead > 2 * this.count + 1024) this.compactTimeouts();
  }

  private compactTimeouts(): void {
    const items: Pending[] = [];
    const tickets: number[] = [];
    for (let i = this.timeoutHead; i < this.timeoutItems.length; i++) {
      if (this.timeoutItems[i]!.ticket === this.timeoutTickets[i]) {
        items.push(this.timeoutItems[i]!);
        tickets.push(this.timeoutTickets[i]!);
      }
    }
    this.timeoutItems = items;
    this.timeoutTickets = tickets;
    this.timeoutHead = 0;
  }

  /** Fails the tasks whose deadline has passed, then waits for the next one. */
  private expire(): void {
    // `timeoutTimer` stays set meanwhile, so retries sent from here do not arm one.
    if (this.settled) return;
    const now = performance.now();
    let expired = false;
    while (this.timeoutHead < this.timeoutItems.length) {
      const item = this.timeoutItems[this.timeoutHead]!;
      const ticket = this.timeoutTickets[this.timeoutHead]!;
      if (item.ticket !== ticket) {
        this.timeoutHead++;
        continue;
      }
      if (item.deadline > now) break;
      this.timeoutHead++;
      expired = true;
      // Before the failure, which may end the directive and release the lease.
      this.lease!.timedOut?.({ key: this.key, index: item.index, stage: item.stage, attempt: item.attempt });
      this.onFailure(item, new TaskTimeoutError(this.ops[item.stage]!, item.index, this.timeoutMs!), true);
      if (this.settled) return;
    }
    if (this.timeoutHead === this.timeoutItems.length) {
      this.timeoutTimer = undefined;
      this.timeoutItems = [];
      this.timeoutTickets = [];
      this.timeoutHead = 0;
    } else {
      const head = this.timeoutItems[this.timeoutHead]!;
      this.timeoutTimer = setTimeout(this.onTimeouts, Math.max(1, Math.ceil(head.deadline - now)));
    }
    if (expired) this.report();
  }

  // ------------------------------------------------------------ the end

  private report(): void {
    this.options.onProgress?.({ ...this.progress });
  }

  private finishIfDone(): void {
    if (this.settled || !this.sourceDone || this.count > 0) return;
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
    clearTimeout(this.timeoutTimer);
    this.timeoutTimer = undefined;
    this.timeoutItems = [];
    this.timeoutTickets = [];
    for (const item of this.retrying) clearTimeout(item.timer);
    this.retrying.clear();
    this.overflow.clear();
    this.count = 0;
    this.lease?.release();
  }
}
