// A single-producer single-consumer ring of variable-length frames on a
// SharedArrayBuffer. Layout (docs/ring.md has the picture):
//
//   bytes 0..63     WRITE   producer's published write position
//   bytes 64..127   READ    consumer's published read position
//   bytes 128..191  WANT    1 while the producer waits for space
//   bytes 256..     data    `capacity` bytes, a power of two
//
// Positions are byte counters that only grow (mod 2^32); `pos & mask` is the
// offset in data. Because capacity <= 2^30, `(write - read) | 0` is the number
// of bytes in use even after the counters wrap. WRITE and READ sit on
// separate cache lines so producer and consumer do not false-share.
//
// Every frame is contiguous: when a frame does not fit before the end of data,
// the producer writes a WRAP marker (length 0xFFFFFFFF) and starts the frame at
// offset 0. Frames are 8-aligned, so at least 8 bytes always remain for it.
//
// The producer writes frames with plain stores and publishes WRITE with an
// Atomics.store. That store is the release: a consumer that Atomics.loads the
// new WRITE sees every byte written before it. The producer publishes in
// batches (on flush, and every PUBLISH_BYTES of frames while it keeps
// writing, so a long burst streams instead of arriving all at once), and
// always before it waits for space, so a consumer is never starved by frames
// the producer has written but not yet announced. The consumer likewise gives
// space back every quarter ring while it reads a long run of frames.

import { Doorbell } from './doorbell.ts';
import { HEADER_BYTES, frameBytes } from './frame.ts';
import { ConfigError } from '../errors.ts';

const WRITE = 0;
const READ = 16;
const WANT = 32;
const CONTROL_BYTES = 256;
const WRAP = 0xffffffff;

export const MIN_RING_BYTES = 1 << 12;
export const MAX_RING_BYTES = 1 << 30;

/** The largest frame payload a ring of `capacity` bytes carries. */
export function maxPayload(capacity: number): number {
  return (capacity >>> 1) - HEADER_BYTES;
}

/** The one check of a ring's size (Config's ringBytes): a ConfigError unless a power of two in range. */
export function checkRingBytes(ringBytes: number): void {
  if (!Number.isInteger(ringBytes) || ringBytes < MIN_RING_BYTES || ringBytes > MAX_RING_BYTES || (ringBytes & (ringBytes - 1)) !== 0) {
    throw new ConfigError(`ringBytes must be a power of two from ${MIN_RING_BYTES} to ${MAX_RING_BYTES}, got ${ringBytes}`);
  }
}

export function createRingBuffer(capacity: number): SharedArrayBuffer {
  checkRingBytes(capacity);
  return new SharedArrayBuffer(CONTROL_BYTES + capacity);
}

class RingView {
  readonly control: Int32Array;
  /** Data area views; payloads are 8-aligned within them. */
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly capacity: number;
  readonly mask: number;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.control = new Int32Array(buffer, 0, CONTROL_BYTES >> 2);
    this.capacity = buffer.byteLength - CONTROL_BYTES;
    this.mask = this.capacity - 1;
    this.bytes = new Uint8Array(buffer, CONTROL_BYTES, this.capacity);
    this.view = new DataView(buffer, CONTROL_BYTES, this.capacity);
  }
}

export class RingWriter extends RingView {
  /** Local write position: frames up to here are written, maybe not published. */
  private write: number;
  private published: number;
  /** Last READ seen; refreshed only when the cached value says the ring is full. */
  private read: number;

  constructor(buffer: SharedArrayBuffer, private readonly consumer: Doorbell) {
    super(buffer);
    this.write = this.published = Atomics.load(this.control, WRITE);
    this.read = Atomics.load(this.control, READ);
  }

  /**
   * The largest payload of one frame: half the ring, so a 1 MiB message
   * travels whole through a 4 MiB ring while the consumer still reads the
   * frame before it. Larger batches travel as PART runs.
   */
  get maxPayload(): number {
    return maxPayload(this.capacity);
  }

  /**
   * Reserves room for a frame with `length` payload bytes and returns the data
   * offset of its header, or -1 when the ring has no room now. The frame
   * becomes visible at the next publish().
   */
  reserve(length: number): number {
    const size = frameBytes(length);
    let at = this.write & this.mask;
    const tail = this.capacity - at;
    const need = tail < size ? tail + size : size;
    if (!this.fits(need)) return -1;
    if (tail < size) {
      this.view.setUint32(at, WRAP, true);
      this.write = (this.write + tail) | 0;
      at = 0;
    }
    this.write = (this.write + size) | 0;
    return at;
  }

  private fits(need: number): boolean {
    if (this.capacity - ((this.write - this.read) | 0) >= need) return true;
    this.read = Atomics.load(this.control, READ);
    return this.capacity - ((this.write - this.read) | 0) >= need;
  }

  /** Make written frames visible and wake the consumer if it sleeps. */
  publish(): void {
    // A frame still being filled (hold) and what follows it stay unpublished.
    const upTo = this.holding ? this.heldFrom : this.write;
    if (upTo === this.published) return;
    this.published = upTo;
    Atomics.store(this.control, WRITE, upTo);
    this.consumer.ring();
  }

  /** Where the held frame starts (its wrap marker included); meaningful while `holding`. */
  private heldFrom = 0;
  private holding = false;

  /**
   * reserve(), for a frame whose payload is written later, piece by piece
   * (the router reads it off a socket straight into the ring): publish()
   * stops before it until settle(), and unreserve() takes it back. One
   * frame is held at a time; nothing else is reserved meanwhile.
   */
  reserveHeld(length: number): number {
    const from = this.write;
    const at = this.reserve(length);
    if (at >= 0) {
      this.heldFrom = from;
      this.holding = true;
    }
    return at;
  }

  /** The held frame is whole: publish() may show it. */
  settle(): void {
    this.holding = false;
  }

  /** The held frame will never be whole (its sender was lost): its space is free again. */
  unreserve(): void {
    if (!this.holding) return;
    this.write = this.heldFrom;
    this.holding = false;
  }

  /**
   * Ask the consumer to ring our doorbell when it frees space. Returns true if
   * space for `length` appeared meanwhile (then do not park).
   */
  wantSpace(length: number): boolean {
    Atomics.store(this.control, WANT, 1);
    const size = frameBytes(length);
    const at = this.write & this.mask;
    const tail = this.capacity - at;
    return this.fits(tail < size ? tail + size : size);
  }

  get pending(): boolean {
    return this.write !== this.published;
  }

  /** Bytes of frames written but not yet published. */
  get unpublished(): number {
    return (this.write - this.published) | 0;
  }
}

export class RingReader extends RingView {
  private read: number;
  private released: number;
  /** Last WRITE seen. */
  private write: number;

  constructor(buffer: SharedArrayBuffer, private readonly producer: Doorbell) {
    super(buffer);
    this.read = this.released = Atomics.load(this.control, READ);
    this.write = Atomics.load(this.control, WRITE);
  }

  /** True if a published frame is waiting (reloads WRITE). */
  poll(): boolean {
    if (this.read !== this.write) return true;
    this.write = Atomics.load(this.control, WRITE);
    return this.read !== this.write;
  }

  /**
   * Data offset of the next frame's header, or -1 if none is published. The
   * frame stays valid until advance(); its bytes are not overwritten until
   * release().
   */
  next(): number {
    if (this.read === this.write) {
      this.write = Atomics.load(this.control, WRITE);
      if (this.read === this.write) return -1;
    }
    let at = this.read & this.mask;
    if (this.view.getUint32(at, true) === WRAP) {
      this.read = (this.read + (this.capacity - at)) | 0;
      at = 0;
    }
    return at;
  }

  /** Consume the frame at the current position, whose payload was `length` bytes. */
  advance(length: number): void {
    this.read = (this.read + frameBytes(length)) | 0;
  }

  /** Bytes consumed (advanced over) but not yet given back by release(). */
  get unreleased(): number {
    return (this.read - this.released) | 0;
  }

  /** The read position: where the frame next() returned starts (after any wrap). */
  get position(): number {
    return this.read;
  }

  /**
   * Give consumed space back to the producer, up to `upTo` (a position
   * between the last release and the read position; default all of it),
   * waking the producer if it waits for space.
   */
  release(upTo = this.read): void {
    if (upTo === this.released) return;
    this.released = upTo;
    Atomics.store(this.control, READ, upTo);
    if (Atomics.load(this.control, WANT) !== 0) {
      Atomics.store(this.control, WANT, 0);
      this.producer.force();
    }
  }
}
