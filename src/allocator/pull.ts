// The receiving end of a channel. Batches arrive whole (one decode per
// frame) and recv() walks them, so the per-message path is an index bump.
// The puller also keeps the receiver's memory bounded: it counts the frame
// bytes of batches decoded but not yet read, and past a bound the
// allocator leaves this channel's next frames in the ring.

import { Fifo } from '../fifo.ts';

const NONE: ArrayLike<never> = [];
/** take()'s answer when no message is there (a channel may carry undefined). */
const NOTHING: unique symbol = Symbol('nothing');

export interface Pull<T> extends AsyncIterable<T> {
  readonly channel: number;
  /**
   * The next message, or undefined when none has arrived (call
   * `allocator.receive()` first). A channel that carries undefined as a
   * message tells the two apart with `available`.
   */
  recv(): T | undefined;
  /**
   * True when recv() has a message to return (which may be undefined
   * itself): `while (pull.available) use(pull.recv() as T)`.
   */
  readonly available: boolean;
  /**
   * True once every sender has closed and every message was received. This
   * worker's own pusher counts as closed if it never sent on the channel.
   */
  readonly done: boolean;
  /**
   * True once `sender` has closed its pusher on this channel (it called
   * close(), returned, or its process was lost): nothing comes from it after
   * what recv() still holds.
   */
  closedBy(sender: number): boolean;
  /**
   * Iterates batches instead of messages: each is an array (or, for the
   * number codec, a Float64Array) of the messages that arrived together,
   * valid until the next iteration. Ends as the message iteration does.
   */
  batches(): AsyncIterable<ArrayLike<T>>;
}

/**
 * What a puller needs from its worker's endpoint (as PushHost is for a
 * pusher). The endpoint implements it; a puller reaches nothing else of it.
 */
export interface PullHost {
  /** This worker's index. */
  readonly index: number;
  /** How many workers the run has: each is a sender to wait for. */
  readonly peers: number;
  /** Frame bytes a channel may hold decoded ahead of recv(), past which it takes no more frames. */
  readonly aheadBytes: number;
  /** Throws if the run failed (fail-stop) or this worker did. */
  checkAbort(): void;
  /** Hands every buffered message to the transport and publishes it. */
  release(): void;
  /** Moves frames that have arrived into their channels' pullers. */
  receive(): void;
  /** Spins for an event, else parks: true when the spin found one, else the park's promise. */
  spinThenPark(): true | Promise<void>;
  /** Wakes the worker: a stalled channel has room again. */
  wakeLocal(): void;
}

/** A batch in a puller's queue, with its frame bytes (-1: self-sent messages). */
interface Delivered<T> {
  batch: ArrayLike<T>;
  bytes: number;
}

export class ChannelPull<T> implements Pull<T> {
  /** Batches delivered and not read to their end, the current one first. */
  private readonly queue = new Fifo<Delivered<T>>();
  private pos = 0;
  /** The first queued batch (NONE when there is none) and its length: recv's one check. */
  private current: ArrayLike<T> = NONE;
  private end = 0;
  /** The batch self-sent messages are appended to, while it is the tail. */
  private local: T[] | undefined;
  /** This worker's own pusher on this channel has sent something. */
  private localSent = false;
  private readonly closed: Uint8Array;
  private open: number;
  /** This worker's index. */
  private readonly self: number;
  /** Frame bytes decoded ahead of recv() past which this channel takes no more frames. */
  private readonly aheadLimit: number;
  /** Frame bytes of batches delivered and not yet read to the end. */
  private ahead = 0;
  /** The allocator left a frame for this channel in the ring: wake it once below the bound. */
  private stalling = false;
  /** Closes this worker's own pusher (see finished()). */
  closeOwn: () => void = () => {};

  constructor(
    readonly channel: number,
    private readonly host: PullHost,
    /** The codec's Codec.recycle, for batches fully read (never local ones). */
    private readonly recycle?: (batch: ArrayLike<T>) => void,
  ) {
    this.self = host.index;
    this.aheadLimit = host.aheadBytes;
    this.closed = new Uint8Array(host.peers);
    this.open = host.peers;
  }

  /** Whether the allocator should decode another frame for this channel now. */
  accepts(): boolean {
    if (this.ahead < this.aheadLimit) return true;
    this.stalling = true;
    return false;
  }

  deliver(batch: ArrayLike<T>, bytes: number): void {
    if (batch.length === 0) return;
    this.ahead += bytes;
    this.queue.push({ batch, bytes });
    if (this.queue.length === 1) this.enter(batch);
    this.local = undefined;
  }

  /** This worker's own pusher queued a message (delivered when it flushes). */
  sentLocal(): void {
    this.localSent = true;
  }

  deliverLocal(message: T): void {
    if (this.local === undefined) {
      this.local = [];
      this.queue.push({ batch: this.local, bytes: -1 });
      if (this.queue.length === 1) this.enter(this.local);
    }
    this.local.push(message);
    this.localSent = true;
    if (this.current === this.local) this.end = this.local.length;
  }

  private enter(batch: ArrayLike<T>): void {
    this.current = batch;
    this.end = batch.length;
    this.pos = 0;
  }

  closeFrom(source: number): void {
    if (this.closed[source] === 1) return;
    this.closed[source] = 1;
    this.open--;
  }

  /** A hosted pool replaced worker `source`: the newcomer starts open. */
  reopenFrom(source: number): void {
    if (this.closed[source] === 0) return;
    this.closed[source] = 0;
    this.open++;
  }

  get available(): boolean {
    return this.pos < this.end || this.queue.length > 1;
  }

  get done(): boolean {
    return this.finished() && !this.available;
  }

  closedBy(sender: number): boolean {
    return this.closed[sender] === 1;
  }

  recv(): T | undefined {
    // The hot path: one compare, one load, one store. A batch is left only
    // when the next recv finds it exhausted (see next()).
    const pos = this.pos;
    if (pos < this.end) {
      this.pos = pos + 1;
      return this.current[pos];
    }
    return this.next();
  }

  /** The current batch is exhausted (or there is none): move on, or report nothing. */
  private next(): T | undefined {
    if (this.advance()) {
      this.pos = 1;
      return this.current[0];
    }
    this.host.checkAbort();
    return undefined;
  }

  /**
   * Leaves the current batch (recycling it) and enters the next one;
   * false when there is none. Only called once the current batch was
   * read to its end.
   */
  private advance(): boolean {
    const left = this.queue.shift();
    if (left === undefined) return false;
    const size = left.bytes;
    if (size < 0) {
      if (this.current === this.local) this.local = undefined;
    } else {
      this.recycle?.(this.current);
      this.ahead -= size;
      if (this.stalling && this.ahead < this.aheadLimit) {
        this.stalling = false;
        this.host.wakeLocal();
      }
    }
    const next = this.queue.peek();
    if (next !== undefined) {
      this.enter(next.batch);
      return true;
    }
    this.current = NONE as ArrayLike<T>;
    this.end = 0;
    this.pos = 0;
    return false;
  }

  /** The rest of the current batch as one batch, handed out whole; undefined when nothing is there. */
  private takeBatch(): ArrayLike<T> | undefined {
    if (this.pos >= this.end && !this.advance()) return undefined;
    const batch = this.current;
    const from = this.pos;
    this.pos = this.end;
    // Later self-sent messages start a batch of their own, not this one.
    if (batch === this.local) this.local = undefined;
    if (from === 0) return batch;
    return ArrayBuffer.isView(batch) ? (batch as unknown as Float64Array).subarray(from) as unknown as ArrayLike<T> : Array.prototype.slice.call(batch, from);
  }

  /**
   * Iteration ends once every sender has closed. This worker's own pusher
   * counts as closed when it has never sent on this channel: a worker that
   * only receives need not close its pushers for its loop to end. Such a
   * pusher is closed for good then, so a later send to oneself throws
   * rather than going unread.
   */
  private finished(): boolean {
    if (this.open === 1 && this.closed[this.self] === 0 && !this.localSent) this.closeOwn();
    return this.open === 0;
  }

  /**
   * Receives until this puller has something or every sender closed; false
   * when the latter. Synchronous unless it has to park: a message that
   * arrives while the endpoint spins is answered without a promise.
   */
  fill(): boolean | Promise<boolean> {
    if (this.available) return true;
    if (this.finished()) return false;
    // Release first: a message this worker sent itself arrives only then.
    // spinThenPark releases again before it spins.
    this.host.release();
    for (;;) {
      this.host.receive();
      if (this.available) return true;
      if (this.finished()) return false;
      const parked = this.host.spinThenPark();
      if (parked !== true) return parked.then(() => this.fill());
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return new Messages(this);
  }

  async *batches(): AsyncGenerator<ArrayLike<T>, void, undefined> {
    for (;;) {
      const batch = this.takeBatch();
      if (batch !== undefined) yield batch;
      else if (!(await this.fill())) return;
    }
  }

  /** recv() for the iterator, which must tell an undefined message from none. */
  take(): T | typeof NOTHING {
    const pos = this.pos;
    if (pos < this.end) {
      this.pos = pos + 1;
      return this.current[pos]!;
    }
    if (this.advance()) {
      this.pos = 1;
      return this.current[0]!;
    }
    return NOTHING;
  }
}

const DONE: IteratorResult<never> = { value: undefined, done: true };

// A hand-written iterator, not an async generator: a generator awaits once
// per message (about 4 M/s at best); this one answers with an already
// resolved promise whenever it need not park: from the current batch, or
// once the endpoint's spin saw the next one arrive.
class Messages<T> implements AsyncIterator<T> {
  constructor(private readonly pull: ChannelPull<T>) {}

  next(): Promise<IteratorResult<T>> {
    const value = this.pull.take();
    if (value !== NOTHING) return Promise.resolve({ value, done: false });
    let filled: boolean | Promise<boolean>;
    try {
      filled = this.pull.fill();
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (filled === true) return Promise.resolve(this.result(true));
    if (filled === false) return Promise.resolve(DONE);
    return filled.then((more) => this.result(more));
  }

  private result(more: boolean): IteratorResult<T> {
    return more ? { value: this.pull.take() as T, done: false } : DONE;
  }
}
