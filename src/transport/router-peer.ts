// A peer process as the router sees it: its socket, its frame decoder, and
// what the heartbeat and backpressure need to know of it.

import type { Socket } from 'node:net';
import type { FrameDecoder } from './decoder.ts';
import { HEADER_BYTES, writeHeader, type Kind } from './frame.ts';
import type { LinkCounters } from './link-counters.ts';

/** Bytes past which a socket's write buffer, or the router's inbound queue, pushes back. */
export const HIGH_WATER = 8 << 20;

export interface Peer {
  index: number;
  socket: Socket;
  decoder: FrameDecoder;
  lastHeard: number;
  lastSent: number;
  goodbye: boolean;
  /** Lost, and dropped (onLoss): nothing more is read from or written to it. */
  gone: boolean;
  /** Its socket's write buffer is over HIGH_WATER: frames for it wait in the rings until 'drain'. */
  blocked: boolean;
  /** The link's counters (link-counters.ts), shared with the workers. */
  counters: LinkCounters;
  /** The last round-trip probe (a HEARTBEAT with this seq), and when it left; -1 once answered. */
  probeSeq: number;
  probeAt: number;
}

/** Writes `bytes` to the peer's socket; `written` runs once the socket has written them. */
export function sendTo(peer: Peer, bytes: Uint8Array, written?: () => void): void {
  if (peer.gone) return;
  peer.lastSent = Date.now();
  peer.counters.sent(peer.index, bytes.length);
  if (!peer.socket.write(bytes, written) && peer.socket.writableLength > HIGH_WATER) peer.blocked = true;
}

/**
 * A frame of the router's own (heartbeat, goodbye, abort) to the peer. A
 * HEARTBEAT with a `seq` is a round-trip probe (count 0) or its answer
 * (count 1); a peer that knows nothing of probes ignores both fields.
 */
export function sendControl(peer: Peer, kind: Kind, payload: Uint8Array = new Uint8Array(0), seq = 0, count = 0): void {
  const b = Buffer.alloc(HEADER_BYTES + payload.length);
  writeHeader(new DataView(b.buffer, b.byteOffset, b.length), 0, {
    length: payload.length, channel: 0, source: 0, target: 0, seq, kind, codec: 0, flags: 0, count, total: 0,
  });
  b.set(payload, HEADER_BYTES);
  sendTo(peer, b);
}
