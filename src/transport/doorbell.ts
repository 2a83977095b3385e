// A doorbell per worker: the one place a worker parks, whatever it waits for
// (data on any of its incoming rings, space in a ring it is writing, or an
// abort). One Int32 cell on its own 64-byte line each:
//
//   EPOCH  bumped by whoever rings; the sleeper waits on it
//   PARKED 1 while the owner is about to wait or waiting
//
// Why it cannot lose a wake-up: the owner stores PARKED = 1, then re-checks its
// rings, then waits only if EPOCH still holds the value read before the
// re-check. A producer publishes its ring index, then loads PARKED. Both are
// sequentially consistent Atomics, so either the producer sees PARKED = 1 and
// bumps EPOCH (the wait returns at once), or the owner's re-check sees the data.

const EPOCH = 0;
const PARKED = 16;
export const DOORBELL_BYTES = 128;

// One timer per thread, made once: only ref'd and unref'd per wait (a new
// timer per park cost ~0.4 us). `waiting` counts the thread's pending waits.
let hold: ReturnType<typeof setInterval> | undefined;
let waiting = 0;

export class Doorbell {
  readonly cells: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.cells = new Int32Array(buffer);
  }

  static create(): Doorbell {
    return new Doorbell(new SharedArrayBuffer(DOORBELL_BYTES));
  }

  /** Wake the owner if it is parked; cheap (one load) when it is not. */
  ring(): void {
    if (Atomics.load(this.cells, PARKED) !== 0) this.force();
  }

  /** Wake the owner whatever it is doing: used by abort. */
  force(): void {
    Atomics.add(this.cells, EPOCH, 1);
    Atomics.notify(this.cells, EPOCH);
  }

  /** The owner's side: read before the last check for work. */
  epoch(): number {
    return Atomics.load(this.cells, EPOCH);
  }

  announce(): void {
    Atomics.store(this.cells, PARKED, 1);
  }

  settle(): void {
    Atomics.store(this.cells, PARKED, 0);
  }

  /** Park until rung or timeout; call between announce() and settle(). */
  wait(epoch: number, timeoutMs: number): void {
    Atomics.wait(this.cells, EPOCH, epoch, timeoutMs);
  }

  /**
   * The async twin for threads that must keep their event loop turning.
   * A pending Atomics.waitAsync does not keep a Node event loop alive, so a
   * thread whose only pending work is this wait would simply exit; a timer
   * holds the loop open while any wait of the thread is pending.
   */
  async waitAsync(epoch: number, timeoutMs: number): Promise<void> {
    const r = Atomics.waitAsync(this.cells, EPOCH, epoch, timeoutMs);
    if (!r.async) return;
    if (waiting++ === 0) (hold ??= setInterval(() => {}, 1 << 30)).ref();
    try {
      await r.value;
    } finally {
      if (--waiting === 0) hold!.unref();
    }
  }
}
