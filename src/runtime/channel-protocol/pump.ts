// The coordinator's receive loop, for the thread backend's host and the
// cluster backend's gateway alike: while there is reason to, receive and
// handle what arrived; park when nothing did, so an idle coordinator costs
// no CPU; and while results keep coming, which would never park, yield to
// the event loop every YIELD_MS so timers, aborts, async sources and the
// orchestrator's messages get their turn.

import type { Allocator } from '../../allocator/index.ts';

const YIELD_MS = 2;

export class Pump {
  private running = false;

  /**
   * `round` handles what `receive` moved into the channels and says whether
   * anything arrived. The loop parks at most `parkMs` at a time: the bound
   * on how long a missed wake-up, or a reason to stop that comes as an event
   * rather than a frame, waits to be noticed.
   */
  constructor(
    private readonly allocator: Allocator,
    private readonly parkMs: number,
    private readonly going: () => boolean,
    private readonly round: () => boolean,
  ) {}

  /**
   * Runs rounds while `going()`. A call while the loop runs returns at once:
   * the loop re-checks `going` before it ends, and it stops being the
   * running one in that same turn, so work given to it afterwards starts it
   * again. Rejects with what `round` or the allocator threw.
   */
  async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      let yieldedAt = performance.now();
      while (this.going()) {
        this.allocator.receive();
        if (!this.round()) {
          await this.allocator.awaitEventsAsync(this.parkMs);
          yieldedAt = performance.now();
        } else if (performance.now() - yieldedAt > YIELD_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          yieldedAt = performance.now();
        }
      }
    } finally {
      this.running = false;
    }
  }
}
