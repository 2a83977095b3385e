// An array-backed queue with O(1) amortised shift: the dispatch queue and the
// per-worker in-flight lists shift one entry per task, millions of times.

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
    const item = this.items[this.head++]!;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
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

  /** The first item satisfying `match`, left in place. */
  find(match: (item: T) => boolean): T | undefined {
    for (let i = this.head; i < this.items.length; i++) if (match(this.items[i]!)) return this.items[i];
    return undefined;
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
