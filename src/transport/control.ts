// Shared state of one run of workers: whether it was aborted and by whom.
// Fail-stop needs one flag every thread can read without a message: a worker
// spinning on its rings notices an abort on its next check, without having
// to return to its event loop.

import { Doorbell } from './doorbell.ts';

const STATE = 0;
const FAILED = 1;
const CLAIM = 2;
const RUNNING = 0;
const ABORTED = 1;

export class Control {
  readonly cells: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.cells = new Int32Array(buffer);
  }

  static create(): Control {
    return new Control(new SharedArrayBuffer(64));
  }

  get aborted(): boolean {
    return Atomics.load(this.cells, STATE) !== RUNNING;
  }

  /** The worker whose failure aborted the run (valid once aborted); -1 for a peer process. */
  get failedWorker(): number {
    return Atomics.load(this.cells, FAILED);
  }

  /**
   * Marks the run aborted by `worker` (first caller wins) and wakes every
   * doorbell, so parked workers see the flag now rather than at a timeout.
   */
  abort(worker: number, bells: Iterable<Doorbell>): boolean {
    // FAILED is written before STATE flips, so whoever sees ABORTED reads it.
    const won = Atomics.compareExchange(this.cells, CLAIM, 0, 1) === 0;
    if (won) {
      Atomics.store(this.cells, FAILED, worker);
      Atomics.store(this.cells, STATE, ABORTED);
    }
    for (const bell of bells) bell.force();
    return won;
  }
}
