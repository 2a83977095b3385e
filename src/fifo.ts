// weft's one queue: an array with a head index, so shift is O(1) amortised
// (Array#shift moves every element). The dispatch queue and in-flight lists
// shift one entry per task, the outboxes one per overflowed frame, a puller
// one per batch. A leaf module like errors.ts: every layer may import it.

export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    // The slot is past the head now: cleared, so what it held can be collected.
    this.items[this.head++] = undefined as T;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Puts `items` in front, in their order. */
  prepend(items: readonly T[]): void {
    this.items = [...items, ...this.items.slice(this.head)];
    this.head = 0;
  }

  /** The item `i` places from the front. */
  at(i: number): T | undefined {
    return this.items[this.head + i];
  }

  /** Removes the first item satisfying `match`, wherever it is. */
  removeFirst(match: (item: T) => boolean): T | undefined {
    for (let i = this.head; i < this.items.length; i++) {
      if (match(this.items[i]!)) return this.items.splice(i, 1)[0];
    }
    return undefined;
  }

  /** Removes every item satisfying `match`; returns how many. */
  removeAll(match: (item: T) => boolean): number {
    return this.extract(match).length;
  }

  /** Removes every item satisfying `match` and returns them, in order. */
  extract(match: (item: T) => boolean): T[] {
    const kept: T[] = [];
    const removed: T[] = [];
    for (let i = this.head; i < this.items.length; i++) (match(this.items[i]!) ? removed : kept).push(this.items[i]!);
    this.items = kept;
    this.head = 0;
    return removed;
  }

  /** Empties the queue, returning what it held. */
  take(): T[] {
    const items = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return items;
  }
}
