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
import type { Outbox } from '../transport/outbox.ts';
import { Kind } from '../transport/frame.ts';
import { ChannelError, PeerError } from '../errors.ts';

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
  /** Bytes waiting on this worker's side before this pusher's next frame can enter its ring. */
  readonly backlog: number;
  /** Hands buffered messages to the transport and publishes them. */
  flush(): void;
  /** Tells the receiver no more messages come from this worker (flushing first); always closes. */
  close(): void;
}

/** What release() calls on every pusher holding unsent messages. */
export interface Emitter {
  /** In the dirty list already: release() clears it. */
  listed: boolean;
  emit(): void;
}

/** What remote pushers share with their worker's allocator. */
export interface Sending {
  /** Per target: the outbox towards it. Looked up per batch: a hosted pool may rewire a target. */
  readonly outboxes: readonly (Outbox | undefined)[];
  /** Pushers holding unsent messages, for the allocator's release(). */
  readonly dirty: Emitter[];
  readonly maxBatch: number;
  readonly highWater: number;
  /** Per worker: 1 once it has returned; what is still sent to it is dropped. */
  readonly finished: Uint8Array;
  /** Per worker: its process once that was lost (onPeerLoss 'continue'), else -1; a send to it throws. */
  readonly lost: Int32Array;
  /** Per worker: 1 while its process is a spare that has not joined (Config.cluster spares); a send to it throws. */
  readonly absent: Uint8Array;
  /** Threads per process: worker w runs in process floor(w / threads). */
  readonly threads: number;
  /** Resolves once `ready` holds, moving overflow and receiving meanwhile. */
  until(ready: () => boolean): Promise<void>;
}

const READY = Promise.resolve();

abstract class Pusher<T> implements Push<T> {
  /** Why sending is over ('after close()', or after the worker returned); undefined while open. */
  protected shut: string | undefined;

  constructor(
    readonly channel: number,
    readonly target: number,
  ) {}

  abstract send(message: T): boolean;
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
    try {
      return batcher.take();
    } catch (error) {
      throw new ChannelError(this.channel, (error as Error).message, { cause: error });
    }
  }

  protected refuse(): never {
    throw new ChannelError(this.channel, `send to worker ${this.target} ${this.shut!}`);
  }
}

export class RemotePush<T> extends Pusher<T> {
  /** In the allocator's dirty list (once per release, however many batches a sender fills meanwhile). */
  listed = false;

  constructor(
    channel: number,
    target: number,
    private readonly codec: number,
    private readonly batcher: Batcher<T>,
    private readonly s: Sending,
  ) {
    super(channel, target);
  }

  private get outbox(): Outbox {
    return this.s.outboxes[this.target]!;
  }

  send(message: T): boolean {
    const process = this.s.lost[this.target]!;
    if (process >= 0) {
      throw new PeerError(process, `send to worker ${this.target} on channel ${this.channel}: its process ${process} was lost (it died, went silent or closed its connections without a goodbye) and has not been restarted`);
    }
    if (this.s.absent[this.target] === 1) {
      const spare = Math.floor(this.target / this.s.threads);
      throw new PeerError(spare, `send to worker ${this.target} on channel ${this.channel}: its process ${spare} is a spare that has not joined (allocator.peerJoins() tells when it does)`);
    }
    if (this.shut !== undefined) this.refuse();
    const b = this.batcher;
    const full = this.add(b, message);
    if (!this.listed) {
      this.listed = true;
      this.s.dirty.push(this);
    }
    if (full) this.emit();
    return this.outbox.overflowBytes <= this.s.highWater;
  }

  override get backlog(): number {
    return this.outbox.overflowBytes;
  }

  override ready(): Promise<void> {
    if (this.backlog <= this.s.highWater) return READY;
    return this.s.until(() => this.backlog <= this.s.highWater);
  }

  /** Moves the pending batch into the outbox without publishing it. */
  emit(): void {
    const count = this.batcher.count;
    if (count === 0) return;
    const payload = this.take(this.batcher);
    // Nobody will read it: a worker that returned reads no more.
    if (this.s.finished[this.target] === 1) return;
    if (payload.length > this.s.maxBatch) {
      throw new ChannelError(this.channel, `a batch of ${payload.length} bytes exceeds maxMessageBytes (${this.s.maxBatch})`);
    }
    this.outbox.data(this.target, this.channel, this.codec, count, payload);
  }

  flush(): void {
    this.emit();
    this.outbox.drain();
    this.outbox.publish();
  }

  protected closed(): void {
    if (this.s.finished[this.target] !== 1) this.outbox.control(this.target, this.channel, Kind.CLOSE);
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
    private readonly wake: () => void,
    private readonly codec: Codec<T>,
    private readonly dirty: Emitter[],
  ) {
    super(channel, target);
    this.batcher = codec.batcher();
  }

  send(message: T): boolean {
    if (this.shut !== undefined) this.refuse();
    const full = this.add(this.batcher, message);
    this.pull.sentLocal();
    if (!this.listed) {
      this.listed = true;
      this.dirty.push(this);
    }
    if (full) this.emit();
    return true;
  }

  emit(): void {
    const count = this.batcher.count;
    if (count === 0) return;
    // A copy: the bytes may be the codec's reused buffer, or the message's own memory.
    const batch = this.codec.decode(this.take(this.batcher).slice(), count, true);
    for (let i = 0; i < batch.length; i++) this.pull.deliverLocal(batch[i]!);
    this.codec.recycle?.(batch);
    this.wake();
  }

  flush(): void {
    this.emit();
  }

  protected closed(): void {
    this.pull.closeFrom(this.target);
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
    super(channel, target);
  }

  send(_message: T): boolean {
    throw new ChannelError(this.channel, `worker ${this.source} has no route to worker ${this.target}`);
  }

  flush(): void {}

  emit(): void {}

  protected closed(): void {}
}
