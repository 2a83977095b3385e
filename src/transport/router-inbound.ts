// The router's inbound half: frames from peer processes go into the rings
// of the local workers they name. When a worker's ring is full, frames wait
// in a per-worker queue; past HIGH_WATER queued bytes the sockets pause, and
// TCP pushes back on the senders, so the router's memory stays bounded.

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

  constructor(
    /** Per local worker: the ring the router writes its remote frames into. */
    private readonly toWorkers: RingWriter[],
    /** Pauses (true) or resumes (false) reading every peer's socket. */
    private readonly pause: (paused: boolean) => void,
  ) {
    this.exited = toWorkers.map(() => false);
    this.waiting = toWorkers.map(() => new Fifo<Waiting>());
  }

  /** A frame for local worker `local`: into its ring, or its queue while the ring is full. */
  deliver(local: number, h: FrameHeader, payload: Uint8Array): void {
    // A worker that has returned reads nothing more; its frames are dropped
    // here rather than left to fill its ring and stall the socket.
    if (this.exited[local]) return;
    const queue = this.waiting[local]!;
    if (queue.length === 0 && this.place(local, h, payload)) return;
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
    return true;
  }

  /** Makes what was placed in the rings visible to the workers. */
  publish(): void {
    for (const ring of this.toWorkers) ring.publish();
  }

  /** Drops the queued frames whose source `from` says to drop (a lost process's). */
  drop(from: (source: number) => boolean): void {
    for (const queue of this.waiting) {
      for (const w of queue.extract((w) => from(w.header.source))) this.waitingBytes -= w.payload.length;
    }
  }

  /** Moves queued frames into rings that have room again; returns how many. */
  drain(): number {
    let moved = 0;
    this.waiting.forEach((queue, local) => {
      let w: Waiting | undefined;
      while ((w = queue.peek()) !== undefined && (this.exited[local] || this.place(local, w.header, w.payload))) {
        this.waitingBytes -= w.payload.length;
        queue.shift();
        moved++;
      }
    });
    if (moved > 0) this.publish();
    if (this.paused && this.waitingBytes < HIGH_WATER / 2) {
      this.paused = false;
      this.pause(false);
    }
    return moved;
  }

  /** A local worker has ended: frames for it are dropped from now on. */
  workerExited(local: number): void {
    this.exited[local] = true;
    for (const w of this.waiting[local]!.take()) this.waitingBytes -= w.payload.length;
  }
}
