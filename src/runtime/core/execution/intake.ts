// Pulling a directive's inputs lazily, within its window. A sync source is
// drained in batches as large as the window allows; an async source yields
// one item per await, so the items ready within one turn of the event loop
// leave as one batch, up to ASYNC_BATCH, and a source that stalls has what
// it gave sent at the end of the turn.

import type { Task } from '../task.ts';

const ASYNC_BATCH = 256;

/** The directive the intake feeds. */
export interface IntakeHost {
  /** The directive has ended: pull nothing more. */
  readonly settled: boolean;
  /** The window has room for one more item. */
  hasRoom(): boolean;
  /** Counts `input` in and adds its first task, if it needs one, to `batch`. */
  admit(input: unknown, batch: Task[]): void;
  send(tasks: Task[]): void;
  /** Called when pulling stops for now; the directive may be complete. */
  finishIfDone(): void;
  fail(error: unknown): void;
}

export class Intake {
  private readonly iterator: Iterator<unknown> | AsyncIterator<unknown>;
  private readonly sync: boolean;
  /** Items of an async source admitted this turn, not yet dispatched. */
  private unbatched: Task[] = [];
  private pulling = false;
  /** The source has no more items. */
  done = false;

  constructor(
    source: Iterable<unknown> | AsyncIterable<unknown>,
    private readonly host: IntakeHost,
  ) {
    this.sync = Symbol.iterator in source;
    this.iterator = this.sync
      ? (source as Iterable<unknown>)[Symbol.iterator]()
      : (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  }

  /** Pulls inputs while the window has room. Re-entered calls return: the running loop re-checks the window. */
  pull(): void {
    if (this.sync) this.pullSync();
    else void this.pullAsync();
  }

  /**
   * Lets the source release what it holds (files, cursors); its own errors
   * on the way out must not hide the directive's.
   */
  close(): void {
    try {
      void Promise.resolve(this.iterator.return?.()).catch(() => {});
    } catch {
      // a synchronous throw from return() is equally irrelevant
    }
  }

  private pullSync(): void {
    if (this.pulling) return;
    this.pulling = true;
    const host = this.host;
    try {
      const iterator = this.iterator as Iterator<unknown>;
      while (!host.settled && !this.done && host.hasRoom()) {
        const batch: Task[] = [];
        while (host.hasRoom()) {
          const next = iterator.next();
          if (next.done) {
            this.done = true;
            break;
          }
          host.admit(next.value, batch);
        }
        host.send(batch);
      }
      host.finishIfDone();
    } catch (error) {
      host.fail(error);
    } finally {
      this.pulling = false;
    }
  }

  private async pullAsync(): Promise<void> {
    if (this.pulling) return;
    this.pulling = true;
    const host = this.host;
    try {
      while (!host.settled && !this.done && host.hasRoom()) {
        const next = await (this.iterator as AsyncIterator<unknown>).next();
        if (host.settled) return;
        if (next.done) {
          this.done = true;
          this.sendUnbatched();
        } else {
          host.admit(next.value, this.unbatched);
          if (this.unbatched.length >= ASYNC_BATCH) this.sendUnbatched();
          else if (this.unbatched.length === 1) setImmediate(() => this.sendUnbatched());
        }
      }
      host.finishIfDone();
    } catch (error) {
      host.fail(error);
    } finally {
      this.pulling = false;
    }
  }

  private sendUnbatched(): void {
    const tasks = this.unbatched;
    this.unbatched = [];
    this.host.send(tasks);
  }
}
