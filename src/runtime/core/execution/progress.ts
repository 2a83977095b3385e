// What a directive reports as it runs: its task counts, the processes its
// backend lost or saw join meanwhile, and its tasks' own reports.

import type { Backend } from '../backend.ts';

/** Task counts of one directive, for progress bars (`progressBar()` draws one). Retries count as new dispatches. */
export interface Progress {
  dispatched: number;
  done: number;
  failed: number;
  /**
   * The tasks `done` reaches if the directive succeeds (its inputs times its
   * operations), once known: from the start when the source is an array,
   * otherwise once the source is exhausted.
   */
  total?: number;
  /**
   * Present on the last call only, made as the directive ends: it returned
   * its outcome, failed (or was aborted), or was stopped (a stream whose
   * consumer left).
   */
  outcome?: 'succeeded' | 'failed' | 'stopped';
  /** Worker processes the backend lost while this directive ran (`Runtime.cluster`; their tasks ran again elsewhere). */
  lostProcesses: readonly number[];
  /** Spare processes that joined while this directive ran (`Runtime.cluster`). */
  joinedProcesses: readonly number[];
  /** Present when a task called `ctx.progress(detail)`: which task, and the detail. */
  task?: TaskProgressDetail;
}

/** A task's own report of its progress (`ctx.progress(detail)`). */
export interface TaskProgressDetail {
  /** The input index of the task. */
  readonly index: number;
  /** Its attempt, 1 for the first. */
  readonly attempt: number;
  readonly detail: unknown;
}

/** The counts of one directive, and the calls of its onProgress. */
export class ProgressReport {
  readonly counts = { dispatched: 0, done: 0, failed: 0 };
  /** How many processes the backend had lost, and had seen join, when this directive started. */
  private readonly membershipAtStart: { lost: number; joined: number };

  constructor(
    private readonly backend: Backend,
    private readonly onProgress: ((progress: Readonly<Progress>) => void) | undefined,
    /** `Progress.total`, or undefined while unknown. */
    private readonly total: () => number | undefined,
  ) {
    const before = backend.stats?.();
    this.membershipAtStart = { lost: before?.lostProcesses.length ?? 0, joined: before?.joinedProcesses.length ?? 0 };
  }

  /** Calls onProgress with the counts, and `task`'s own report when there is one. */
  report(task?: TaskProgressDetail, outcome?: Progress['outcome']): void {
    if (this.onProgress === undefined) return;
    const now = this.backend.stats?.();
    const progress: Progress = {
      ...this.counts,
      lostProcesses: now?.lostProcesses.slice(this.membershipAtStart.lost) ?? [],
      joinedProcesses: now?.joinedProcesses.slice(this.membershipAtStart.joined) ?? [],
    };
    const total = this.total();
    if (total !== undefined) progress.total = total;
    if (task !== undefined) progress.task = task;
    if (outcome !== undefined) progress.outcome = outcome;
    this.onProgress(progress);
  }
}
