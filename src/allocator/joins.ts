// Spare processes joining a cluster that runs (Config.cluster spares), as
// one worker learns of them. A spare's workers start absent: closed towards
// this worker, and a send to them throws. The router records a join before
// it reads the spare's first frame; a worker applies joins before it takes
// frames (and, for a frame from a worker still absent, before that frame),
// so nothing from a spare arrives ahead of its join.

import type { Control } from '../transport/control.ts';

/** A spare process that joined, and its workers. */
export interface PeerJoin {
  process: number;
  workers: number[];
}

export class Joins {
  /** Per worker: 1 while its process is a spare that has not joined; a send to it throws. */
  readonly absent: Uint8Array;
  /** Joins applied so far. */
  private applied = 0;
  /** Joins applied and not yet returned by take(). */
  private readonly list: PeerJoin[] = [];

  constructor(
    peers: number,
    /** Threads per process: worker w runs in process floor(w / threads). */
    private readonly threads: number,
    /** Spare processes absent at the start (every spare but the worker's own). */
    spares: readonly number[],
    private readonly control: Control,
  ) {
    this.absent = new Uint8Array(peers);
    for (const process of spares) this.absent.fill(1, process * threads, (process + 1) * threads);
  }

  /** Joins recorded and not applied yet. */
  get pending(): boolean {
    return this.control.joinCount !== this.applied;
  }

  /** The workers of `process`. */
  workersOf(process: number): number[] {
    return Array.from({ length: this.threads }, (_, k) => process * this.threads + k);
  }

  /** Applies every join recorded so far, calling `open` for each worker that joined. */
  apply(open: (worker: number) => void): void {
    const to = this.control.joinCount;
    if (to === this.applied) return;
    for (const process of this.control.joined(this.applied, to)) {
      const workers = this.workersOf(process);
      for (const w of workers) {
        this.absent[w] = 0;
        open(w);
      }
      this.list.push({ process, workers });
    }
    this.applied = to;
  }

  /** The joins applied since the last call. */
  take(): PeerJoin[] {
    return this.list.splice(0);
  }
}
