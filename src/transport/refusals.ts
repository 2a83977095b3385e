// Refused connections, reported without flooding the log: the first refusal
// of an interval is logged at once (a misconfigured peer is seen without
// delay), the others are counted and summarised in one line when the
// interval ends (count and the last reason), so a port scan or a stranger
// reconnecting in a loop costs at most two lines per interval.

export const REFUSAL_LOG_INTERVAL_MS = 10_000;

export class RefusalLog {
  private timer: NodeJS.Timeout | undefined;
  private count = 0;
  private last = '';

  constructor(
    private readonly prefix: string,
    private readonly log: (line: string) => void,
    private readonly intervalMs = REFUSAL_LOG_INTERVAL_MS,
  ) {}

  refused(from: string, reason: string): void {
    if (this.timer === undefined) {
      this.log(`${this.prefix} refused a connection from ${from}: ${reason}`);
      this.timer = setTimeout(() => this.flush(), this.intervalMs);
      this.timer.unref();
      return;
    }
    this.count++;
    this.last = `${from}: ${reason}`;
  }

  /** Logs the summary of the interval so far (at its end, or when the listener closes). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.count === 0) return;
    this.log(`${this.prefix} refused ${this.count} more connection${this.count === 1 ? '' : 's'}; the last from ${this.last}`);
    this.count = 0;
  }
}
