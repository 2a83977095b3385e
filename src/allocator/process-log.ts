// One of the control cells' logs of processes (spares that joined, peers
// lost), as one worker applies it: the router appends a process to the log
// (the control cells are shared by every worker of this process); each
// worker applies what it has not yet, worker by worker, in its own
// receive(), and hands the entries to the program when it asks.

/** A process named by a log entry, and its workers. */
export interface ProcessEntry {
  process: number;
  workers: number[];
}

export class ProcessLog {
  /** Entries applied so far. */
  private applied = 0;
  /** Entries applied and not yet returned by take(). */
  private readonly list: ProcessEntry[] = [];

  constructor(
    /** Threads per process: worker w runs in process floor(w / threads). */
    private readonly threads: number,
    /** How many entries the log holds now. */
    readonly recorded: () => number,
    /** The processes of entries `from` to `to` (excluded). */
    private readonly read: (from: number, to: number) => number[],
    /** What applying an entry does, for each worker of its process. */
    private readonly each: (worker: number, process: number) => void,
  ) {}

  /** Entries recorded and not applied yet. */
  get pending(): boolean {
    return this.recorded() !== this.applied;
  }

  /** Applies the entries up to the `to`-th (default: all recorded), calling `each` for every worker of every process named. */
  apply(to = this.recorded()): void {
    if (to === this.applied) return;
    for (const process of this.read(this.applied, to)) {
      const workers = Array.from({ length: this.threads }, (_, k) => process * this.threads + k);
      for (const w of workers) this.each(w, process);
      this.list.push({ process, workers });
    }
    this.applied = to;
  }

  /** The entries applied since the last call. */
  take(): ProcessEntry[] {
    return this.list.splice(0);
  }
}
