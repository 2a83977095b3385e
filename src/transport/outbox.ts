// The sending end of one ring: frames go straight into the ring when it has
// room, and otherwise into an overflow queue on the sender's side, in order.
// `send` never blocks and never drops; the overflow drains on flush. Once
// anything is in overflow, new frames queue behind it, so FIFO holds. The
// overflow of all of a worker's outboxes together is its backlog, with a
// hard cap: past it the backlog fails instead of growing into an
// out-of-memory crash.
//
// A batch of SLAB_MIN_BYTES or more, towards a thread of this process, goes
// into a chunk of the worker's slab (slab.ts) and the ring carries its
// descriptor; while the slab has no room (its chunks are with receivers),
// the batch waits in overflow like a frame waiting for ring space. Any other
// batch larger than one ring frame is cut into PART frames that travel back
// to back; the receiver reassembles them.

import { Fifo } from '../fifo.ts';
import { concat, layOut } from './parts.ts';
import { RingWriter } from './ring.ts';
import { SLAB_MIN_BYTES, writeDescriptor, type Chunk, type SlabWriter } from './slab.ts';
import {
  F_CHANNEL, F_CODEC, F_COUNT, F_FLAGS, F_KIND, F_LENGTH, F_SEQ, F_SOURCE, F_TARGET, F_TOTAL,
  Flags, HEADER_BYTES, Kind, SLAB_DESCRIPTOR_BYTES,
} from './frame.ts';

interface Queued {
  target: number;
  seq: number;
  channel: number;
  kind: Kind;
  codec: number;
  flags: number;
  count: number;
  total: number;
  payload: Uint8Array;
  /**
   * A slab batch: its chunk once it has one (payload is then the
   * descriptor), or undefined while it waits for one (payload is then the
   * batch).
   */
  chunk?: Chunk;
}

/** A worker's overflow across its outboxes, and what to do once it would pass its cap. */
export interface Backlog {
  bytes: number;
  readonly cap: number;
  /** Called instead of queueing a frame that would take `bytes` past `cap`; throws. */
  overflow(channel: number, target: number, frameBytes: number): never;
}

const EMPTY = new Uint8Array(0);
/** put()'s chunk for a slab batch that waits in overflow for its chunk. */
const SLAB_WAITS = {} as Chunk;
/** Publish once this many bytes of frames are written but unannounced (capped at a quarter ring). */
const PUBLISH_BYTES = 1 << 16;
/** Overflow copies from 4 KiB to 4 MiB reuse buffers, a few per power-of-two size. */
const SPARE_MIN = 1 << 12;
const SPARE_MAX = 1 << 22;
const SPARES_PER_SIZE = 4;
/**
 * Smaller copies are cut from shared slabs: a buffer of its own per 1 KiB
 * frame costs about as much again in allocation overhead, so a backlog of
 * small frames would take twice its bytes. Not a power of two, so that
 * recycle() never mistakes a slab for a spare it may hand out again.
 */
const SLAB = 63 << 10;

export class Outbox {
  private readonly queue = new Fifo<Queued>();
  /** Bytes of payload waiting in overflow. */
  overflowBytes = 0;
  sentFrames = 0;
  sentBytes = 0;

  /**
   * @param seqs per-target frame counters shared by every outbox of this
   *   worker, since in a cluster one outbox carries frames for many targets.
   */
  constructor(
    readonly writer: RingWriter,
    private readonly source: number,
    private readonly seqs: Uint32Array,
    private readonly backlog: Backlog,
    /** The worker's slab, when the ring's reader can read it (a thread of this process). */
    readonly chunks?: SlabWriter,
    /**
     * The ring's reader is the router, which passes frames on to other
     * processes and gives each chunk back itself once written (or dropped).
     */
    private readonly relayed = false,
  ) {
    this.publishBytes = Math.min(PUBLISH_BYTES, writer.capacity >>> 2);
  }

  private readonly descriptor = new Uint8Array(SLAB_DESCRIPTOR_BYTES);
  private readonly descriptorView = new DataView(this.descriptor.buffer);

  private readonly publishBytes: number;
  /** Spare overflow buffers by log2 of their size. */
  private readonly spares: (ArrayBuffer[] | undefined)[] = [];
  /** The slab small copies are cut from, and where its free part starts. */
  private slab: Buffer | undefined;
  private slabAt = 0;

  get overflowFrames(): number {
    return this.queue.length;
  }

  /**
   * Sends one batch of `count` messages as one DATA frame or a run of PARTs,
   * or through the slab. A payload in parts is laid end to end: into its
   * chunk directly when it goes through the slab.
   */
  data(target: number, channel: number, codec: number, count: number, given: Uint8Array | Uint8Array[]): void {
    const slab = this.chunks;
    const length = Array.isArray(given) ? given.reduce((n, p) => n + p.length, 0) : given.length;
    if (slab !== undefined && length >= SLAB_MIN_BYTES && slab.fits(length)) {
      const chunk = this.queue.length === 0 || this.drain() ? slab.alloc(length, target) : undefined;
      if (chunk === undefined) {
        // Behind others, or no room in the slab: a copy waits in overflow for a chunk.
        this.put(target, channel, Kind.DATA, codec, Flags.SLAB, count, length, concat(given, length), SLAB_WAITS);
        return;
      }
      layOut(given, chunk.bytes);
      this.sendChunk(chunk, channel, codec, count);
      return;
    }
    const payload = concat(given, length);
    const max = this.writer.maxPayload;
    if (payload.length <= max) {
      this.put(target, channel, Kind.DATA, codec, 0, count, payload.length, payload);
      return;
    }
    for (let at = 0; at < payload.length; at += max) {
      const end = Math.min(at + max, payload.length);
      const flags = end === payload.length ? Flags.LAST : 0;
      this.put(target, channel, Kind.PART, codec, flags, count, payload.length, payload.subarray(at, end));
    }
  }

  /** Sends a filled chunk of this outbox's slab (its target set) as one batch of `count` messages. */
  sendChunk(chunk: Chunk, channel: number, codec: number, count: number): void {
    writeDescriptor(this.descriptorView, 0, chunk);
    this.put(chunk.target, channel, Kind.DATA, codec, Flags.SLAB, count, chunk.length, this.descriptor, chunk);
  }

  control(target: number, channel: number, kind: Kind.CLOSE | Kind.FIN): void {
    this.put(target, channel, kind, 0, 0, 0, 0, EMPTY);
  }

  private put(target: number, channel: number, kind: Kind, codec: number, flags: number, count: number, total: number, payload: Uint8Array, chunk?: Chunk): void {
    const seq = this.seqs[target]!;
    this.seqs[target] = (seq + 1) >>> 0;
    // Overflow first tries to move into the ring, so a sender that keeps
    // sending streams through the ring rather than piling up copies here.
    if (chunk !== SLAB_WAITS && (this.queue.length === 0 || this.drain()) && this.write(target, seq, channel, kind, codec, flags, count, total, payload)) {
      // A slab frame stands for at least SLAB_MIN_BYTES: published as that many bytes of frames would be.
      if (flags === Flags.SLAB || this.writer.unpublished >= this.publishBytes) this.writer.publish();
      return;
    }
    if (this.backlog.bytes + payload.length > this.backlog.cap) {
      if (chunk !== undefined && chunk !== SLAB_WAITS) this.chunks!.release(chunk);
      this.backlog.overflow(channel, target, payload.length);
    }
    // The caller may reuse `payload` (batchers do): overflow keeps its own copy.
    this.queue.push({ target, seq, channel, kind, codec, flags, count, total, payload: this.copyOf(payload), chunk: chunk === SLAB_WAITS ? undefined : chunk });
    this.overflowBytes += payload.length;
    this.backlog.bytes += payload.length;
  }

  private write(target: number, seq: number, channel: number, kind: Kind, codec: number, flags: number, count: number, total: number, payload: Uint8Array): boolean {
    const w = this.writer;
    const at = w.reserve(payload.length);
    if (at < 0) return false;
    const v = w.view;
    v.setUint32(at + F_LENGTH, payload.length, true);
    v.setUint32(at + F_CHANNEL, channel, true);
    v.setUint32(at + F_SOURCE, this.source, true);
    v.setUint32(at + F_TARGET, target, true);
    v.setUint32(at + F_SEQ, seq, true);
    v.setUint8(at + F_KIND, kind);
    v.setUint8(at + F_CODEC, codec);
    v.setUint16(at + F_FLAGS, flags, true);
    v.setUint32(at + F_COUNT, count, true);
    v.setUint32(at + F_TOTAL, total, true);
    if (payload.length > 0) w.bytes.set(payload, at + HEADER_BYTES);
    this.sentFrames++;
    this.sentBytes += payload.length;
    return true;
  }

  /** Moves overflow into the ring while it fits. Returns true when overflow is empty. */
  drain(): boolean {
    const q = this.queue;
    let f: Queued | undefined;
    while ((f = q.peek()) !== undefined) {
      if (f.flags === Flags.SLAB && f.chunk === undefined && !this.chunkFor(f)) {
        this.writer.publish();
        return false;
      }
      if (!this.write(f.target, f.seq, f.channel, f.kind, f.codec, f.flags, f.count, f.total, f.payload)) {
        // Publish what fits before anyone waits for space, or the consumer
        // would never see those frames and never free the space we wait for.
        this.writer.publish();
        return false;
      }
      this.overflowBytes -= f.payload.length;
      this.backlog.bytes -= f.payload.length;
      this.recycle(f.payload);
      q.shift();
    }
    return true;
  }

  /** A queued slab batch at the head of overflow gets its chunk, if the slab has room now. */
  private chunkFor(f: Queued): boolean {
    const chunk = this.chunks!.alloc(f.total, f.target);
    if (chunk === undefined) return false;
    chunk.bytes.set(f.payload);
    this.overflowBytes -= f.payload.length - SLAB_DESCRIPTOR_BYTES;
    this.backlog.bytes -= f.payload.length - SLAB_DESCRIPTOR_BYTES;
    this.recycle(f.payload);
    writeDescriptor(this.descriptorView, 0, chunk);
    f.payload = this.descriptor.slice();
    f.chunk = chunk;
    return true;
  }

  publish(): void {
    this.writer.publish();
  }

  /**
   * Drops overflow bound for `target`, which has finished and will read no
   * more: without this a worker could wait forever, at its own exit, for
   * space in the ring of a worker that is gone.
   */
  discard(target: number): void {
    for (const f of this.queue.extract((f) => f.target === target)) {
      this.overflowBytes -= f.payload.length;
      this.backlog.bytes -= f.payload.length;
      if (f.chunk !== undefined) this.chunks!.release(f.chunk);
    }
    // A thread that returned gives back none of the chunks it holds (those
    // in its ring included). Through the router, the chunks whose
    // descriptors are in the ring are still to be written to a socket: the
    // router gives each back once it has, so none is free before.
    if (!this.relayed) this.chunks?.reclaimTarget(target);
  }

  /**
   * An owned copy of `bytes` for overflow. Not `slice()`: TypedArray#slice
   * copies element by element (about 4 GiB/s here), while set() is a memcpy.
   * Buffers come from per-size-class spares when one is free: fresh memory
   * costs page faults, several times the copy for a 1 MiB batch.
   */
  private copyOf(bytes: Uint8Array): Uint8Array {
    const n = bytes.length;
    if (n === 0) return EMPTY;
    let copy: Uint8Array;
    if (n < SPARE_MIN) {
      // A slab lives while any copy cut from it waits; FIFO overflow frees them in order.
      if (this.slab === undefined || this.slabAt + n > SLAB) {
        this.slab = Buffer.allocUnsafeSlow(SLAB);
        this.slabAt = 0;
      }
      copy = this.slab.subarray(this.slabAt, this.slabAt + n);
      this.slabAt = (this.slabAt + n + 7) & ~7;
    } else if (n > SPARE_MAX) {
      copy = Buffer.allocUnsafeSlow(n);
    } else {
      const k = 32 - Math.clz32(n - 1);
      const spare = this.spares[k]?.pop();
      copy = spare !== undefined ? new Uint8Array(spare, 0, n) : new Uint8Array(Buffer.allocUnsafeSlow(1 << k).buffer as ArrayBuffer, 0, n);
    }
    copy.set(bytes);
    return copy;
  }

  /** An overflow copy is in the ring now: keep its buffer for the next one. */
  private recycle(copy: Uint8Array): void {
    const size = copy.buffer.byteLength;
    if (size < SPARE_MIN || size > SPARE_MAX || (size & (size - 1)) !== 0 || copy.byteOffset !== 0) return;
    const k = 31 - Math.clz32(size);
    const list = (this.spares[k] ??= []);
    if (list.length < SPARES_PER_SIZE) list.push(copy.buffer as ArrayBuffer);
  }

  /** Ask to be woken when the ring frees space for the head of overflow. */
  wantSpace(): boolean {
    const first = this.queue.peek();
    if (first === undefined) return false;
    if (first.flags === Flags.SLAB && first.chunk === undefined) return this.chunks!.wantSpace(first.total);
    return this.writer.wantSpace(first.payload.length);
  }
}
