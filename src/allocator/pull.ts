// The receiving end of a channel. Batches arrive whole (one decode per
// frame) and recv() walks them, so the per-message path is an index bump.

import type { Allocator } from './allocator.ts';

const NONE: ArrayLike<never> = [];

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
  /** batches[head] (NONE when there is none) and its length: recv's one check. */
  private current: ArrayLike<T> = NONE;
  private end = 0;
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
    if (this.batches.push(batch) === 1) this.enter(batch);
    this.local = undefined;
  }

  deliverLocal(message: T): void {
    if (this.local === undefined) {
      this.local = [];
      if (this.batches.push(this.local) === 1) this.enter(this.local);
    }
    this.local.push(message);
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
    return this.pos < this.end || this.head + 1 < this.batches.length;
  }

  get done(): boolean {
    return this.open === 0 && !this.available;
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
    const batches = this.batches;
    if (batches.length > 0) {
      const done = this.current;
      if (done === this.local) this.local = undefined;
      else if (this.recycle !== undefined) this.recycle(done);
      this.head++;
      if (this.head < batches.length) {
        if (this.head >= 1024) {
          this.batches = batches.slice(this.head);
          this.head = 0;
        }
        this.enter(this.batches[this.head]!);
        this.pos = 1;
        return this.current[0];
      }
      batches.length = 0;
      this.head = 0;
      this.current = NONE as ArrayLike<T>;
      this.end = 0;
      this.pos = 0;
    }
    this.allocator.checkAbort();
    return undefined;
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
