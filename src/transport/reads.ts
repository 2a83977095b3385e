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
  /**
   * The socket these reads belong to. Until a sink is attached its bytes
   * are pushed to it as a stream's are (copies, for the handshake), so
   * bytes that come before anyone listens wait in the stream as they would
   * without `onread` (over TLS the peer's first bytes can be read in the
   * same turn as the handshake's end, before the handshake's reader exists).
   */
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
      if (sink === undefined) this.socket?.push(Buffer.from(buffer.subarray(0, n)));
      else if (buffer === this.own) sink.bytes(buffer.subarray(0, n));
      else sink.filled(n);
      // Never paused from here: the router pauses the socket itself.
      return true;
    },
  };

  /**
   * From now on the socket's bytes go to `sink` (the router's), read where
   * it says; first (in a microtask, after any queued before this call)
   * whatever the stream still holds of what was pushed before.
   */
  attach(sink: ReadSink): void {
    this.sink = sink;
    const socket = this.socket;
    if (socket === undefined || socket.readableLength === 0) return;
    queueMicrotask(() => {
      for (let held: Buffer | null; (held = socket.read() as Buffer | null) !== null;) sink.bytes(held);
    });
  }
}
