// Peer processes lost in a cluster that continues past them (Config.cluster
// with onPeerLoss 'continue'), as one worker learns of them: the router
// records each loss in the control cells; a worker applies them in
// receive() and hands them to the program through peerLosses().

import type { Control } from '../transport/control.ts';
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

  constructor(peers: number, threads: number, control: Control) {
    this.workers = new Int32Array(peers).fill(-1);
    this.log = new ProcessLog(threads, () => control.lostCount, (from, to) => control.lost(from, to));
  }

  /** Losses recorded and not applied yet. */
  get pending(): boolean {
    return this.log.pending;
  }

  /** Applies the losses up to the `to`-th (those not applied yet), calling `finish` for each lost worker. */
  apply(to: number, finish: (worker: number) => void): void {
    // Every receive() asks: the common answer costs no closure.
    if (this.log.has(to)) return;
    this.log.apply(to, (worker, process) => {
      this.workers[worker] = process;
      finish(worker);
    });
  }

  /** The losses applied since the last call. */
  take(): PeerLoss[] {
    return this.log.take();
  }
}
