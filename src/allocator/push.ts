// The sending end of a channel to one worker. `send` checks and stores the
// message in the batcher; a full batch, flush() or the allocator's release()
// turns it into one frame. A message to oneself goes through the same
// batching, encoding and decoding, so it arrives as the same value a remote
// one would (docs/semantics.md, "Messages").
//
// Backpressure follows Node's stream convention: `send` never blocks and
// never drops, but returns false once the backlog in front of this pusher
// (frames waiting on this worker's side for ring space) is over the
// high-water mark; `ready()` resolves once it is back under.

import type { Batcher, Codec } from './codec.ts';
import type { ChannelPull } from './pull.ts';
import type { Outbox, Chunk } from '../transport/index.ts';
import { Kind } from '../transport/index.ts';
import { PushLoan, type Loan } from './loan.ts';
import { countReceived, countSent } from './counters.ts';
import { ChannelError } from '../errors.ts';

export interface Push<T> {
  readonly channel: number;
  /** The worker this pusher reaches. */
  readonly target: number;
  /**
   * Queues a message; delivery happens on flush. Never blocks, never drops.
   * Returns false once this pusher's backlog is over the high-water mark:
   * wait for `ready()` before sending more. A message the codec refuses
   * throws here (a ChannelError whose cause is the codec's error) and is
   * not queued.
   */
  send(message: T): boolean;
  /** Resolves once the backlog is at or under the high-water mark (at once when it is). */
  ready(): Promise<void>;
  /** Sends every message of `source`, waiting for `ready()` whenever `send` says so. Does not close. */
  sendAll(source: Iterable<T> | AsyncIterable<T>): Promise<void>;
  /**
   * Bytes waiting on this worker's side before this pusher's next frame can
   * enter its ring, plus, towards a thread of this process, the bytes of
   * large messages in the slab past `ringBytes` not yet taken by the
   * receiver (each counted whole but the oldest in flight, counted for at
   * most `ringBytes`).
   */
  readonly backlog: number;
  /** Hands buffered messages to the transport and publishes them. */
  flush(): void;
  /** Tells the receiver no more messages come from this worker (flushing first); always closes. */
  close(): void;
  /**
   * Memory for one message of a typed-array channel, to fill in place and
   * send with `loan.send()`: towards a thread of this process, a chunk of
   * this worker's slab that the receiver reads where it was written (no
   * copy at all with `{ borrow: true }`). `byteLength` is a whole number of
   * elements. Undefined while the backlog is over the high-water mark (as
   * when send() says to wait) or the slab has no room for it (its chunks
   * are with receivers): wait with `awaitLoan()`. Elsewhere (to itself, to
   * another process, more than `slabBytes`) the memory is the loan's own
   * and travels as a sent message does.
   */
  loan(byteLength: number): Loan | undefined;
  /** `loan()`, waiting (receiving meanwhile, as `ready()` does) until the slab has room. */
  awaitLoan(byteLength: number): Promise<Loan>;
}

/** What release() calls on every pusher holding unsent messages. */
export interface Emitter {
  /** In the dirty list already: release() clears it. */
  listed: boolean;
  emit(): void;
}

/**
 * What a pusher needs from its worker's endpoint (as PullHost is for a
 * puller). The endpoint implements it; a pusher reaches nothing else of it.
 */
export interface PushHost {
  /** This worker's index. */
  readonly index: number;
  /** The largest batch a frame may carry (maxMessageBytes). */
  readonly maxBatch: number;
  /** Backlog bytes past which send() returns false (highWaterBytes). */
  readonly highWater: number;
  /**
   * Per target, the outbox towards it (undefined where there is no route).
   * The same array for the run: a hosted pool that rewires a target
   * replaces its entry in place, so a pusher keeps the array and looks its
   * target up per send (a plain load, not a call: send() reads it).
   */
  readonly outboxes: readonly (Outbox | undefined)[];
  /** Whether worker `target` has returned: what is still sent to it is dropped. */
  returned(target: number): boolean;
  /** Per worker: 1 while its process is absent (lost, or a spare not joined); checkReach then throws. The same array for the run. */
  readonly absent: Uint8Array;
  /** Throws a PeerError where `target`'s process was lost or is a spare that has not joined. */
  checkReach(target: number, channel: number): void;
  /** Lists a pusher holding unsent messages, for the endpoint's release(). */
  hold(pusher: Emitter): void;
  /** Resolves once `ready` holds, moving overflow and receiving meanwhile. */
  until(ready: () => boolean): Promise<void>;
  /** A message to oneself was sent, or its pusher closed: the worker has something to read. */
  wakeLocal(): void;
  /** A loan's chunk was given back on this thread: wakes a wait of this worker parked for room (awaitLoan in another task). */
  wake(): void;
}

const READY = Promise.resolve();

abstract class Pusher<T> implements Push<T> {
  /** Why sending is over ('after close()', or after the worker returned); undefined while open. */
  protected shut: string | undefined;

  constructor(
    readonly channel: number,
    readonly target: number,
    /** Bytes per element of a typed-array channel's messages; undefined on other channels (no loans). */
    protected readonly elementBytes: number | undefined,
  ) {}

  abstract send(message: T): boolean;
  abstract loan(byteLength: number): Loan | undefined;

  async awaitLoan(byteLength: number): Promise<Loan> {
    return this.loan(byteLength)!;
  }

  /** Refuses a loan the channel cannot carry, before any memory is taken. */
  protected checkLoan(byteLength: number, max: number): void {
    if (this.elementBytes === undefined) {
      throw new ChannelError(this.channel, 'loan() needs a typed-array channel (codecs.typedArray): a loan\'s bytes are one message as they are');
    }
    if (!Number.isInteger(byteLength) || byteLength < 0 || byteLength % this.elementBytes !== 0 || byteLength > max) {
      throw new ChannelError(this.channel, `loan() takes a byte length from 0 to ${max} that is a multiple of ${this.elementBytes} (the element size), got ${String(byteLength)}`);
    }
  }

  /** Memory of the loan's own, for a target no slab reaches. */
  protected ownLoan(byteLength: number, deliver: (bytes: Uint8Array) => boolean): Loan {
    const bytes = new Uint8Array(Buffer.allocUnsafeSlow(byteLength).buffer as ArrayBuffer, 0, byteLength);
    return new PushLoan(this.channel, bytes, () => deliver(bytes), () => {});
  }
  abstract flush(): void;
  /** Hands the buffered messages on (a frame, or the own puller). */
  abstract emit(): void;
  /** After close(): tells the receiver no more messages come. */
  protected abstract closed(): void;

  close(): void {
    if (this.shut !== undefined) return;
    this.shut = 'after close()';
    // Closed whatever emit() throws: the receiver learns it either way.
    try {
      this.emit();
    } finally {
      this.closed();
    }
  }

  get backlog(): number {
    return 0;
  }

  ready(): Promise<void> {
    return READY;
  }

  async sendAll(source: Iterable<T> | AsyncIterable<T>): Promise<void> {
    if (typeof (source as { [Symbol.iterator]?: unknown } | null)?.[Symbol.iterator] !== 'function' && typeof (source as { [Symbol.asyncIterator]?: unknown } | null)?.[Symbol.asyncIterator] !== 'function') {
      throw new ChannelError(this.channel, `sendAll() takes an iterable or an async iterable, got ${source === null ? 'null' : typeof source}`);
    }
    // A sync source is not awaited per message: only when send says to wait.
    if (Symbol.asyncIterator in source) {
      for await (const m of source) if (!this.send(m)) await this.ready();
    } else {
      for (const m of source) if (!this.send(m)) await this.ready();
    }
  }

  /** The worker returned: every later send throws. */
  retire(index: number): void {
    this.shut ??= `after worker ${index} returned (its allocator is closed)`;
  }

  /** Adds to the batch; a message the codec refuses throws here, not queued. */
  protected add(batcher: Batcher<T>, message: T): boolean {
    try {
      return batcher.add(message);
    } catch (error) {
      throw new ChannelError(this.channel, `send to worker ${this.target} refused the message: ${(error as Error).message}`, { cause: error });
    }
  }

  protected take(batcher: Batcher<T>): Uint8Array {
    return this.encoded(() => batcher.take());
  }

  /** take(), as parts when the codec lays its payload out in parts (see Batcher.takeParts). */
  protected takeParts(batcher: Batcher<T>): Uint8Array | Uint8Array[] {
    return this.encoded(() => batcher.takeParts?.() ?? batcher.take());
  }

  /** A batch's encoding; a failure names the channel. */
  private encoded<R>(encode: () => R): R {
    try {
      return encode();
    } catch (error) {
      throw new ChannelError(this.channel, (error as Error).message, { cause: error });
    }
  }

  protected refuse(): never {
    throw new ChannelError(this.channel, `send to worker ${this.target} ${this.shut!}`);
  }
}

export class RemotePush<T> extends Pusher<T> implements Emitter {
  /** In the endpoint's dirty list (once per release, however many batches a sender fills meanwhile). */
  listed = false;
  private readonly codec: number;
  private readonly batcher: Batcher<T>;
  /** The host's, read once: constant for the run. */
  private readonly highWater: number;
  private readonly outboxes: readonly (Outbox | undefined)[];
  private readonly absent: Uint8Array;

  constructor(
    channel: number,
    target: number,
    codec: Codec<T>,
    private readonly host: PushHost,
    /** The channel's counters (counters.ts). */
    private readonly counts: Float64Array,
  ) {
    super(channel, target, codec.elementBytes);
    this.codec = codec.id;
    this.batcher = codec.batcher();
    this.highWater = host.highWater;
    this.outboxes = host.outboxes;
    this.absent = host.absent;
  }

  private get outbox(): Outbox {
    return this.outboxes[this.target]!;
  }

  send(message: T): boolean {
    this.check();
    const b = this.batcher;
    const full = this.add(b, message);
    if (!this.listed) {
      this.listed = true;
      this.host.hold(this);
    }
    if (full) this.emit();
    // backlog, inline: this runs once per message, and while no target is
    // past its slab window (the usual case) the backlog is the overflow's.
    const o = this.outboxes[this.target]!;
    const slab = o.chunks;
    return (slab === undefined || slab.pastTargets === 0 ? o.overflowBytes : this.backlog) <= this.highWater;
  }

  loan(byteLength: number): Loan | undefined {
    this.check();
    this.checkLoan(byteLength, this.host.maxBatch);
    const slab = this.outbox.chunks;
    if (slab === undefined || !slab.fits(byteLength)) {
      return this.ownLoan(byteLength, (bytes) => this.sendLoaned(byteLength, (outbox) => outbox.data(this.target, this.channel, this.codec, 1, bytes)));
    }
    // Paced like send(): none while the backlog is over the mark. Until a
    // loan succeeds, a parked worker wakes when a chunk comes back
    // (awaitEvents then returns), as it does for ring space.
    const chunk = this.backlog <= this.highWater ? slab.alloc(byteLength, -1) : undefined;
    if (chunk === undefined) {
      slab.wanted = Math.max(slab.wanted, byteLength);
      return undefined;
    }
    slab.wanted = 0;
    return new PushLoan(this.channel, chunk.bytes, () => this.sendChunk(chunk), () => this.giveBack(chunk));
  }

  override async awaitLoan(byteLength: number): Promise<Loan> {
    for (;;) {
      const loan = this.loan(byteLength);
      if (loan !== undefined) return loan;
      const slab = this.outbox.chunks!;
      await this.host.until(() => this.backlog <= this.highWater && slab.wantSpace(byteLength));
    }
  }

  private sendChunk(chunk: Chunk): boolean {
    try {
      return this.sendLoaned(chunk.bytes.length, (outbox) => {
        outbox.chunks!.assign(chunk, this.target);
        outbox.sendChunk(chunk, this.channel, this.codec, 1);
      });
    } finally {
      // Not sent (refused, or its target returned): the chunk is free again.
      if (chunk.target < 0 || this.host.returned(this.target)) this.giveBack(chunk);
    }
  }

  /** A loan's chunk is free again; a task of this worker waiting in awaitLoan() may take it. */
  private giveBack(chunk: Chunk): void {
    this.outbox.chunks?.release(chunk);
    this.host.wake();
  }

  /** A loan's message: after what this pusher batched before it, checked as send() checks. */
  private sendLoaned(bytes: number, put: (outbox: Outbox) => void): boolean {
    this.check();
    this.emit();
    if (!this.host.returned(this.target)) {
      put(this.outbox);
      countSent(this.counts, this.target, 1, bytes);
    }
    return this.backlog <= this.highWater;
  }

  /** Throws where a send to this target cannot go. */
  private check(): void {
    // Once per message: a load, and a call only when the target is absent.
    if (this.absent[this.target] !== 0) this.host.checkReach(this.target, this.channel);
    if (this.shut !== undefined) this.refuse();
  }

  override get backlog(): number {
    const o = this.outbox;
    return o.chunks === undefined ? o.overflowBytes : o.overflowBytes + o.chunks.pastWindow(this.target);
  }

  override ready(): Promise<void> {
    if (this.backlog <= this.highWater) return READY;
    return this.host.until(() => this.backlog <= this.highWater);
  }

  /** Moves the pending batch into the outbox without publishing it. */
  emit(): void {
    const count = this.batcher.count;
    if (count === 0) return;
    const payload = this.takeParts(this.batcher);
    // Nobody will read it: a worker that returned reads no more.
    if (this.host.returned(this.target)) return;
    const length = Array.isArray(payload) ? payload.reduce((n, p) => n + p.length, 0) : payload.length;
    if (length > this.host.maxBatch) {
      throw new ChannelError(this.channel, `a batch of ${length} bytes exceeds maxMessageBytes (${this.host.maxBatch})`);
    }
    this.outbox.data(this.target, this.channel, this.codec, count, payload);
    countSent(this.counts, this.target, count, length);
  }

  flush(): void {
    this.emit();
    this.outbox.drain();
    this.outbox.publish();
  }

  protected closed(): void {
    if (!this.host.returned(this.target)) this.outbox.control(this.target, this.channel, Kind.CLOSE);
    this.outbox.drain();
    this.outbox.publish();
  }
}

/**
 * The pusher to its own worker. Batched, encoded and decoded like the others
 * (the codec's value model and refusals, and a copy the sender can no longer
 * change), and delivered on the same occasions: a full batch, flush(),
 * close() and the allocator's release(). It never has a backlog.
 */
export class LocalPush<T> extends Pusher<T> implements Emitter {
  private readonly batcher: Batcher<T>;
  listed = false;

  constructor(
    channel: number,
    target: number,
    private readonly pull: ChannelPull<T>,
    private readonly codec: Codec<T>,
    private readonly host: PushHost,
    /** The channel's counters (counters.ts): this worker is both ends. */
    private readonly counts: Float64Array,
  ) {
    super(channel, target, codec.elementBytes);
    this.batcher = codec.batcher();
  }

  loan(byteLength: number): Loan {
    if (this.shut !== undefined) this.refuse();
    this.checkLoan(byteLength, 0xffffffff);
    return this.ownLoan(byteLength, (bytes) => this.send(this.codec.decode(bytes, 1, true)[0]!));
  }

  send(message: T): boolean {
    if (this.shut !== undefined) this.refuse();
    const full = this.add(this.batcher, message);
    this.pull.sentLocal();
    if (!this.listed) {
      this.listed = true;
      this.host.hold(this);
    }
    if (full) this.emit();
    return true;
  }

  emit(): void {
    const count = this.batcher.count;
    if (count === 0) return;
    // A copy: the bytes may be the codec's reused buffer, or the message's own memory.
    const bytes = this.take(this.batcher).slice();
    countSent(this.counts, this.target, count, bytes.length);
    countReceived(this.counts, this.target, count, bytes.length);
    const batch = this.codec.decode(bytes, count, true);
    for (let i = 0; i < batch.length; i++) this.pull.deliverLocal(batch[i]!);
    this.codec.recycle?.(batch);
    this.host.wakeLocal();
  }

  flush(): void {
    this.emit();
  }

  protected closed(): void {
    this.pull.closeFrom(this.target);
    // Another task of this worker may be parked on this channel's end.
    this.host.wakeLocal();
  }

  protected override refuse(): never {
    throw new ChannelError(this.channel, `send to worker ${this.target} (itself) ${this.shut!}`);
  }
}

/** A pusher to a worker this endpoint has no route to (hosted pools are a star). */
export class UnroutablePush<T> extends Pusher<T> {
  constructor(
    channel: number,
    target: number,
    private readonly source: number,
  ) {
    super(channel, target, undefined);
  }

  send(_message: T): boolean {
    throw new ChannelError(this.channel, `worker ${this.source} has no route to worker ${this.target}`);
  }

  loan(_byteLength: number): Loan {
    throw new ChannelError(this.channel, `worker ${this.source} has no route to worker ${this.target}`);
  }

  flush(): void {}

  emit(): void {}

  protected closed(): void {}
}
