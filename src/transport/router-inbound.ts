// The router's inbound half: frames from peer processes go into the rings
// of the local workers they name. When a worker's ring is full, frames wait
// in a per-worker queue; past HIGH_WATER queued bytes the sockets pause, and
// TCP pushes back on the senders, so the router's memory stays bounded.
//
// A process that was lost and comes back starts its frame counters at 0,
// while each local worker's inbox expects the next number after the last
// frame of the old process it was given: the router adds that number to
// the new process's counters (rebase), so a worker's stream from a source
// stays one sequence across the restart.

import { HEADER_BYTES, writeHeader, type FrameHeader } from './frame.ts';
import type { RingWriter } from './ring.ts';
import { HIGH_WATER } from './router-peer.ts';
import { Fifo } from '../fifo.ts';

interface Waiting {
  header: FrameHeader;
  payload: Uint8Array;
}

export class Inbound {
  private readonly waiting: Fifo<Waiting>[];
  private waitingBytes = 0;
  private readonly exited: boolean[];
  private paused = false;
  /** Per local worker, per source: the counter after the last frame placed in its ring, and what is added to the source's counters. */
  private readonly next: Uint32Array[];
  private readonly base: Uint32Array[];
  /** Per local worker: the source of the frame being read off a socket into its ring (open()), or -1. */
  private readonly filling: number[];

  constructor(
    /** Per local worker: the ring the router writes its remote frames into. */
    private readonly toWorkers: RingWriter[],
    /** Workers in the cluster. */
    peers: number,
    /** Pauses (true) or resumes (false) reading every peer's socket. */
    private readonly pause: (paused: boolean) => void,
  ) {
    this.exited = toWorkers.map(() => false);
    this.waiting = toWorkers.map(() => new Fifo<Waiting>());
    this.next = toWorkers.map(() => new Uint32Array(peers));
    this.base = toWorkers.map(() => new Uint32Array(peers));
    this.filling = toWorkers.map(() => -1);
  }

  /**
   * Room in local worker `local`'s ring for a frame whose payload is still
   * on its way from the socket: its header is written and the payload view
   * returned, to be filled in place and then complete()d. Undefined where
   * deliver() would not place it at once (frames wait for that ring, or it
   * has no room): the frame then comes whole through deliver().
   */
  open(local: number, h: FrameHeader): Uint8Array | undefined {
    if (this.exited[local] || this.filling[local] !== -1 || this.waiting[local]!.length > 0) return undefined;
    const ring = this.toWorkers[local]!;
    const at = ring.reserveHeld(h.length);
    if (at < 0) return undefined;
    h.seq = (h.seq + this.base[local]![h.source]!) >>> 0;
    writeHeader(ring.view, at, h);
    this.filling[local] = h.source;
    return ring.bytes.subarray(at + HEADER_BYTES, at + HEADER_BYTES + h.length);
  }

  /** The frame open() gave room for is whole (`h` is the header open() was given). */
  complete(local: number, h: FrameHeader): void {
    this.filling[local] = -1;
    this.toWorkers[local]!.settle();
    this.next[local]![h.source] = (h.seq + 1) >>> 0;
    // Frames from other peers queued behind it while it filled: their turn now.
    this.drainTo(local);
  }

  /** `sources` restarted: their frames from now on continue the sequences their old frames left. */
  rebase(sources: readonly number[]): void {
    this.next.forEach((next, local) => {
      for (const s of sources) this.base[local]![s] = next[s]!;
    });
  }

  /** A frame for local worker `local`: into its ring, or its queue while the ring is full. */
  deliver(local: number, h: FrameHeader, payload: Uint8Array): void {
    // A worker that has returned reads nothing more; its frames are dropped
    // here rather than left to fill its ring and stall the socket.
    if (this.exited[local]) return;
    h.seq = (h.seq + this.base[local]![h.source]!) >>> 0;
    const queue = this.waiting[local]!;
    // Behind a frame still being filled in that ring, it waits its turn.
    if (queue.length === 0 && this.filling[local] === -1 && this.place(local, h, payload)) return;
    queue.push({ header: h, payload: payload.slice() });
    this.waitingBytes += payload.length;
    if (this.waitingBytes > HIGH_WATER && !this.paused) {
      this.paused = true;
      this.pause(true);
    }
  }

  private place(local: number, h: FrameHeader, payload: Uint8Array): boolean {
    const ring = this.toWorkers[local]!;
    const at = ring.reserve(h.length);
    if (at < 0) {
      ring.wantSpace(h.length);
      return false;
    }
    writeHeader(ring.view, at, h);
    if (h.length > 0) ring.bytes.set(payload, at + HEADER_BYTES);
    this.next[local]![h.source] = (h.seq + 1) >>> 0;
    return true;
  }

  /** Makes what was placed in the rings visible to the workers. */
  publish(): void {
    for (const ring of this.toWorkers) ring.publish();
  }

  /** Drops the queued frames whose source `from` says to drop (a lost process's), and the frames of theirs half read into a ring. */
  drop(from: (source: number) => boolean): void {
    for (const queue of this.waiting) {
      for (const w of queue.extract((w) => from(w.header.source))) this.waitingBytes -= w.payload.length;
    }
    this.filling.forEach((source, local) => {
      if (source < 0 || !from(source)) return;
      this.filling[local] = -1;
      this.toWorkers[local]!.unreserve();
    });
  }

  /** Moves queued frames into rings that have room again; returns how many. */
  drain(): number {
    let moved = 0;
    for (let local = 0; local < this.waiting.length; local++) moved += this.drainTo(local);
    if (moved > 0) this.publish();
    if (this.paused && this.waitingBytes < HIGH_WATER / 2) {
      this.paused = false;
      this.pause(false);
    }
    return moved;
  }

  /** Moves what waits for `local`'s ring into it while it fits (none while a frame is being filled there). */
  private drainTo(local: number): number {
    if (this.filling[local] !== -1) return 0;
    const queue = this.waiting[local]!;
    let moved = 0;
    let w: Waiting | undefined;
    while ((w = queue.peek()) !== undefined && (this.exited[local] || this.place(local, w.header, w.payload))) {
      this.waitingBytes -= w.payload.length;
      queue.shift();
      moved++;
    }
    return moved;
  }

  hasExited(local: number): boolean {
    return this.exited[local]!;
  }

  /** A local worker has ended: frames for it are dropped from now on. */
  workerExited(local: number): void {
    this.exited[local] = true;
    for (const w of this.waiting[local]!.take()) this.waitingBytes -= w.payload.length;
  }
}
