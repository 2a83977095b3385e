// The receiving end of one ring: walks published frames, checks each header
// against what this worker knows (target, source, sequence), reassembles
// PART runs, resolves slab descriptors to the sender's chunks (giving each
// back once the sink is done with it), and hands whole batches to a sink. A ring is written by weft's
// own threads, but a header is still checked before its length is trusted:
// a bug must surface as a ProtocolError naming the frame, never as garbage.

import { RingReader, maxPayload } from './ring.ts';
import { readDescriptor, type Descriptor, type SlabReader } from './slab.ts';
import {
  checkContinues,
  F_CHANNEL, F_CODEC, F_COUNT, F_FLAGS, F_KIND, F_LENGTH, F_SEQ, F_SOURCE, F_TARGET, F_TOTAL,
  Flags, HEADER_BYTES, Kind, validateHeader, type FrameHeader,
} from './frame.ts';
import { ProtocolError } from '../errors.ts';

export interface FrameSink {
  /**
   * A whole batch. Unless `owned` (a reassembled PART run, in memory of its
   * own), `payload` views the ring or a chunk of the sender's slab. Returns
   * true if the sink keeps that view (a borrowing codec): the ring (or the
   * chunk) then keeps those bytes until the next drain() instead of handing
   * them back to the producer.
   */
  batch(source: number, channel: number, codec: number, count: number, payload: Uint8Array, owned: boolean): boolean;
  close(source: number, channel: number): void;
  finish(source: number): void;
  /**
   * Whether to take the next batch for `channel` now. A receiver that holds
   * enough of that channel's messages unread says no: the frame then waits
   * in the ring, and its producer, finding the ring full, feels the
   * pressure instead of this worker's heap growing.
   */
  accepts(channel: number): boolean;
}

interface Partial {
  channel: number;
  codec: number;
  count: number;
  bytes: Uint8Array;
  filled: number;
}

export class Inbox {
  /** Next expected sequence number per source. */
  private readonly expected: Uint32Array;
  private readonly partial = new Map<number, Partial>();
  private readonly limits: { peers: number; maxFrame: number; maxBatch: number; slab: boolean };
  /** Slab chunks the sink kept views of: given back at the next drain(). */
  private readonly lent: Descriptor[] = [];
  receivedFrames = 0;
  /** Chunk bytes given back since the writer was last woken. */
  private given = 0;
  /**
   * The last drain() stopped at a frame its sink would not take yet. Until
   * the next drain(), this ring's published frames are not news: waking
   * for them would spin.
   */
  stalled = false;
  /** Reused for every frame: drain() allocates nothing per frame but the payload view. */
  private readonly header: FrameHeader = { length: 0, channel: 0, source: 0, target: 0, seq: 0, kind: Kind.DATA, codec: 0, flags: 0, count: 0, total: 0 };

  constructor(
    readonly reader: RingReader,
    private readonly target: number,
    peers: number,
    maxBatch: number,
    /** The writer's slab, on a ring between threads of one process. */
    private readonly slab?: SlabReader,
  ) {
    this.expected = new Uint32Array(peers);
    this.limits = { peers, maxFrame: maxPayload(reader.capacity), maxBatch, slab: slab !== undefined };
  }

  /** Borrowed views of this ring and of the writer's slab expire: their bytes go back to the writer. */
  returnLent(): void {
    this.expireLent();
    this.wakeWriter();
  }

  /** returnLent without the closing wake: drain() wakes the writer once, at its end, for these and its own. */
  private expireLent(): void {
    this.reader.release();
    const lent = this.lent;
    for (let i = 0; i < lent.length; i++) this.giveBack(lent[i]!);
    lent.length = 0;
  }

  /**
   * Gives a chunk back to the writer, waking it (if it waits for one) only
   * once a ring's worth of chunk bytes went back since it was last woken;
   * drain() wakes it for the rest when it ends. A writer waiting for its
   * window (ring.md, "Window") then wakes once per pass or per ring's
   * worth, not once per message.
   */
  private giveBack(d: Descriptor): void {
    this.slab!.giveBack(d);
    this.given += d.length;
    if (this.given >= this.reader.capacity) this.wakeWriter();
  }

  private wakeWriter(): void {
    if (this.given === 0) return;
    this.given = 0;
    this.slab!.wakeOwner();
  }

  /**
   * Dispatches published frames to `sink`; returns the number of frames. One
   * call reads at most a ring's worth, so a producer that keeps writing cannot
   * hold the receiver here, and gives space back every quarter ring, so that
   * producer need not wait for the end of the call.
   */
  drain(sink: FrameSink): number {
    const r = this.reader;
    const v = r.view;
    const h = this.header;
    const quarter = r.capacity >>> 2;
    // Views lent during the previous drain expire now.
    this.expireLent();
    // Where the first frame lent this drain starts. Positions are int32
    // counters that turn negative after 2 GiB, so "none yet" is a flag of
    // its own, never a negative position (it was: once the counters went
    // negative, lent frames were given back and overwritten).
    let lending = false;
    let held = 0;
    let budget = r.capacity;
    let frames = 0;
    let at: number;
    this.stalled = false;
    try {
      while (budget > 0 && (at = r.next()) >= 0) {
        const start = r.position;
        // A producer never starts a frame where its header and payload would
        // cross the end of the ring; only a corrupted length upstream lands
        // the reader there. Refuse before reading past the end.
        if (at > r.capacity - HEADER_BYTES) throw new ProtocolError(`frame header at ring offset ${at} would cross the end of the ring: a previous frame's length was corrupted`);
        h.length = v.getUint32(at + F_LENGTH, true);
        h.channel = v.getUint32(at + F_CHANNEL, true);
        h.source = v.getUint32(at + F_SOURCE, true);
        h.target = v.getUint32(at + F_TARGET, true);
        h.seq = v.getUint32(at + F_SEQ, true);
        h.kind = v.getUint8(at + F_KIND);
        h.codec = v.getUint8(at + F_CODEC);
        h.flags = v.getUint16(at + F_FLAGS, true);
        h.count = v.getUint32(at + F_COUNT, true);
        h.total = v.getUint32(at + F_TOTAL, true);
        // Asked before check(), which counts the frame as seen. A PART run
        // already begun is always taken to its end.
        if ((h.kind === Kind.DATA || (h.kind === Kind.PART && !this.partial.has(h.source))) && !sink.accepts(h.channel)) {
          this.stalled = true;
          break;
        }
        this.check(h);
        if (at + HEADER_BYTES + h.length > r.capacity) throw new ProtocolError(`frame of ${h.length} bytes at ring offset ${at} would cross the end of the ring`);
        const payload = r.bytes.subarray(at + HEADER_BYTES, at + HEADER_BYTES + h.length);
        if (this.dispatch(h, payload, sink) && !lending) {
          lending = true;
          held = start;
        }
        r.advance(h.length);
        budget -= HEADER_BYTES + h.length;
        frames++;
        // The sink has copied (decoded) the payload, so its bytes may go back,
        // up to the first frame whose bytes were lent.
        if (!lending && r.unreleased >= quarter) r.release();
      }
      if (frames > 0) {
        r.release(lending ? held : r.position);
        this.receivedFrames += frames;
      }
    } finally {
      // Chunks given back this pass that did not reach a ring's worth.
      this.wakeWriter();
    }
    return frames;
  }

  private check(h: FrameHeader): void {
    validateHeader(h, this.limits);
    if (h.target !== this.target) throw new ProtocolError(`frame for worker ${h.target} arrived at worker ${this.target}`);
    const want = this.expected[h.source]!;
    if (h.seq !== want) {
      throw new ProtocolError(`frame ${h.seq} from worker ${h.source} arrived where frame ${want} was expected: a frame was lost or reordered`);
    }
    this.expected[h.source] = (want + 1) >>> 0;
  }

  /** Returns true if the sink kept a view of the ring. */
  private dispatch(h: FrameHeader, payload: Uint8Array, sink: FrameSink): boolean {
    switch (h.kind) {
      case Kind.DATA:
        if (this.partial.has(h.source)) throw new ProtocolError(`DATA frame from worker ${h.source} interrupts a PART run`);
        if (h.flags & Flags.SLAB) {
          this.chunk(h, payload, sink);
          return false;
        }
        return sink.batch(h.source, h.channel, h.codec, h.count, payload, false);
      case Kind.PART:
        this.part(h, payload, sink);
        return false;
      case Kind.CLOSE:
        sink.close(h.source, h.channel);
        return false;
      case Kind.FIN:
        sink.finish(h.source);
        return false;
      default:
        throw new ProtocolError(`frame kind ${h.kind} does not travel on rings`);
    }
  }

  /** A batch in a chunk of the writer's slab: given back at once, unless the sink keeps a view. */
  private chunk(h: FrameHeader, payload: Uint8Array, sink: FrameSink): void {
    const d = readDescriptor(new DataView(payload.buffer, payload.byteOffset, payload.length), 0);
    const bytes = this.slab!.view(d, h.total);
    let kept = false;
    try {
      kept = sink.batch(h.source, h.channel, h.codec, h.count, bytes, false);
    } finally {
      if (kept) this.lent.push(d);
      else this.giveBack(d);
    }
  }

  private part(h: FrameHeader, payload: Uint8Array, sink: FrameSink): void {
    let p = this.partial.get(h.source);
    if (p === undefined) {
      // Not zero-filled: every byte is written before the run is delivered.
      const bytes = Buffer.allocUnsafeSlow(h.total);
      p = { channel: h.channel, codec: h.codec, count: h.count, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, h.total), filled: 0 };
      this.partial.set(h.source, p);
    }
    checkContinues({ channel: p.channel, codec: p.codec, count: p.count, total: p.bytes.length }, p.filled, h);
    p.bytes.set(payload, p.filled);
    p.filled += payload.length;
    if ((h.flags & Flags.LAST) === 0) return;
    this.partial.delete(h.source);
    if (p.filled !== p.bytes.length) {
      throw new ProtocolError(`PART run from worker ${h.source} ended at ${p.filled} of ${p.bytes.length} bytes`);
    }
    sink.batch(h.source, p.channel, p.codec, p.count, p.bytes, true);
  }
}
