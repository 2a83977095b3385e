// Peer processes lost in a cluster that continues past them (Config.cluster
// with onPeerLoss 'continue'), as one worker learns of them: the router
// records each loss in the control cells; a worker applies them in
// receive() and hands them to the program through peerLosses().

import type { Control } from '../transport/index.ts';
import { ProcessLog } from './process-log.ts';

/** A peer process lost, and its workers. */
export interface PeerLoss {
  process: number;
  workers: number[];
}

export class Losses {
  /** Per worker: its process once that was lost, else -1; a send to it throws. */
  readonly workers: Int32Array;
  private readonly log: ProcessLog;

  constructor(
    peers: number,
    threads: number,
    control: Control,
    /** Called for each lost worker, as its loss is applied. */
    finish: (worker: number) => void,
  ) {
    const workers = (this.workers = new Int32Array(peers).fill(-1));
    this.log = new ProcessLog(threads, () => control.lostCount, (from, to) => control.lost(from, to), (worker, process) => {
      workers[worker] = process;
      finish(worker);
    });
  }

  /** Losses recorded and not applied yet. */
  get pending(): boolean {
    return this.log.pending;
  }

  /** Applies the losses up to the `to`-th (those not applied yet). */
  apply(to: number): void {
    this.log.apply(to);
  }

  /** The losses applied since the last call. */
  take(): PeerLoss[] {
    return this.log.take();
  }
}
