// The sending end of a channel to one worker. `send` only stores into the
// batcher; a full batch, flush() or the allocator's release() turns it into
// one frame. A message to oneself skips encoding altogether.

import type { Batcher } from './codec.ts';
import type { ChannelPull } from './pull.ts';
import type { Outbox } from '../transport/outbox.ts';
import { Kind } from '../transport/frame.ts';
import { ChannelError } from '../errors.ts';

export interface Push<T> {
  readonly channel: number;
  /** The worker this pusher reaches. */
  readonly target: number;
  /** Queues a message. Never blocks, never drops; delivery happens on flush. */
  send(message: T): void;
  /** Hands buffered messages to the transport and publishes them. */
  flush(): void;
  /** Flushes, then tells the receiver no more messages come from this worker. */
  close(): void;
}

export class RemotePush<T> implements Push<T> {
  private closed = false;

  constructor(
    readonly channel: number,
    readonly target: number,
    private readonly codec: number,
    private readonly batcher: Batcher<T>,
    /** Looked up per batch, not held: a hosted pool may rewire a target. */
    private readonly outboxes: readonly (Outbox | undefined)[],
    /** Pushers holding unsent messages, for the allocator's release(). */
    private readonly dirty: RemotePush<unknown>[],
    private readonly maxBatch: number,
  ) {}

  private get outbox(): Outbox {
    return this.outboxes[this.target]!;
  }

  send(message: T): void {
    if (this.closed) throw new ChannelError(this.channel, `send to worker ${this.target} after close()`);
    if (this.batcher.count === 0) this.dirty.push(this as RemotePush<unknown>);
    if (this.batcher.add(message)) this.emit();
  }

  /** Moves the pending batch into the outbox without publishing it. */
  emit(): void {
    const count = this.batcher.count;
    if (count === 0) return;
    let payload: Uint8Array;
    try {
      payload = this.batcher.take();
    } catch (error) {
      throw new ChannelError(this.channel, (error as Error).message, { cause: error });
    }
    if (payload.length > this.maxBatch) {
      throw new ChannelError(this.channel, `a batch of ${payload.length} bytes exceeds maxMessageBytes (${this.maxBatch})`);
    }
    this.outbox.data(this.target, this.channel, this.codec, count, payload);
  }

  flush(): void {
    this.emit();
    this.outbox.drain();
    this.outbox.publish();
  }

  close(): void {
    if (this.closed) return;
    this.emit();
    this.closed = true;
    this.outbox.control(this.target, this.channel, Kind.CLOSE);
    this.outbox.drain();
    this.outbox.publish();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

export class LocalPush<T> implements Push<T> {
  private closed = false;

  constructor(
    readonly channel: number,
    readonly target: number,
    private readonly pull: ChannelPull<T>,
    private readonly wake: () => void,
  ) {}

  send(message: T): void {
    if (this.closed) throw new ChannelError(this.channel, `send to worker ${this.target} (itself) after close()`);
    this.pull.deliverLocal(message);
    this.wake();
  }

  flush(): void {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pull.closeFrom(this.target);
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** A pusher to a worker this endpoint has no route to (hosted pools are a star). */
export class UnroutablePush<T> implements Push<T> {
  constructor(
    readonly channel: number,
    readonly target: number,
    private readonly source: number,
  ) {}

  send(_message: T): void {
    throw new ChannelError(this.channel, `worker ${this.source} has no route to worker ${this.target}`);
  }

  flush(): void {}

  close(): void {}
}
