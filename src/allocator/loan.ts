// A loan: memory a sender fills in place and sends as one message of a
// typed-array channel, with no copy. Towards a thread of the same process
// it is a chunk of the sender's slab (the receiver reads the very bytes the
// sender wrote); elsewhere (itself, another process, a slab too small) it
// is memory of its own whose bytes travel as a sent message's would.

import { ChannelError } from '../errors.ts';

export interface Loan {
  /** The bytes to fill. Reading it after `send()` or `cancel()` throws: the memory is no longer the sender's. */
  readonly bytes: Uint8Array;
  /**
   * Sends the bytes as one message, delivered on flush like `send`'s. Returns
   * false once the pusher's backlog is over the high-water mark, as `send`
   * does. A loan is sent once.
   */
  send(): boolean;
  /** Gives the memory back unsent (a loan that is never sent holds its chunk until then). */
  cancel(): void;
}

export class PushLoan implements Loan {
  #bytes: Uint8Array | undefined;
  #spent = '';

  constructor(
    private readonly channel: number,
    bytes: Uint8Array,
    /** Sends the bytes; returns what send() returns. */
    private readonly deliver: () => boolean,
    /** Gives the memory back. */
    private readonly giveBack: () => void,
  ) {
    this.#bytes = bytes;
  }

  get bytes(): Uint8Array {
    if (this.#bytes === undefined) throw new ChannelError(this.channel, `a loan's bytes were read after it was ${this.#spent}: the memory is the receiver's (or free) now`);
    return this.#bytes;
  }

  send(): boolean {
    this.spend('sent');
    return this.deliver();
  }

  cancel(): void {
    this.spend('cancelled');
    this.giveBack();
  }

  private spend(how: string): void {
    if (this.#bytes === undefined) throw new ChannelError(this.channel, `a loan was ${how} after it was ${this.#spent}`);
    this.#bytes = undefined;
    this.#spent = how;
  }
}
