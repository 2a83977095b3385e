// Per-task timeouts of one directive. All its tasks share one `timeoutMs`,
// so deadlines come in dispatch order: one timer serves a FIFO of (item,
// ticket), and an entry whose ticket is no longer its item's (the task was
// answered, or dispatched again) is skipped.

/** What the queue stamps on an item it watches. */
export interface Timed {
  /** Identifies the dispatch whose timeout is armed; -1 when none is. */
  ticket: number;
  /** When the armed timeout expires (performance.now() time). */
  deadline: number;
}

/** The item's armed timeout, if any, no longer counts. */
export function disarm(item: Timed): void {
  item.ticket = -1;
}

export class DeadlineQueue<T extends Timed> {
  private items: T[] = [];
  private tickets: number[] = [];
  private head = 0;
  private nextTicket = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When the sweep in progress started; the deadlines before it are due. */
  private now = 0;
  private readonly sweep = () => {
    this.now = performance.now();
    this.onDue();
  };

  /** `onDue` runs when the earliest deadline may have passed: it calls `due` until undefined, then `rearm`. */
  constructor(
    readonly timeoutMs: number,
    private readonly onDue: () => void,
  ) {}

  /** Starts the timeout of `item`'s new dispatch; `live` is how many items could be armed at once. */
  arm(item: T, live: number): void {
    const ticket = this.nextTicket++;
    item.ticket = ticket;
    item.deadline = performance.now() + this.timeoutMs;
    this.items.push(item);
    this.tickets.push(ticket);
    // While a sweep runs the timer stays set, so retries sent from it arm none.
    if (this.timer === undefined) this.timer = setTimeout(this.sweep, this.timeoutMs);
    // Entries of answered tasks stay until their deadline: keep them from
    // outgrowing the live ones.
    else if (this.items.length - this.head > 2 * live + 1024) this.compact();
  }

  /** The next item whose deadline has passed, disarmed; undefined when none is left. */
  due(): T | undefined {
    while (this.head < this.items.length) {
      const item = this.items[this.head]!;
      if (item.ticket !== this.tickets[this.head]) {
        this.head++;
        continue;
      }
      if (item.deadline > this.now) return undefined;
      this.head++;
      return item;
    }
    return undefined;
  }

  /** Ends a sweep: waits for the next deadline, or for the next `arm`. */
  rearm(): void {
    if (this.head === this.items.length) return this.clear();
    const head = this.items[this.head]!;
    this.timer = setTimeout(this.sweep, Math.max(1, Math.ceil(head.deadline - this.now)));
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.items = [];
    this.tickets = [];
    this.head = 0;
  }

  private compact(): void {
    const items: T[] = [];
    const tickets: number[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      if (this.items[i]!.ticket === this.tickets[i]) {
        items.push(this.items[i]!);
        tickets.push(this.tickets[i]!);
      }
    }
    this.items = items;
    this.tickets = tickets;
    this.head = 0;
  }
}
