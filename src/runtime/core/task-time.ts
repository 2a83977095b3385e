// How long one task takes, as the dispatching side sees it: a moving average
// over batches of results, so that batches and queues can be sized in
// milliseconds of work rather than in tasks. Every backend that sizes work
// this way (the channel-protocol Dispatcher, the AMQP publisher) keeps one.

// Until results have been timed, assume tasks take this long.
const INITIAL_TASK_MS = 1;
// Weight of the newest observation: recent enough to follow a change of
// operation within a few batches, smooth enough that one slow batch does not
// halve the next ones.
const WEIGHT = 0.3;
// A batch timed at nothing (results read in one go) must not drive the
// average to zero, which would size the next batch without bound; below this
// every caller's batch is at its upper bound anyway.
const FLOOR_MS = 0.0005;

export class TaskTime {
  /** The current estimate of one task's time, in ms. */
  ms = INITIAL_TASK_MS;

  /** `tasks` tasks took `elapsedMs` in all. */
  observe(elapsedMs: number, tasks: number): void {
    this.ms = (1 - WEIGHT) * this.ms + WEIGHT * Math.max(elapsedMs / tasks, FLOOR_MS);
  }
}
