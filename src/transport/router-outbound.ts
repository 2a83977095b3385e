// The router's outbound half: frames the local workers wrote into their
// rings to the router leave through the sockets of their target processes.
//
// Frames leave as views of the worker's ring, not copies: the socket
// writes straight from shared memory, and the ring space is given back to
// the worker only once the socket has written the frame (in ring order,
// though frames to different peers may finish out of order).
//
// A process that was lost and comes back expects each sender's frames to
// start at 0 again, while the local workers' counters run on: the router
// subtracts the counter each worker had reached (rebase), in the ring,
// before the frame leaves.
//
// A large batch a worker put in its slab (a DATA frame flagged SLAB, its
// descriptor in the ring) leaves as views of the chunk: one DATA frame, or
// PART frames of at most a ring frame each, their headers made here. The
// chunk goes back to the worker once the socket has written its last byte.
// On the wire those parts take a sequence number each, so the frames after
// them are renumbered on (as the rebase renumbers).

import { Flags, HEADER_BYTES, F_FLAGS, F_KIND, F_LENGTH, F_SEQ, F_TARGET, F_TOTAL, Kind } from './frame.ts';
import type { RingReader } from './ring.ts';
import { readDescriptor, type SlabReader } from './slab.ts';
import { sendTo, type Peer } from './router-peer.ts';

/** A frame handed to a socket straight from a ring: its space returns once written. */
interface InFlight {
  /** The ring's read position just past the frame. */
  end: number;
  written: boolean;
}

export class Outbound {
  /** Per worker ring: frames given to sockets as views of the ring, oldest first. */
  private readonly inFlight: InFlight[][];
  /** Per local worker, per target: the counter after the last frame read for it, and what is subtracted from the worker's counters. */
  private readonly next: Uint32Array[];
  private readonly base: Uint32Array[];

  constructor(
    /** Per local worker: the ring it writes remote frames into. */
    private readonly fromWorkers: RingReader[],
    /** Per process: its peer, undefined for this process. */
    private readonly peers: readonly (Peer | undefined)[],
    private readonly threads: number,
    /** A frame for a worker no connected process hosts: true to drop it (a spare not joined yet), false to stop. */
    private readonly unroutable: (target: number) => boolean,
    /** Largest payload of one frame on the wire. */
    private readonly maxFrame: number,
    /** Per local worker: its slab, where its large batches are (none when slabBytes is 0). */
    private readonly slabs: readonly (SlabReader | undefined)[] = [],
  ) {
    this.inFlight = fromWorkers.map(() => []);
    const workers = this.peers.length * threads;
    this.next = fromWorkers.map(() => new Uint32Array(workers));
    this.base = fromWorkers.map(() => new Uint32Array(workers));
  }

  /**
   * `targets` restarted: frames for them from now on are numbered from 0.
   * Call it once the rings hold no frame for them from before (every
   * worker applied their loss, and the rings were read since).
   */
  rebase(targets: readonly number[]): void {
    this.next.forEach((next, k) => {
      for (const t of targets) this.base[k]![t] = next[t]!;
    });
  }

  /** Moves frames the workers wrote into the sockets of their target processes; returns how many. */
  pump(): number {
    // Corked, the frames of one pass leave as one writev per socket rather
    // than one write(2) each.
    for (const p of this.peers) p?.socket.cork();
    try {
      return this.forward();
    } finally {
      for (const p of this.peers) p?.socket.uncork();
    }
  }

  private forward(): number {
    let moved = 0;
    this.fromWorkers.forEach((reader, k) => {
      const flight = this.inFlight[k]!;
      let at: number;
      while ((at = reader.next()) >= 0) {
        const length = reader.view.getUint32(at + F_LENGTH, true);
        const target = reader.view.getUint32(at + F_TARGET, true);
        const peer = this.peers[Math.floor(target / this.threads)];
        if (peer === undefined && !this.unroutable(target)) return;
        if (peer !== undefined && !peer.gone && peer.blocked) break;
        // Read once: the frame leaves the ring now (sent or dropped).
        const seq = reader.view.getUint32(at + F_SEQ, true);
        this.next[k]![target] = (seq + 1) >>> 0;
        if (this.base[k]![target] !== 0) reader.view.setUint32(at + F_SEQ, (seq - this.base[k]![target]!) >>> 0, true);
        const frame = Buffer.from(reader.bytes.buffer, reader.bytes.byteOffset + at, HEADER_BYTES + length);
        const slab = (reader.view.getUint16(at + F_FLAGS, true) & Flags.SLAB) !== 0 ? this.slabs[k] : undefined;
        const descriptor = slab === undefined ? undefined : readDescriptor(new DataView(frame.buffer, frame.byteOffset + HEADER_BYTES, length), 0);
        if (peer === undefined || peer.gone) {
          // Lost, or not joined: nobody reads it. The space goes back to the worker at once.
          if (descriptor !== undefined) slab!.done(descriptor);
          reader.advance(length);
          flight.push({ end: reader.position, written: true });
          this.giveBack(k);
          continue;
        }
        if (descriptor === undefined) {
          reader.advance(length);
          const entry: InFlight = { end: reader.position, written: false };
          flight.push(entry);
          sendTo(peer, frame, () => {
            entry.written = true;
            this.giveBack(k);
          });
        } else {
          const bytes = slab!.view(descriptor, frame.readUInt32LE(F_TOTAL));
          // Read before the ring's space can go back.
          const head = Buffer.from(frame.subarray(0, HEADER_BYTES));
          reader.advance(length);
          const entry: InFlight = { end: reader.position, written: false };
          flight.push(entry);
          const parts = this.sendChunk(peer, head, bytes, () => {
            slab!.done(descriptor);
            entry.written = true;
            this.giveBack(k);
          });
          this.base[k]![target] = (this.base[k]![target]! - (parts - 1)) >>> 0;
        }
        moved++;
      }
    });
    return moved;
  }

  /**
   * Writes a slab batch as one DATA frame or a run of PARTs (`head`: its
   * header from the ring, seq already as the peer numbers it), each a header
   * of its own and a view of the chunk; `written` runs after the last.
   * Returns the frames it took.
   */
  private sendChunk(peer: Peer, head: Buffer, bytes: Uint8Array, written: () => void): number {
    const total = bytes.length;
    if (total <= this.maxFrame) {
      head.writeUInt32LE(total, F_LENGTH);
      head.writeUInt16LE(0, F_FLAGS);
      sendTo(peer, head);
      sendTo(peer, bytes, written);
      return 1;
    }
    const seq = head.readUInt32LE(F_SEQ);
    let parts = 0;
    for (let at = 0; at < total; at += this.maxFrame) {
      const end = Math.min(at + this.maxFrame, total);
      const h = parts === 0 ? head : Buffer.from(head);
      h.writeUInt32LE(end - at, F_LENGTH);
      h.writeUInt32LE((seq + parts) >>> 0, F_SEQ);
      h.writeUInt8(Kind.PART, F_KIND);
      h.writeUInt16LE(end === total ? Flags.LAST : 0, F_FLAGS);
      sendTo(peer, h);
      sendTo(peer, bytes.subarray(at, end), end === total ? written : undefined);
      parts++;
    }
    return parts;
  }

  private giveBack(k: number): void {
    const flight = this.inFlight[k]!;
    let n = 0;
    while (n < flight.length && flight[n]!.written) n++;
    if (n === 0) return;
    const end = flight[n - 1]!.end;
    flight.splice(0, n);
    this.fromWorkers[k]!.release(end);
  }

  /** Whether some ring holds a frame whose socket can take it now. */
  movable(): boolean {
    return this.fromWorkers.some((reader) => {
      const at = reader.next();
      if (at < 0) return false;
      const peer = this.peers[Math.floor(reader.view.getUint32(at + F_TARGET, true) / this.threads)];
      return peer === undefined || !peer.blocked;
    });
  }
}
