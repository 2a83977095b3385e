// The pieces every operator is made of: times, the sink interface records
// and punctuation flow through, an operator's output, and the scope that
// owns a worker's graph and schedules it.
//
// A dataflow is a graph of push-based operators inside one worker; every
// worker builds the same graph (SPMD). Records travel in batches tagged with
// a time; `close(t)` says no more records of time t come on that edge, and
// `end()` that nothing at all comes any more. Only exchanges (exchange.ts)
// and loops (loop.ts) cross workers; how their punctuation makes `close`
// mean "complete on every worker" is docs/dataflow.md.

import type { Allocator, Codec, Pull, Push } from '../allocator/index.ts';
import { WeftError } from '../errors.ts';

/** A record's timestamp: an input epoch, or inside a loop epoch * ITERATIONS + iteration. */
export type Time = number;

/** Loops encode (epoch, iteration) as one number: iterations stay below this. */
export const ITERATIONS = 2 ** 20;

/** Misuse of a dataflow, or a graph that cannot run as built. */
export class DataflowError extends WeftError {
  override name = 'DataflowError';
}

/**
 * Fails the run if a sender on `pull`'s channel closed it before it sent
 * what ends its part (`ended(sender)`): it returned without running this
 * dataflow, or built another graph, and this worker would wait for it
 * forever. Call only when recv() holds nothing: the channel is FIFO, so a
 * sender's last messages are in before its close is.
 */
export function checkSenders(pull: Pull<unknown>, peers: number, ended: (sender: number) => boolean, what: string): void {
  for (let sender = 0; sender < peers; sender++) {
    if (!ended(sender) && pull.closedBy(sender)) {
      throw new DataflowError(`${what} (channel ${pull.channel}): worker ${sender} closed the channel without ending its part; every worker must run the same dataflow (it returned without running it, or built another graph)`);
    }
  }
}

/** Where an operator's records and punctuation go. */
export interface Sink<T> {
  batch(t: Time, records: ArrayLike<T>): void;
  close(t: Time): void;
  end(): void;
}

/** What an operator's logic emits into. */
export interface Emitter<T> {
  /** Emits records at time t (not yet closed on this output). */
  batch(t: Time, records: ArrayLike<T>): void;
}

/** An operator's output: fans every batch and punctuation out to the operators reading it. */
export class Output<T> implements Sink<T>, Emitter<T> {
  readonly sinks: Sink<T>[] = [];
  private readonly closed = new Set<Time>();
  private ended = false;

  batch(t: Time, records: ArrayLike<T>): void {
    if (records.length === 0) return;
    if (this.closed.has(t) || this.ended) throw new DataflowError(`records emitted at time ${t} after it closed`);
    for (const s of this.sinks) s.batch(t, records);
  }

  close(t: Time): void {
    if (this.closed.has(t)) return;
    this.closed.add(t);
    for (const s of this.sinks) s.close(t);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const s of this.sinks) s.end();
  }
}

/** Something the scheduler polls: a source or the receiving side of a channel. */
export interface Task {
  /** Does some work; false when there was none to do now. */
  step(): boolean;
  readonly finished: boolean;
}

export interface ScopeOptions {
  /**
   * The first channel id the dataflow allocates (it takes consecutive ids).
   * Default: 1 000 000 for a worker's first dataflow, and for each later
   * one the id after the last its previous dataflow took.
   */
  channels?: number;
}

/**
 * Per allocator, the channel id after the last one its dataflows took: a
 * worker's next dataflow starts there, so dataflows run one after another
 * do not allocate one id twice (every worker runs the same ones, SPMD, so
 * they agree on the ids).
 */
const nextChannels = new WeakMap<Allocator, number>();

/** One worker's view of the dataflow while it is built: the allocator, channel ids, the tasks to poll. */
export class Scope {
  readonly allocator: Allocator;
  private nextChannel: number;
  private readonly tasks: Task[] = [];
  private running = false;

  constructor(allocator: Allocator, options: ScopeOptions = {}) {
    this.allocator = allocator;
    const first = options.channels ?? nextChannels.get(allocator) ?? 1_000_000;
    if (!Number.isInteger(first) || first < 0) throw new DataflowError(`channels must be a channel id (an integer >= 0), got ${String(first)}`);
    this.nextChannel = first;
  }

  get index(): number {
    return this.allocator.index;
  }

  get peers(): number {
    return this.allocator.peers;
  }

  /** Allocates the next channel id: every worker builds the same graph, so every worker picks the same ids. */
  channel<M>(codec: Codec<M>): [Push<M>[], Pull<M>] {
    if (this.running) throw new DataflowError('operators are added while the dataflow is built, not while it runs');
    const channel = this.allocator.allocate(this.nextChannel++, codec);
    nextChannels.set(this.allocator, this.nextChannel);
    return channel;
  }

  schedule(task: Task): void {
    if (this.running) throw new DataflowError('operators are added while the dataflow is built, not while it runs');
    this.tasks.push(task);
  }

  /** Polls every task until all are finished, parking when none had work. */
  run(): void {
    this.running = true;
    const a = this.allocator;
    for (;;) {
      a.receive();
      let busy = false;
      let live = false;
      for (const task of this.tasks) {
        if (task.finished) continue;
        live = true;
        if (task.step()) busy = true;
      }
      if (!live) break;
      if (busy) a.release();
      else a.awaitEvents(50);
    }
    a.release();
  }
}
