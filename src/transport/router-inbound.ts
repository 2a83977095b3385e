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
//
// A PART run (a batch cut into frames by its sender) of SLAB_MIN_BYTES or
// more is read into one chunk of the router's slab instead of the worker's
// ring: each part's payload straight from the socket to its place in the
// chunk, and the worker gets one DATA frame flagged SLAB with the chunk's
// descriptor, as from a thread of its own process. No ring space is waited
// for, and the worker puts nothing back together. The run's frames count as
// one in the worker's sequence from that source (the router's renumbering,
// like the rebase). A chunk counts against its worker's window once handed
// over; a run still arriving does not (a peer that stops mid-run pins its
// one chunk per source, never the others' reads), and past a window the
// sockets pause until chunks come back. When the slab has no room, the run
// goes through the ring as before. A DATA frame of SLAB_MIN_BYTES or more
// (rings large enough to carry a large batch whole) takes a chunk the same
// way, as a run of one frame.

import { checkContinues, Flags, HEADER_BYTES, Kind, SLAB_DESCRIPTOR_BYTES, writeHeader, type FrameHeader } from './frame.ts';
import type { RingWriter } from './ring.ts';
import { SLAB_MIN_BYTES, writeDescriptor, type Chunk, type SlabWriter } from './slab.ts';
import { ProtocolError } from '../errors.ts';
import { HIGH_WATER } from './router-peer.ts';
import { Fifo } from '../fifo.ts';

interface Waiting {
  header: FrameHeader;
  payload: Uint8Array;
  /** The chunk a run's descriptor names: the router's until the descriptor is in the ring. */
  chunk?: Chunk;
}

/** A PART run being read into a chunk of the router's slab. */
interface Run {
  local: number;
  chunk: Chunk;
  filled: number;
  /** Its first frame's header (seq as the peer numbered it), and the peer's seq of the last part. */
  first: FrameHeader;
  lastSeq: number;
}

/** Names of the frames that may reach a worker, for errors. */
const KIND_NAMES: Partial<Record<Kind, string>> = { [Kind.DATA]: 'DATA', [Kind.CLOSE]: 'CLOSE', [Kind.FIN]: 'FIN' };

/** Per source, the PART run in progress: in a chunk, or through the ring (RING). */
const RING = 'ring';

export class Inbound {
  private readonly waiting: Fifo<Waiting>[];
  /** Bytes of the frames in `waiting`, headers included (a flood of empty frames counts too). */
  private waitingBytes = 0;
  private readonly exited: boolean[];
  private paused = false;
  /** Per local worker, per source: the counter after the last frame placed in its ring, and what is added to the source's counters. */
  private readonly next: Uint32Array[];
  private readonly base: Uint32Array[];
  /** Per local worker: the source of the frame being read off a socket into its ring (open()), or -1. */
  private readonly filling: number[];
  private readonly runs = new Map<number, Run | typeof RING>();
  /** The sockets are paused because some worker holds more than its window of chunks. */
  private chunksPaused = false;

  constructor(
    /** Per local worker: the ring the router writes its remote frames into. */
    private readonly toWorkers: RingWriter[],
    /** Workers in the cluster. */
    peers: number,
    /** Pauses (true) or resumes (false) reading every peer's socket. */
    private readonly pause: (paused: boolean) => void,
    /** The router's slab, which the workers read like a thread's of their own process. */
    private readonly slab?: SlabWriter,
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
    const state = this.runs.get(h.source);
    // Looked at once per frame: a frame this refuses comes again through deliver().
    if (state !== RING && (h.kind === Kind.PART || state !== undefined)) {
      const run = this.runOf(local, h);
      if (run !== undefined) return run.chunk.bytes.subarray(run.filled, run.filled + h.length);
    } else if (state === undefined) {
      const run = this.whole(local, h);
      if (run !== undefined) return run.chunk.bytes;
    }
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
    const run = this.runs.get(h.source);
    if (run !== undefined && run !== RING) return this.partIn(run, h);
    if (run === RING && h.flags & Flags.LAST) this.runs.delete(h.source);
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
    const run = this.runOf(local, h) ?? this.whole(local, h);
    if (run !== undefined) {
      run.chunk.bytes.set(payload, run.filled);
      return this.partIn(run, h);
    }
    if (this.exited[local]) return;
    h.seq = (h.seq + this.base[local]![h.source]!) >>> 0;
    this.enqueue(local, h, payload);
  }

  /**
   * The chunk run `h` belongs to, after checking it continues that run; a
   * PART that starts a run of SLAB_MIN_BYTES or more gets one if the slab
   * has room. Undefined for frames that go through the ring.
   */
  private runOf(local: number, h: FrameHeader): Run | undefined {
    const run = this.runs.get(h.source);
    if (h.kind !== Kind.PART) {
      // Not even a CLOSE or FIN: the run's frames hold sequence numbers the frames after them follow.
      if (run !== undefined) throw new ProtocolError(`${KIND_NAMES[h.kind] ?? `kind ${h.kind}`} frame from worker ${h.source} interrupts a PART run`);
      return undefined;
    }
    if (run === RING) {
      if (h.flags & Flags.LAST) this.runs.delete(h.source);
      return undefined;
    }
    if (run !== undefined) {
      const f = run.first;
      if (h.target !== f.target) throw new ProtocolError(`PART frame from worker ${h.source} does not continue its run to worker ${f.target}`);
      if (h.seq !== ((run.lastSeq + 1) >>> 0)) throw new ProtocolError(`PART frame ${h.seq} from worker ${h.source} arrived where frame ${(run.lastSeq + 1) >>> 0} was expected`);
      checkContinues(f, run.filled, h);
      return run;
    }
    const started = this.start(local, h);
    if (started === undefined && (h.flags & Flags.LAST) === 0) this.runs.set(h.source, RING);
    return started;
  }

  /**
   * A DATA frame of SLAB_MIN_BYTES or more (a large batch on rings big
   * enough to carry it whole) goes into a chunk too, as a run of one
   * frame: not into the ring, where a full ring would queue a copy of it
   * and then copy it again.
   */
  private whole(local: number, h: FrameHeader): Run | undefined {
    return h.kind === Kind.DATA ? this.start(local, h) : undefined;
  }

  /** A chunk run starting with `h`, if the batch is large and the slab has room. */
  private start(local: number, h: FrameHeader): Run | undefined {
    const chunk = this.slab !== undefined && h.total >= SLAB_MIN_BYTES && !this.exited[local] ? this.slab.alloc(h.total, -1) : undefined;
    if (chunk === undefined) return undefined;
    const started: Run = { local, chunk, filled: 0, first: { ...h }, lastSeq: (h.seq - 1) >>> 0 };
    this.runs.set(h.source, started);
    return started;
  }

  /** A part of a chunk run is in (or its one DATA frame); after the last, the worker gets the chunk's descriptor. */
  private partIn(run: Run, h: FrameHeader): void {
    run.filled += h.length;
    run.lastSeq = h.seq;
    if (h.kind === Kind.PART && (h.flags & Flags.LAST) === 0) return;
    const f = run.first;
    this.runs.delete(f.source);
    if (run.filled !== f.total) {
      this.slab!.release(run.chunk);
      throw new ProtocolError(`PART run from worker ${f.source} ended at ${run.filled} of ${f.total} bytes`);
    }
    const local = run.local;
    if (this.exited[local]) {
      this.slab!.release(run.chunk);
      return;
    }
    const base = this.base[local]!;
    const seq = (f.seq + base[f.source]!) >>> 0;
    // The run's frames are one frame to the worker: later ones are numbered on from it.
    base[f.source] = (base[f.source]! - (h.seq - f.seq)) >>> 0;
    this.slab!.assign(run.chunk, local);
    const descriptor = new Uint8Array(SLAB_DESCRIPTOR_BYTES);
    writeDescriptor(new DataView(descriptor.buffer), 0, run.chunk);
    this.enqueue(local, { ...f, seq, kind: Kind.DATA, flags: Flags.SLAB, length: SLAB_DESCRIPTOR_BYTES }, descriptor, run.chunk);
    // Chunks the workers gave back are only counted out again here: past
    // the window once those are taken back, and only then, the sockets pause.
    if (this.slab!.pastTargets > 0 && !this.chunksPaused) {
      this.slab!.returnedPastWindow(true);
      if (this.slab!.pastTargets > 0) {
        this.chunksPaused = true;
        if (!this.paused) this.pause(true);
      }
    }
  }

  /** Into the ring, or behind what waits for it. */
  private enqueue(local: number, h: FrameHeader, payload: Uint8Array, chunk?: Chunk): void {
    const queue = this.waiting[local]!;
    // Behind a frame still being filled in that ring, it waits its turn.
    if (queue.length === 0 && this.filling[local] === -1 && this.place(local, h, payload)) return;
    queue.push({ header: h, payload: payload.slice(), chunk });
    this.waitingBytes += HEADER_BYTES + payload.length;
    if (this.waitingBytes > HIGH_WATER && !this.paused) {
      this.paused = true;
      if (!this.chunksPaused) this.pause(true);
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
      for (const w of queue.extract((w) => from(w.header.source))) {
        this.waitingBytes -= HEADER_BYTES + w.payload.length;
        // A whole run whose descriptor the worker will never see: its chunk would count against the worker's window for good.
        if (w.chunk !== undefined) this.slab!.release(w.chunk);
      }
    }
    this.filling.forEach((source, local) => {
      if (source < 0 || !from(source)) return;
      this.filling[local] = -1;
      this.toWorkers[local]!.unreserve();
    });
    for (const [source, run] of this.runs) {
      if (!from(source)) continue;
      if (run !== RING) this.slab!.release(run.chunk);
      this.runs.delete(source);
    }
  }

  /** Moves queued frames into rings that have room again; returns how many. */
  drain(): number {
    let moved = 0;
    for (let local = 0; local < this.waiting.length; local++) moved += this.drainTo(local);
    if (moved > 0) this.publish();
    if (this.chunksPaused) {
      // Asks the workers to ring again: each ring clears the request.
      this.slab!.returnedPastWindow(true);
      if (this.slab!.pastTargets === 0) {
        this.chunksPaused = false;
        if (!this.paused) this.pause(false);
      }
    }
    if (this.paused && this.waitingBytes < HIGH_WATER / 2) {
      this.paused = false;
      if (!this.chunksPaused) this.pause(false);
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
      this.waitingBytes -= HEADER_BYTES + w.payload.length;
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
    for (const w of this.waiting[local]!.take()) this.waitingBytes -= HEADER_BYTES + w.payload.length;
    // The chunks handed to it are free again. A run still arriving for it
    // keeps its chunk to the run's end (partIn frees it then): a part may be
    // half read into it from the socket right now (open()).
    this.slab?.reclaimTarget(local);
  }
}
