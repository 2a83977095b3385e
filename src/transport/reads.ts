// A socket this process dialled reads into buffers weft gives it (Node's
// `onread` option), not into a fresh buffer per read: Node's default read
// allocates 64 KiB of memory outside the heap each time, and on a link
// that moves hundreds of MiB a second that churn started a full garbage
// collection of the network thread every few tens of MiB. Here a read goes
// either to one buffer reused for the life of the link or, while a frame
// body of at least READ_BYTES is still to come, straight to that body's
// final place (a chunk of the router's slab, space reserved in a worker's
// ring, or the decoder's assembly buffer), so the payload of a large frame
// is not copied in user space at all on its way in.
//
// Node offers `onread` only on sockets it makes itself (net.connect,
// tls.connect without a `socket`), not on those a server accepts: a
// process reads this way on the links it dialled (to the processes below
// it), and through 'data' events on the others.

import type { OnReadOpts, Socket } from 'node:net';

/** Bytes of the link's own read buffer (Node's read size), and the least of a frame body read straight to its place. */
export const READ_BYTES = 64 << 10;

/** Where a link's bytes go once the router has it. */
export interface ReadSink {
  /** Bytes read into the link's own buffer: a view valid only during the call. */
  bytes(chunk: Uint8Array): void;
  /** Where the next read may go straight to (READ_BYTES or more), or undefined. */
  into(): Uint8Array | undefined;
  /** `n` bytes were read into the buffer into() gave. */
  filled(n: number): void;
}

export class SocketReads {
  private readonly own = new Uint8Array(READ_BYTES);
  private sink: ReadSink | undefined;
  /** The socket these reads belong to: until a sink is attached, its bytes are emitted as 'data' (copies, for the handshake). */
  socket: Socket | undefined;

  /**
   * The `onread` option for net.connect or tls.connect. Node asks for the
   * next read's buffer after each read, and hands that same buffer to the
   * callback with the bytes read into it.
   */
  readonly onread: OnReadOpts = {
    buffer: (): Uint8Array => this.sink?.into() ?? this.own,
    callback: (n: number, buffer: Uint8Array): boolean => {
      const sink = this.sink;
      if (sink === undefined) this.socket?.emit('data', Buffer.from(buffer.subarray(0, n)));
      else if (buffer === this.own) sink.bytes(buffer.subarray(0, n));
      else sink.filled(n);
      // Never paused from here: the router pauses the socket itself.
      return true;
    },
  };

  /** From now on the socket's bytes go to `sink` (the router's), read where it says. */
  attach(sink: ReadSink): void {
    this.sink = sink;
  }
}
