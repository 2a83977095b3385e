// The items of one directive between admitted and finished, by input index.
// Lookups happen once per result, millions of times, so the table is a dense
// array indexed by `index & mask` rather than a Map.

import type { Timed } from './deadlines.ts';

/**
 * An input item somewhere in its chain of tasks. Records are reused once
 * their item finishes (`index` is then FREE): a callback that outlives its
 * item (a retry, a timeout) must keep the index it was made for and compare.
 */
export interface Pending extends Timed {
  index: number;
  stage: number;
  attempt: number;
  input: unknown;
  /** The timer of a delayed retry. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The current attempt timed out and was cancelled: its retry waits for the result that says it ended. */
  cancelling: boolean;
  /** When its current task was dispatched (performance.now()), when the runtime records timing. */
  sentAt: number;
}

// The table has a power of two of slots. It starts small and doubles when an
// item finds its slot taken by an older pending one, up to the window (at
// most MAX_SLOTS); beyond that, such an item (its elder is stuck far behind
// the others) goes to an overflow map.
const MAX_SLOTS = 1 << 16;
const MIN_SLOTS = 64;

const FREE = -1;

function slotCount(maxInFlight: number): number {
  let slots = 1;
  while (slots < maxInFlight && slots < MAX_SLOTS) slots *= 2;
  return slots;
}

function fresh(index: number, input: unknown): Pending {
  return { index, stage: 0, attempt: 0, input, ticket: -1, deadline: 0, timer: undefined, cancelling: false, sentAt: 0 };
}

export class PendingTable {
  /** Pending items by `index & mask` (a slot may hold a finished record, index FREE, for reuse). */
  private slots: (Pending | undefined)[];
  private mask: number;
  private readonly maxSlots: number;
  /** Pending items whose slot was taken by an older pending item. */
  private readonly overflow = new Map<number, Pending>();
  /** Items between taken and dropped. */
  count = 0;

  constructor(maxInFlight: number) {
    this.maxSlots = slotCount(maxInFlight);
    const slots = Math.min(this.maxSlots, MIN_SLOTS);
    this.slots = new Array<Pending | undefined>(slots).fill(undefined);
    this.mask = slots - 1;
  }

  lookup(index: number): Pending | undefined {
    const item = this.slots[index & this.mask];
    if (item !== undefined && item.index === index) return item;
    return this.overflow.size === 0 ? undefined : this.overflow.get(index);
  }

  /** A record for input `index` at its first stage and attempt. */
  take(index: number, input: unknown): Pending {
    this.count++;
    for (;;) {
      const slot = index & this.mask;
      const item = this.slots[slot];
      if (item === undefined) return (this.slots[slot] = fresh(index, input));
      if (item.index === FREE) {
        item.index = index;
        item.stage = 0;
        item.attempt = 0;
        item.input = input;
        item.cancelling = false;
        return item;
      }
      if (this.slots.length >= this.maxSlots) break;
      this.grow();
    }
    const stray = fresh(index, input);
    this.overflow.set(index, stray);
    return stray;
  }

  /** The item has finished; its record may be reused. */
  drop(item: Pending): void {
    this.count--;
    if (this.slots[item.index & this.mask] === item) {
      item.index = FREE;
      item.input = undefined;
      item.ticket = -1;
    } else {
      this.overflow.delete(item.index);
    }
  }

  /** Forgets every item: the directive has ended. */
  clear(): void {
    this.overflow.clear();
    this.count = 0;
  }

  /** Doubles the table; pending items keep distinct slots, finished records are let go. */
  private grow(): void {
    const size = this.slots.length * 2;
    const slots = new Array<Pending | undefined>(size).fill(undefined);
    const mask = size - 1;
    for (const item of this.slots) if (item !== undefined && item.index !== FREE) slots[item.index & mask] = item;
    for (const [index, item] of this.overflow) {
      if (slots[index & mask] === undefined) {
        slots[index & mask] = item;
        this.overflow.delete(index);
      }
    }
    this.slots = slots;
    this.mask = mask;
  }
}
