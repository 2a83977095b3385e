// Iteration: a loop whose feedback edge carries an iteration counter.
//
// Inside the loop a record's time is epoch * ITERATIONS + iteration. An
// input epoch e enters as iteration 0; what the body feeds back at
// iteration i re-enters at i + 1. The body's exchanges close inner times by
// their own punctuation; the loop adds one fact per iteration: how many
// records every worker fed back. When the feedback closes (e, i) on a
// worker, that worker sends its count to every worker over the loop's
// channel; once a worker holds every count of (e, i) it knows, as every
// other worker does, whether anything was fed back anywhere. Nothing (a
// fixpoint) or the iteration limit ends epoch e; otherwise (e, i + 1)
// closes at the loop's head, since every record of it was fed back here
// before this worker sent its count.
//
// Workers' inputs need not hold the same epochs, so a worker also tells
// every other when its input brings an epoch (ENTERED) and when it ends
// (ENDED): a worker with no input for epoch e enters it on hearing of it,
// and ends the loop only once every worker's input has ended and every
// epoch it heard of has left. A worker sends ENTERED(e) before any count of
// e and before ENDED, on one FIFO channel, so a worker holding every ENDED
// has heard of every epoch any worker will bring.

import { codecs, type Pull, type Push } from '../allocator/index.ts';
import { checkSenders, DataflowError, ITERATIONS, Output, type Task, type Time } from './core.ts';
import { Stream } from './stream.ts';

/** What a loop body returns: the stream fed back to the next iteration, and what leaves the loop. */
export interface LoopBody<T, R> {
  feedback: Stream<T>;
  /** Leaves the loop at its epoch (every iteration's records); the loop closes the epoch once it ended there. */
  result: Stream<R>;
}

/** The iteration of an inner time. */
export function iterationOf(t: Time): number {
  return t % ITERATIONS;
}

/** The input epoch of an inner time. */
export function epochOf(t: Time): number {
  return Math.floor(t / ITERATIONS);
}

/** On the loop's channel: [sender, inner time, records fed back], or [sender, ENTERED, epoch], or [sender, ENDED, 0]. */
type Message = [number, Time, number];
const ENTERED = -1;
const ENDED = -2;
/** Epochs above this would make inner times (epoch * ITERATIONS + iteration) lose integer precision. */
const MAX_EPOCH = Math.floor(Number.MAX_SAFE_INTEGER / ITERATIONS) - 1;

class Loop<T, R> implements Task {
  private readonly head = new Output<T>();
  readonly out = new Output<R>();
  private readonly peers: number;
  private readonly self: number;
  private readonly pushes: Push<Message>[];
  private readonly pull: Pull<Message>;
  private readonly max: number;
  /** Records fed back per inner time, on this worker. */
  private readonly fed = new Map<Time, number>();
  /** Per inner time: [counts received, total]. */
  private readonly counts = new Map<Time, [number, number]>();
  /** Epochs that entered the loop here. */
  private readonly entered = new Set<number>();
  /** Epochs known here and not entered yet: seen in the input before it closed them, or heard of from other workers (entered once our input ends). */
  private readonly pending = new Set<number>();
  /** Epochs this worker's input brought, announced to the others (ENTERED). */
  private readonly announced = new Set<number>();
  /** Workers whose input ended (ENDED received). */
  private readonly endedBy: Uint8Array;
  private ends = 0;
  /** Per epoch in the loop: result times closed, and the last iteration once known. */
  private readonly epochs = new Map<number, { closed: number; last: number }>();
  private inputEnded = false;
  finished = false;

  constructor(input: Stream<T>, max: number, body: (inner: Stream<T>) => LoopBody<T, R>) {
    if (input.inLoop) throw new DataflowError('loops do not nest');
    if (!Number.isInteger(max) || max < 1 || max >= ITERATIONS) throw new DataflowError(`iterate: the iteration limit is an integer from 1 to ${ITERATIONS - 1}, got ${String(max)}`);
    const scope = input.scope;
    this.peers = scope.peers;
    this.self = scope.index;
    this.max = max;
    this.endedBy = new Uint8Array(this.peers);
    [this.pushes, this.pull] = scope.channel(codecs.msgpack<Message>());
    scope.schedule(this);
    const { feedback, result } = body(new Stream(scope, this.head, true));
    for (const [name, stream] of [['feedback', feedback], ['result', result]] as const) {
      if (!(stream instanceof Stream) || stream.scope !== scope || !stream.inLoop) throw new DataflowError(`iterate: the body's ${name} is a stream made inside the loop (from the stream the body is given), got ${stream instanceof Stream ? 'a stream from outside it' : String(stream)}`);
    }
    input.connect({
      batch: (e, records) => {
        if (!this.entered.has(e)) {
          if (e > MAX_EPOCH) throw new DataflowError(`iterate: epochs entering a loop are at most ${MAX_EPOCH} (epoch * ${ITERATIONS} + iteration must be an exact integer), got ${e}`);
          this.announce(e);
          this.pending.add(e);
        }
        this.head.batch(e * ITERATIONS, records);
      },
      close: (e) => {
        this.announce(e);
        this.enter(e);
      },
      end: () => {
        this.inputEnded = true;
        for (const e of this.pending) this.enter(e);
        this.pending.clear();
        for (const push of this.pushes) push.send([this.self, ENDED, 0]);
      },
    });
    feedback.connect({
      batch: (t, records) => {
        this.fed.set(t, (this.fed.get(t) ?? 0) + records.length);
        if (iterationOf(t) + 1 < this.max) this.head.batch(t + 1, records);
      },
      close: (t) => {
        const n = this.fed.get(t) ?? 0;
        this.fed.delete(t);
        for (const push of this.pushes) push.send([this.self, t, n]);
      },
      end: () => {},
    });
    result.connect({
      batch: (t, records) => this.out.batch(epochOf(t), records),
      close: (t) => {
        this.epoch(epochOf(t)).closed++;
        this.maybeFinish(epochOf(t));
      },
      end: () => this.out.end(),
    });
  }

  private epoch(e: number): { closed: number; last: number } {
    let s = this.epochs.get(e);
    if (s === undefined) this.epochs.set(e, (s = { closed: 0, last: -1 }));
    return s;
  }

  /** Tells every worker (this one included) that this worker's input brings epoch e. */
  private announce(e: number): void {
    if (this.announced.has(e)) return;
    this.announced.add(e);
    for (const push of this.pushes) push.send([this.self, ENTERED, e]);
  }

  private enter(e: number): void {
    if (this.entered.has(e)) return;
    this.entered.add(e);
    this.epoch(e);
    this.head.close(e * ITERATIONS);
  }

  step(): boolean {
    let any = false;
    for (let m = this.pull.recv(); m !== undefined; m = this.pull.recv()) {
      any = true;
      const [, t, n] = m;
      if (t === ENTERED) {
        // A worker is in epoch n: this one takes part even with no input for it.
        if (this.entered.has(n)) continue;
        if (this.inputEnded) this.enter(n);
        else this.pending.add(n);
        continue;
      }
      if (t === ENDED) {
        this.endedBy[m[0]] = 1;
        this.ends++;
        this.maybeEnd();
        continue;
      }
      const e = epochOf(t);
      const c = this.counts.get(t) ?? [0, 0];
      c[0]++;
      c[1] += n;
      if (c[0] < this.peers) {
        this.counts.set(t, c);
        continue;
      }
      this.counts.delete(t);
      const i = iterationOf(t);
      if (c[1] > 0 && i + 1 < this.max) this.head.close(t + 1);
      else {
        this.epoch(e).last = i;
        this.maybeFinish(e);
      }
    }
    if (!any && !this.finished) checkSenders(this.pull, this.peers, (sender) => this.endedBy[sender] === 1, 'iterate');
    return any;
  }

  private maybeFinish(e: number): void {
    const s = this.epoch(e);
    if (s.last < 0 || s.closed < s.last + 1) return;
    this.epochs.delete(e);
    this.out.close(e);
    this.maybeEnd();
  }

  private maybeEnd(): void {
    if (!this.inputEnded || this.ends < this.peers || this.epochs.size > 0 || this.pending.size > 0 || this.finished) return;
    this.finished = true;
    this.head.end();
  }
}

/**
 * Runs `body` in a loop: iteration 0 gets this stream's records, iteration
 * i + 1 what the body fed back at i. An epoch leaves the loop after the
 * first iteration at which no worker fed anything back, or after `max`
 * iterations. Inside, `iterationOf(t)` is a record's iteration.
 */
export function iterate<T, R>(input: Stream<T>, max: number, body: (inner: Stream<T>) => LoopBody<T, R>): Stream<R> {
  const loop = new Loop(input, max, body);
  return new Stream(input.scope, loop.out);
}
