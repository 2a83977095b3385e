// The streamed form of a directive: `stream.map(op).stream(runtime)` hands
// out `[index, output]` pairs as tasks complete (or in input order), to a
// `for await` loop. Outputs not taken yet count in the directive's window,
// so a slow consumer holds the source back instead of filling memory; and a
// consumer that leaves the loop (break, return, throw) ends the directive:
// its lease is released and its running tasks are cancelled.
//
// While someone subscribes to `weft:directive`, a stream is traced as a
// `run()` is: `start` and `end` as its first `next()` begins the directive
// (in its consumer's context, whose trace it joins), then `error` if it failed,
// and `asyncStart`, `asyncEnd` once it ended, failed or its consumer left.

import type { Backend } from '../backend.ts';
import { Fifo } from '../../../fifo.ts';
import type { Collector } from './collect.ts';
import { Execution } from './execution.ts';
import type { ExecutionOptions, Plan } from './plan.ts';
import { directiveChannel, type DirectiveMessage } from '../../observability/channels.ts';

/** Outputs waiting for the consumer; with `ordered`, those ahead of an earlier one wait apart. */
class Handover implements Collector {
  private readonly ready = new Fifo<[number, unknown]>();
  /** Ordered: outputs that arrived before an earlier index's. */
  private readonly early = new Map<number, unknown>();
  private nextIndex = 0;

  constructor(
    private readonly ordered: boolean,
    private readonly wake: () => void,
  ) {}

  get held(): number {
    return this.ready.length + this.early.size;
  }

  admitted(): void {}

  add(index: number, output: unknown): void {
    if (!this.ordered) this.ready.push([index, output]);
    else {
      this.early.set(index, output);
      while (this.early.has(this.nextIndex)) {
        this.ready.push([this.nextIndex, this.early.get(this.nextIndex)]);
        this.early.delete(this.nextIndex++);
      }
    }
    this.wake();
  }

  result(): undefined {
    return undefined;
  }

  take(): [number, unknown] | undefined {
    return this.ready.shift();
  }
}

type Waiter = { resolve: (result: IteratorResult<[number, unknown]>) => void; reject: (error: unknown) => void };

const DONE: IteratorResult<[number, unknown]> = { done: true, value: undefined };

/**
 * Runs the directive from the first `next()`; each pair is yielded once.
 * The directive's failure is thrown from `next()` after the pairs taken
 * before it; `return()` (what `for await` calls on leaving early) ends it.
 */
export class OutputStream implements AsyncIterableIterator<[number, unknown]> {
  private readonly handover: Handover;
  private execution: Execution | undefined;
  private waiter: Waiter | undefined;
  private ended = false;
  private failure: { error: unknown } | undefined;
  /** Its `weft:directive` message, from its start until its outcome is published. */
  private trace: DirectiveMessage | undefined;

  constructor(
    private readonly backend: Backend,
    private readonly plan: Plan,
    private readonly source: Iterable<unknown> | AsyncIterable<unknown>,
    private readonly options: ExecutionOptions,
    ordered: boolean,
    private readonly directive: () => DirectiveMessage,
  ) {
    this.handover = new Handover(ordered, () => this.wake());
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<[number, unknown]>> {
    if (this.execution === undefined && !this.ended) {
      const trace = directiveChannel.hasSubscribers ? (this.trace = this.directive()) : undefined;
      // `end` at once: the directive may fail within start() (an aborted signal), and its outcome comes after `end`.
      if (trace !== undefined) {
        directiveChannel.start.publish(trace);
        directiveChannel.end.publish(trace);
      }
      this.execution = new Execution(
        this.backend,
        this.plan,
        this.source,
        trace === undefined ? this.options : { ...this.options, trace },
        this.handover,
        () => this.end(),
        (error) => this.end({ error }),
      );
      this.execution.start();
    }
    const pair = this.take();
    if (pair !== undefined) return Promise.resolve({ done: false, value: pair });
    if (this.failure !== undefined) {
      const { error } = this.failure;
      this.failure = undefined;
      return Promise.reject(error);
    }
    if (this.ended) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** The consumer left: the directive ends and its running tasks are cancelled. */
  return(): Promise<IteratorResult<[number, unknown]>> {
    this.ended = true;
    this.failure = undefined;
    this.execution?.stop("the stream's consumer stopped");
    this.traced();
    this.waiter?.resolve(DONE);
    this.waiter = undefined;
    return Promise.resolve(DONE);
  }

  private take(): [number, unknown] | undefined {
    const pair = this.handover.take();
    if (pair !== undefined) this.execution?.refill();
    return pair;
  }

  private end(failure?: { error: unknown }): void {
    this.ended = true;
    this.failure = failure;
    this.traced(failure);
    this.wake();
  }

  /** Publishes the traced directive's outcome, once. */
  private traced(failure?: { error: unknown }): void {
    const trace = this.trace;
    if (trace === undefined) return;
    this.trace = undefined;
    if (failure !== undefined) {
      trace.error = failure.error;
      directiveChannel.error.publish(trace);
    }
    directiveChannel.asyncStart.publish(trace);
    directiveChannel.asyncEnd.publish(trace);
  }

  private wake(): void {
    const waiter = this.waiter;
    if (waiter === undefined) return;
    this.waiter = undefined;
    const pair = this.take();
    if (pair !== undefined) waiter.resolve({ done: false, value: pair });
    else if (!this.ended) this.waiter = waiter;
    else {
      if (this.failure === undefined) waiter.resolve(DONE);
      else {
        const { error } = this.failure;
        this.failure = undefined;
        waiter.reject(error);
      }
    }
  }
}
