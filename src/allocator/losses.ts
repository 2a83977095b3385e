// Peer processes lost in a cluster that continues past them (Config.cluster
// with onPeerLoss 'continue'), as one worker learns of them: the router
// records each loss in the control cells; a worker applies them in
// receive() and hands them to the program through peerLosses().

import type { Control } from '../transport/control.ts';

/** A peer process lost, and its workers. */
export interface PeerLoss {
  process: number;
  workers: number[];
}

export class Losses {
  /** Per worker: its process once that was lost, else -1; a send to it throws. */
  readonly workers: Int32Array;
  /** Losses applied so far. */
  private applied = 0;
  /** Losses applied and not yet returned by take(). */
  private readonly list: PeerLoss[] = [];

  constructor(
    peers: number,
    /** Threads per process: worker w runs in process floor(w / threads). */
    private readonly threads: number,
    private readonly control: Control,
  ) {
    this.workers = new Int32Array(peers).fill(-1);
  }

  /** Losses recorded and not applied yet. */
  get pending(): boolean {
    return this.control.lostCount !== this.applied;
  }

  /** Applies the losses up to the `to`-th (those not applied yet), calling `finish` for each lost worker. */
  apply(to: number, finish: (worker: number) => void): void {
    if (to === this.applied) return;
    for (const process of this.control.lost(this.applied, to)) {
      const workers = Array.from({ length: this.threads }, (_, k) => process * this.threads + k);
      for (const w of workers) {
        this.workers[w] = process;
        finish(w);
      }
      this.list.push({ process, workers });
    }
    this.applied = to;
  }

  /** The losses applied since the last call. */
  take(): PeerLoss[] {
    return this.list.splice(0);
  }
}
