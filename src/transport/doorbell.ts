// A doorbell per worker: the one place a worker parks, whatever it waits for
// (data on any of its incoming rings, space in a ring it is writing, or an
// abort). One Int32 cell on its own 64-byte line each:
//
//   EPOCH  bumped by whoever rings; the sleepers wait on it
//   PARKED how many of the owner's waits are about to wait or waiting
//
// Why it cannot lose a wake-up: a waiter adds 1 to PARKED, then re-checks its
// rings, then waits only if EPOCH still holds the value read before the
// re-check. A producer publishes its ring index, then loads PARKED. Both are
// sequentially consistent Atomics, so either the producer's load comes after
// the waiter's add and sees PARKED > 0 (the waiter takes its 1 back only
// once it woke), so it bumps EPOCH and the wait returns at once; or the
// waiter's re-check comes after the publish and sees the data.
//
// A count, not a flag: an async worker may have several waits pending at
// once (two `for await` loops on different channels). With a flag, the first
// to wake cleared it while the other still slept; a producer then saw 0 and
// did not ring, and the awake one received the frame into the sleeper's
// puller, so nothing ever woke the sleeper. One notify wakes every waiter on
// EPOCH. On x86 the add costs what the store did (both are locked).

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
    Atomics.add(this.cells, PARKED, 1);
  }

  /** Once per announce(), after the wait. */
  settle(): void {
    Atomics.sub(this.cells, PARKED, 1);
  }

  /**
   * Forgets the waits of an owner that was terminated: they never settle,
   * and the bell's next owner (a replacement thread) must not inherit them,
   * or every producer would ring it on every publish.
   */
  clearWaits(): void {
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
