// How long a worker spins on its rings before it parks.
//
// Before parking, a worker spins on its rings for up to SPIN_MAX_US: a peer
// that answers within that is seen without the ~30 us of Atomics.wait and
// notify. The budget is time, not a count of checks, because it must cover
// a parked peer's wake-up: when both ends spin for less than that, each
// finds the other parked, and a ping-pong settles at two wake-ups per round
// trip. It adapts: halved each time spinning found nothing (the peer was
// slow, or not even scheduled: on a machine with more busy threads than
// cores, a spinning thread takes the core its peer needs), doubled each time
// it found the event. Every PROBE_EVERY-th wait spins the full budget
// whatever the history, so two ends that both backed off find their way
// back to spinning once the peer is quick again.

const SPIN_MAX_US = 100;
const SPIN_MIN_US = 2;
const PROBE_EVERY = 8;

export class SpinPolicy {
  /** The adaptive budget in microseconds, used when no fixed limit is set. */
  private budgetUs = SPIN_MAX_US;
  private waits = 0;

  /**
   * Checks `ready` until it holds (true) or the budget is spent (false):
   * `limit` checks when given (0: none), else the adaptive time budget.
   */
  spin(limit: number | undefined, ready: () => boolean): boolean {
    if (limit !== undefined) {
      for (let i = 0; i < limit; i++) if (ready()) return true;
      return false;
    }
    const budget = ++this.waits % PROBE_EVERY === 0 ? SPIN_MAX_US : this.budgetUs;
    const deadline = performance.now() + budget / 1000;
    // The clock is read once per 64 checks: a check costs tens of nanoseconds.
    for (let i = 1; ; i++) {
      if (ready()) {
        this.budgetUs = Math.min(SPIN_MAX_US, Math.max(budget, this.budgetUs * 2));
        return true;
      }
      if ((i & 63) === 0 && performance.now() >= deadline) break;
    }
    this.budgetUs = Math.max(SPIN_MIN_US, this.budgetUs / 2);
    return false;
  }
}
