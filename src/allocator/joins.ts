// Spare processes joining a cluster that runs (Config.cluster spares), as
// one worker learns of them. A spare's workers start absent: closed towards
// this worker, and a send to them throws. The router records a join before
// it reads the spare's first frame; a worker applies joins before it takes
// frames (and, for a frame from a worker still absent, before that frame),
// so nothing from a spare arrives ahead of its join.

import type { Control } from '../transport/index.ts';
import { ProcessLog } from './process-log.ts';

/** A spare process that joined, and its workers. */
export interface PeerJoin {
  process: number;
  workers: number[];
}

export class Joins {
  /** Per worker: 1 while its process is a spare that has not joined; a send to it throws. */
  readonly absent: Uint8Array;
  private readonly log: ProcessLog;

  constructor(
    peers: number,
    threads: number,
    /** Spare processes absent at the start (every spare but the worker's own). */
    spares: readonly number[],
    control: Control,
    /** Called for each worker that joined, as its join is applied. */
    open: (worker: number) => void,
  ) {
    this.absent = new Uint8Array(peers);
    for (const process of spares) this.absent.fill(1, process * threads, (process + 1) * threads);
    const absent = this.absent;
    this.log = new ProcessLog(threads, () => control.joinCount, (from, to) => control.joined(from, to), (worker) => {
      absent[worker] = 0;
      open(worker);
    });
  }

  /** Joins recorded and not applied yet. */
  get pending(): boolean {
    return this.log.pending;
  }

  /** Applies every join recorded so far. */
  apply(): void {
    this.log.apply();
  }

  /** The joins applied since the last call. */
  take(): PeerJoin[] {
    return this.log.take();
  }
}
