// Shared state of one run of workers: whether it was aborted and by whom,
// and (in a cluster that continues past peer loss) which peer processes
// were lost and which joined (spares, and lost processes restarted), each
// in the order they were, and how many losses each local worker has
// applied (the router lets a lost process back in only once every worker
// has taken note that it was lost). Fail-stop needs one flag every thread
// can read without a message: a worker spinning on its rings notices an
// abort, or a loss, on its next check, without returning to its event loop.

import { Doorbell } from './doorbell.ts';

const STATE = 0;
const FAILED = 1;
const CLAIM = 2;
/** How many processes were lost; their indices follow from LOST_LIST on. */
const LOST_COUNT = 3;
/** How many processes joined; their indices follow the lost list. */
const JOIN_COUNT = 4;
/** Where the join list starts, how many joins it holds, and where the workers' acknowledgements start. */
const JOIN_LIST = 5;
const JOIN_SLOTS = 6;
const ACKS = 7;
const LOST_LIST = 16;
/** Joins the log holds per process of the cluster: spares once, restarts of lost processes the rest. */
export const JOINS_PER_PROCESS = 8;
const RUNNING = 0;
const ABORTED = 1;

export class Control {
  readonly cells: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.cells = new Int32Array(buffer);
  }

  /**
   * The memory of a run's control cells: for a cluster of `processes`,
   * room for JOINS_PER_PROCESS joins per process and a loss per join and
   * per process, and an acknowledgement cell per local worker (`threads`).
   */
  static buffer(processes = 0, threads = 0): SharedArrayBuffer {
    const joins = JOINS_PER_PROCESS * processes;
    const buffer = new SharedArrayBuffer(4 * (LOST_LIST + 2 * joins + processes + threads));
    const cells = new Int32Array(buffer);
    cells[JOIN_LIST] = LOST_LIST + joins + processes;
    cells[JOIN_SLOTS] = joins;
    cells[ACKS] = cells[JOIN_LIST] + joins;
    return buffer;
  }

  private get joinList(): number {
    return this.cells[JOIN_LIST]!;
  }

  /** Whether the join log has room for another join (a restarted process past it is refused). */
  get joinsLeft(): boolean {
    return this.joinCount < this.cells[JOIN_SLOTS]!;
  }

  /** Local worker `local` has applied the first `count` losses. */
  acknowledgeLosses(local: number, count: number): void {
    Atomics.store(this.cells, this.cells[ACKS]! + local, count);
  }

  /** How many losses local worker `local` has applied. */
  lossesApplied(local: number): number {
    return Atomics.load(this.cells, this.cells[ACKS]! + local);
  }

  /** Processes lost so far. */
  get lostCount(): number {
    return Atomics.load(this.cells, LOST_COUNT);
  }

  /** The processes lost, from the `from`-th loss to the `to`-th. */
  lost(from: number, to: number): number[] {
    const out: number[] = [];
    for (let k = from; k < to; k++) out.push(Atomics.load(this.cells, LOST_LIST + k));
    return out;
  }

  /** Records that peer `process` was lost (one writer: the router) and wakes every doorbell. */
  lose(process: number, bells: Iterable<Doorbell>): void {
    const n = Atomics.load(this.cells, LOST_COUNT);
    // The index is written before the count grows, so whoever reads the count reads it.
    Atomics.store(this.cells, LOST_LIST + n, process);
    Atomics.store(this.cells, LOST_COUNT, n + 1);
    for (const bell of bells) bell.force();
  }

  /** Spare processes joined so far. */
  get joinCount(): number {
    return Atomics.load(this.cells, JOIN_COUNT);
  }

  /** The spares joined, from the `from`-th join to the `to`-th. */
  joined(from: number, to: number): number[] {
    const out: number[] = [];
    for (let k = from; k < to; k++) out.push(Atomics.load(this.cells, this.joinList + k));
    return out;
  }

  /**
   * Records that `process` joined (a spare, or a lost process restarted; one
   * writer: the router, before it reads the process's first frame) and
   * wakes every doorbell.
   */
  join(process: number, bells: Iterable<Doorbell>): void {
    const n = Atomics.load(this.cells, JOIN_COUNT);
    Atomics.store(this.cells, this.joinList + n, process);
    Atomics.store(this.cells, JOIN_COUNT, n + 1);
    for (const bell of bells) bell.force();
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
