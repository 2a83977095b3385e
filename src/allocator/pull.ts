// The receiving end of a channel. Batches arrive whole (one decode per
// frame) and recv() walks them, so the per-message path is an index bump.

import type { Allocator } from './allocator.ts';

export interface Pull<T> extends AsyncIterable<T> {
  readonly channel: number;
  /** The next message, or undefined when none has arrived (call `allocator.receive()` first). */
  recv(): T | undefined;
  /** True once every sender has closed and every message was received. */
  readonly done: boolean;
}

export class ChannelPull<T> implements Pull<T> {
  private batches: ArrayLike<T>[] = [];
  private head = 0;
  private pos = 0;
  /** batches[head], or undefined when there is none: recv's one check. */
  private current: ArrayLike<T> | undefined;
  /** The batch self-sent messages are appended to, while it is the tail. */
  private local: T[] | undefined;
  private readonly closed: Uint8Array;
  private open: number;

  constructor(
    readonly channel: number,
    private readonly allocator: Allocator,
    peers: number,
    /** The codec's Codec.recycle, for batches fully read (never local ones). */
    private readonly recycle?: (batch: ArrayLike<T>) => void,
  ) {
    this.closed = new Uint8Array(peers);
    this.open = peers;
  }

  deliver(batch: ArrayLike<T>): void {
    if (batch.length === 0) return;
    if (this.batches.push(batch) === this.head + 1) this.current = batch;
    this.local = undefined;
  }

  deliverLocal(message: T): void {
    if (this.local === undefined) {
      this.local = [];
      if (this.batches.push(this.local) === this.head + 1) this.current = this.local;
    }
    this.local.push(message);
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
    return this.head < this.batches.length;
  }

  get done(): boolean {
    return this.open === 0 && !this.available;
  }

  recv(): T | undefined {
    // The hot path: one check, one load, one compare. The local batch may
    // grow while it is current, so its length is read each time.
    const batch = this.current;
    if (batch === undefined) {
      this.allocator.checkAbort();
      return undefined;
    }
    const m = batch[this.pos++]!;
    if (this.pos === batch.length) this.nextBatch();
    return m;
  }

  private nextBatch(): void {
    if (this.current === this.local) this.local = undefined;
    else if (this.recycle !== undefined) this.recycle(this.current!);
    this.pos = 0;
    this.head++;
    if (this.head === this.batches.length) {
      this.batches.length = 0;
      this.head = 0;
      this.current = undefined;
      return;
    }
    if (this.head >= 1024) {
      this.batches = this.batches.slice(this.head);
      this.head = 0;
    }
    this.current = this.batches[this.head];
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      while (this.available) yield this.recv() as T;
      if (this.open === 0) return;
      this.allocator.release();
      this.allocator.receive();
      if (!this.available && this.open > 0) await this.allocator.awaitEventsAsync();
    }
  }
}
