// How an AMQP worker ends: once, by close(), by one of the signals it was
// told to close on, or on its own when its threads fail for good; and what
// closeOnSignals' caller learns of it (resolved, or rejected with that
// failure).

export class WorkerLifetime {
  /** Set once the worker begins to close: it takes no new work from then on. */
  closing = false;
  /** Settles once closed: rejected with the failure if the worker stopped on its own. */
  private readonly ended: Promise<void>;
  private endWith!: (failure: Error | undefined) => void;
  private readonly signals: NodeJS.Signals[] = [];
  private readonly onSignal = () => void this.stop(undefined);

  /** `shutdown` closes the worker's resources; it runs once. */
  constructor(private readonly shutdown: () => Promise<void>) {
    this.ended = new Promise((resolve, reject) => (this.endWith = (failure) => (failure === undefined ? resolve() : reject(failure))));
    // Only closeOnSignals hands it out: a worker nobody waits on must not end the process with an unhandled rejection.
    this.ended.catch(() => {});
  }

  /** See AmqpWorker.closeOnSignals. */
  closeOnSignals(signals: readonly NodeJS.Signals[]): Promise<void> {
    if (!this.closing) {
      this.signals.push(...signals);
      this.listen(true);
    }
    return this.ended;
  }

  /** Closes once, failed if `failure` is given; a second call resolves when the first is done. */
  async stop(failure: Error | undefined): Promise<void> {
    if (this.closing) return this.ended.catch(() => {});
    this.closing = true;
    this.listen(false);
    try {
      await this.shutdown();
    } finally {
      this.endWith(failure);
    }
  }

  private listen(on: boolean): void {
    for (const signal of this.signals) {
      if (on) process.once(signal, this.onSignal);
      else process.off(signal, this.onSignal);
    }
  }
}
