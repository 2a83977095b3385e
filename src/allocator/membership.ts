// Which processes of a cluster are in the run, as one worker learns it:
// peers lost in a cluster that continues past them (onPeerLoss
// 'continue') and spares joining one that runs (Config.cluster spares).
// The router appends each to a log in the control cells (shared by every
// worker of this process); each worker applies what it has not yet, in its
// own receive(), and hands the entries to the program when it asks. A
// spare's workers start absent: closed towards this worker, and a send to
// them throws, as a send to a lost process's workers does.
//
// Order is the contract: the router records a join before it reads the
// spare's first frame, and puts a lost process's last whole frames in the
// rings before it records the loss. So a worker applies joins before it
// takes frames (and, for a frame from a worker still absent, before that
// frame), and losses after (see Endpoint.receive).

import type { Control } from '../transport/index.ts';
import { PeerError } from '../errors.ts';

/** A peer process lost, and its workers. */
export interface PeerLoss {
  process: number;
  workers: number[];
}

/** A spare process that joined, and its workers. */
export interface PeerJoin {
  process: number;
  workers: number[];
}

/** What a worker does as an entry is applied, for each worker of the process named. */
export interface MembershipEvents {
  /** `worker`'s process was lost: its channels close. */
  lost(worker: number): void;
  /** `worker`'s process joined (a spare, or a lost one back): its messages are expected from now on. */
  joined(worker: number): void;
}

export class Membership {
  /** Per worker: 1 while its process is absent (a spare not joined, or lost); a frame from one applies the joins first. */
  readonly absent: Uint8Array;
  /** Per worker: its process once that was lost, else -1. */
  readonly #lost: Int32Array;
  readonly #threads: number;
  readonly #losses: Log;
  readonly #joins: Log;

  constructor(
    peers: number,
    /** Threads per process: worker w runs in process floor(w / threads). */
    threads: number,
    /** Spare processes absent at the start (every spare but the worker's own). */
    spares: readonly number[],
    control: Control,
    events: MembershipEvents,
  ) {
    this.#threads = threads;
    const absent = (this.absent = new Uint8Array(peers));
    for (const process of spares) absent.fill(1, process * threads, (process + 1) * threads);
    const lost = (this.#lost = new Int32Array(peers).fill(-1));
    this.#losses = new Log(threads, () => control.lostCount, (from, to) => control.lost(from, to), (worker, process) => {
      lost[worker] = process;
      // Absent only after: the worker's last frames close its channels, and
      // no join is applied on their way (a process back after its loss joins later).
      events.lost(worker);
      absent[worker] = 1;
    });
    this.#joins = new Log(threads, () => control.joinCount, (from, to) => control.joined(from, to), (worker) => {
      lost[worker] = -1;
      absent[worker] = 0;
      events.joined(worker);
    });
  }

  /** Entries recorded and not applied yet: a parked worker wakes for them. */
  get pending(): boolean {
    return this.#losses.pending || this.#joins.pending;
  }

  /** Applies every join recorded so far. */
  applyJoins(): void {
    this.#joins.apply();
  }

  /** Applies the losses up to the `to`-th (those not applied yet). */
  applyLosses(to: number): void {
    this.#losses.apply(to);
  }

  /** The losses applied since the last call. */
  losses(): PeerLoss[] {
    return this.#losses.take();
  }

  /** The joins applied since the last call. */
  joins(): PeerJoin[] {
    return this.#joins.take();
  }

  /** Whether `worker`'s process is there: not a spare that has not joined, not lost. */
  present(worker: number): boolean {
    return this.absent[worker] === 0;
  }

  /** Throws a PeerError where a send to `worker` cannot go: its process was lost, or is a spare not joined. */
  checkReach(worker: number, channel: number): void {
    if (this.absent[worker] === 0) return;
    const process = this.#lost[worker]!;
    if (process >= 0) {
      throw new PeerError(process, `send to worker ${worker} on channel ${channel}: its process ${process} was lost (it died, went silent or closed its connections without a goodbye) and has not been restarted`);
    }
    const spare = Math.floor(worker / this.#threads);
    throw new PeerError(spare, `send to worker ${worker} on channel ${channel}: its process ${spare} is a spare that has not joined (allocator.peerJoins() tells when it does)`);
  }
}

/** One of the control cells' logs of processes, as one worker applies it. */
class Log {
  /** Entries applied so far. */
  #applied = 0;
  /** Entries applied and not yet returned by take(). */
  readonly #list: { process: number; workers: number[] }[] = [];

  constructor(
    readonly threads: number,
    /** How many entries the log holds now. */
    readonly recorded: () => number,
    /** The processes of entries `from` to `to` (excluded). */
    readonly read: (from: number, to: number) => number[],
    /** What applying an entry does, for each worker of its process. */
    readonly each: (worker: number, process: number) => void,
  ) {}

  get pending(): boolean {
    return this.recorded() !== this.#applied;
  }

  /** Applies the entries up to the `to`-th (default: all recorded). */
  apply(to = this.recorded()): void {
    if (to === this.#applied) return;
    for (const process of this.read(this.#applied, to)) {
      const workers = Array.from({ length: this.threads }, (_, k) => process * this.threads + k);
      for (const w of workers) this.each(w, process);
      this.#list.push({ process, workers });
    }
    this.#applied = to;
  }

  take(): { process: number; workers: number[] }[] {
    return this.#list.splice(0);
  }
}
