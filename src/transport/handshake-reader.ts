// Reads exactly what the handshake needs from a socket, with a bound on
// what a peer may send ahead, and hands the socket back with what was read
// past the handshake (the peer's first frames).

import type { Socket } from 'node:net';
import { isTlsRefusal } from './tls.ts';
import { HandshakeError } from '../errors.ts';

/** Bytes a peer may send ahead of the handshake's end (its first frames). */
const MAX_READ_AHEAD = 1 << 20;

/** Reads exactly what the handshake needs from a socket, with a deadline. */
export class Reader {
  private buffered: Buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private ended: Error | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    // A handshake is a few dozen bytes, and a peer may send its first frames
    // right after it; a stranger that floods before we answered is not
    // buffered without bound.
    if (this.buffered.length > MAX_READ_AHEAD) {
      this.ended ??= new HandshakeError(`the peer sent ${this.buffered.length} bytes before the handshake completed`, true);
      this.socket.pause();
    }
    this.wake?.();
  };
  private readonly onEnd = (): void => {
    this.ended ??= new HandshakeError('the peer closed the connection during the handshake', false);
    this.wake?.();
  };
  private readonly onError = (e: Error): void => {
    this.ended ??= new HandshakeError(`socket error during the handshake: ${e.message}`, isTlsRefusal(e), { cause: e });
    this.wake?.();
  };

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  async take(n: number): Promise<Buffer> {
    while (this.buffered.length < n) {
      if (this.ended) throw this.ended;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** Stops reading (later bytes wait in the socket for the next owner) and returns what was read ahead. */
  detach(): Buffer {
    this.socket.pause();
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    return this.buffered;
  }
}
