// Large batches between threads of one process travel outside the rings: the
// sender copies (or fills, through a loan) a chunk of its slab, and the ring
// carries a 16-byte descriptor of it. docs/ring.md has the picture.
//
// A slab is one growable SharedArrayBuffer per sending worker, handed to its
// readers at start-up (workerData), so no chunk ever needs a message of its
// own. Only its owner allocates in it, so the allocator is plain local
// state; the one thing shared is, per chunk slot, its generation (GEN,
// bumped by the owner each time the slot is handed out) and the generation
// its receiver gave back (DONE). A descriptor names slot and generation; a
// receiver that finds GEN moved on refuses the descriptor rather than read
// bytes that belong to another message now.
//
//   bytes 0..63          WANT  1 while the owner waits for a chunk to come back
//   bytes 64..64+8*SLOTS GEN, DONE per slot (i32 each)
//   bytes DATA..         chunks, 4 KiB aligned; the buffer grows (up to
//                        DATA + slabBytes) as the owner needs more
//
// Returning is a Dekker pair like the ring's READ/WANT: the receiver stores
// DONE, then loads WANT; the owner stores WANT = 1, then re-reads DONE. Either
// the owner sees the chunk back, or the receiver sees WANT and rings.

import { Doorbell } from './doorbell.ts';
import { SLAB_DESCRIPTOR_BYTES } from './frame.ts';
import { ProtocolError } from '../errors.ts';

const WANT = 0;
const SLOTS = 4096;
const TABLE = 16;
const DATA = (TABLE * 4 + 8 * SLOTS + 4095) & ~4095;
const PAGE = 4096;
/** Grow by at least this much: each grow is a system call. */
const GROW_STEP = 4 << 20;

/** Batches of at least this many bytes go through the slab (smaller ones are cheaper in the ring). */
export const SLAB_MIN_BYTES = 64 << 10;
/** Bytes of a descriptor in a DATA frame flagged SLAB. */
export const DESCRIPTOR_BYTES = SLAB_DESCRIPTOR_BYTES;
/** The largest slabBytes: descriptors carry 32-bit offsets. */
export const MAX_SLAB_BYTES = 2 ** 32 - DATA - PAGE;

/** Where a batch lies in its sender's slab. */
export interface Descriptor {
  slot: number;
  generation: number;
  /** From the start of the slab's data area. */
  offset: number;
  length: number;
}

export function writeDescriptor(view: DataView, at: number, d: Descriptor): void {
  view.setUint32(at, d.slot, true);
  view.setUint32(at + 4, d.generation, true);
  view.setUint32(at + 8, d.offset, true);
  view.setUint32(at + 12, d.length, true);
}

export function readDescriptor(view: DataView, at: number): Descriptor {
  return { slot: view.getUint32(at, true), generation: view.getUint32(at + 4, true), offset: view.getUint32(at + 8, true), length: view.getUint32(at + 12, true) };
}

/** A worker's slab, holding up to `slabBytes` of chunks; undefined when 0 (no slab). */
export function createSlab(slabBytes: number): SharedArrayBuffer | undefined {
  if (slabBytes === 0) return undefined;
  // Growable: only what was grown into is mapped, and only what was written is resident.
  return new SharedArrayBuffer(DATA, { maxByteLength: DATA + slabBytes });
}

/** A chunk handed out by the owner and not yet back. */
export interface Chunk extends Descriptor {
  /** The worker it was sent to (-1 while loaned and not sent). */
  target: number;
  /** What it counts for against its target's window, while sent and not back (SlabWriter.assign). */
  counted: number;
  /** The chunk's bytes: length bytes at offset. */
  bytes: Uint8Array;
}

/** The bytes a chunk of `length` takes: whole pages, at least one. */
function chunkSize(length: number): number {
  return Math.ceil(Math.max(length, 1) / PAGE) * PAGE;
}

interface Extent {
  at: number;
  size: number;
}

/** The owner's side: hands chunks out and takes them back. */
export class SlabWriter {
  private readonly cells: Int32Array;
  /** Free space below `top`, by offset, neighbours merged. */
  private free: Extent[] = [];
  private top = 0;
  /**
   * Slots that came back, reused first; then `unused` and up, never handed
   * out. Counted rather than listed: filling a list of 4096 cost each worker
   * about a millisecond of its start-up.
   */
  private readonly spareSlots: number[] = [];
  private unused = 0;
  private readonly out = new Map<number, Chunk>();
  /** Bytes a waiting loan wants, for poll(); 0 when none waits. */
  wanted = 0;
  /** Per target: bytes of chunks sent to it and not back yet, as far as the last reclaim() knows. */
  private readonly sent: number[] = [];
  /** Per target: the chunk in flight to it that counts for at most the window (assign); undefined when none is in flight. */
  private readonly capped: (Chunk | undefined)[] = [];
  /**
   * Per target: its chunks in the order they were sent, from `heads[target]`
   * on. Chunks that came back leave only when they reach the head, so the
   * cap passes on without a scan of every chunk out (recap).
   */
  private readonly sentOrder: Chunk[][] = [];
  private readonly heads: number[] = [];
  /**
   * Targets whose sent bytes are past the window. Read by a pusher on every
   * send: while it is 0 (the usual case) its backlog is its overflow alone,
   * with no call here.
   */
  pastTargets = 0;

  constructor(
    readonly buffer: SharedArrayBuffer,
    /**
     * Bytes a target may have in flight before the rest counts as backlog
     * (pastWindow): a ring's worth, as if the chunks were in its ring. It
     * keeps a sender that waits on ready() a few messages ahead, in memory
     * that stays warm, instead of a whole slab ahead in memory touched once.
     */
    private readonly window: number,
  ) {
    this.cells = new Int32Array(buffer, 0, TABLE + 2 * SLOTS);
  }

  private get slotsLeft(): boolean {
    return this.spareSlots.length > 0 || this.unused < SLOTS;
  }

  /** Bytes the slab may grow to hold (slabBytes). */
  private get capacity(): number {
    return this.buffer.maxByteLength - DATA;
  }

  /**
   * Whether a batch of `length` bytes can ever have a chunk here. A chunk
   * takes whole pages, so with a slabBytes that is not a multiple of 4 KiB
   * a batch up to slabBytes long may still not fit: compared with
   * slabBytes alone, such a batch waited in overflow for a chunk no return
   * could ever make, and its sender and receiver hung.
   */
  fits(length: number): boolean {
    return chunkSize(length) <= this.capacity;
  }

  /** Chunks handed out and not back yet (for tests and stats). */
  get outstanding(): number {
    return this.out.size;
  }

  /**
   * A chunk of `length` bytes for `target`, or undefined while the slab has
   * no room (chunks are still with their receivers). Reuses the lowest free
   * space first: it was touched before, and fresh memory costs page faults.
   */
  alloc(length: number, target: number): Chunk | undefined {
    const size = chunkSize(length);
    if (size > this.capacity) return undefined;
    // Chunks that came back are reused before the slab grows into fresh memory.
    let at = this.slotsLeft ? this.fit(size) : -1;
    if (at < 0) {
      this.reclaim();
      if (!this.slotsLeft) return undefined;
      at = this.fit(size);
      if (at < 0) at = this.grow(size);
      if (at < 0) return undefined;
    }
    const slot = this.spareSlots.pop() ?? this.unused++;
    const generation = (this.cells[TABLE + 2 * slot]! + 1) | 0 || 1;
    Atomics.store(this.cells, TABLE + 2 * slot, generation);
    const chunk: Chunk = { slot, generation, offset: at, length, target: -1, counted: 0, bytes: new Uint8Array(this.buffer, DATA + at, length) };
    this.out.set(slot, chunk);
    if (target >= 0) this.assign(chunk, target);
    return chunk;
  }

  /**
   * A loaned chunk is sent to `target`. It counts against the target's
   * window for its length, but the first chunk in flight to a target for
   * at most a window's worth. Counted whole, one message larger than the
   * window put its sender past it at once, so a sender waiting on ready()
   * filled the next message only once the receiver had copied the last:
   * the two threads took turns instead of working at once. Only the first
   * is capped: a receiver that stops holds that one chunk, and past it no
   * more than the window (counted bytes), as a ring would.
   */
  assign(chunk: Chunk, target: number): void {
    chunk.target = target;
    chunk.counted = chunk.length;
    this.count(target, chunk.length);
    const order = (this.sentOrder[target] ??= []);
    order.push(chunk);
    // Chunks back behind a head that stays out (its receiver holds it) are
    // dropped here, so the list stays within twice the chunks out.
    if (order.length - (this.heads[target] ??= 0) > 2 * this.out.size + 8) this.compact(target);
    if (this.capped[target] === undefined) this.cap(chunk);
  }

  /** `chunk` counts for at most the window from now on. */
  private cap(chunk: Chunk): void {
    this.capped[chunk.target] = chunk;
    const counted = Math.min(chunk.length, this.window);
    this.count(chunk.target, counted - chunk.counted);
    chunk.counted = counted;
  }

  /**
   * The cap passes to the oldest chunk still in flight to `target`, or the
   * two threads would take turns again while that one is out.
   */
  private recap(target: number): void {
    this.capped[target] = undefined;
    const order = this.sentOrder[target]!;
    let head = this.heads[target]!;
    while (head < order.length && !this.isOut(order[head]!)) head++;
    this.heads[target] = head;
    // The list is cut once its dead head is as long as the rest, so each
    // chunk is moved at most once on average.
    if (head === order.length || (head >= 32 && 2 * head >= order.length)) this.compact(target);
    const next = this.sentOrder[target]![this.heads[target]!];
    if (next !== undefined) this.cap(next);
  }

  /** `target`'s send order keeps only its chunks still out, from index 0. */
  private compact(target: number): void {
    const head = this.heads[target]!;
    this.sentOrder[target] = this.sentOrder[target]!.filter((chunk, i) => i >= head && this.isOut(chunk));
    this.heads[target] = 0;
  }

  private isOut(chunk: Chunk): boolean {
    return this.out.get(chunk.slot) === chunk;
  }

  private count(target: number, bytes: number): void {
    const before = this.sent[target] ?? 0;
    const after = before + bytes;
    this.sent[target] = after;
    if (before > this.window !== after > this.window) this.pastTargets += after > this.window ? 1 : -1;
  }

  /**
   * Bytes sent to `target` and not back (each chunk as assign() counts
   * it), past the window: the part of the slab a pusher counts as its
   * backlog. Chunks that came back are taken
   * back first, but only while past: a sender under it pays one compare.
   */
  pastWindow(target: number): number {
    if ((this.sent[target] ?? 0) <= this.window) return 0;
    this.reclaim();
    return Math.max(0, (this.sent[target] ?? 0) - this.window);
  }

  /**
   * Whether a chunk came back while some target was past its window (an
   * event for a sender waiting in ready()). Parking, it asks the receivers
   * to ring first, so one that gives a chunk back later wakes this worker.
   */
  returnedPastWindow(parking: boolean): boolean {
    if (this.pastTargets === 0) return false;
    if (parking) Atomics.store(this.cells, WANT, 1);
    return this.reclaim() > 0;
  }

  /** The offset of `size` free bytes below the top, taken; -1 if none. */
  private fit(size: number): number {
    const free = this.free;
    for (let i = 0; i < free.length; i++) {
      const e = free[i]!;
      if (e.size < size) continue;
      const at = e.at;
      if (e.size === size) free.splice(i, 1);
      else {
        e.at += size;
        e.size -= size;
      }
      return at;
    }
    return -1;
  }

  /** The offset of `size` bytes at the top, the slab grown to hold them; -1 past its capacity. */
  private grow(size: number): number {
    // Free space that ends at the top is extended, not left behind.
    const free = this.free;
    const last = free[free.length - 1];
    const from = last !== undefined && last.at + last.size === this.top ? last.at : this.top;
    const end = from + size;
    if (end > this.capacity) return -1;
    if (DATA + end > this.buffer.byteLength) this.buffer.grow(Math.min(DATA + this.capacity, Math.max(DATA + end, this.buffer.byteLength + GROW_STEP)));
    if (from !== this.top) free.pop();
    this.top = end;
    return from;
  }

  /** Takes back every chunk its receiver gave back; returns how many. */
  reclaim(): number {
    let n = 0;
    for (const c of this.out.values()) {
      if (c.target >= 0 && Atomics.load(this.cells, TABLE + 2 * c.slot + 1) === c.generation) {
        this.release(c);
        n++;
      }
    }
    return n;
  }

  /** Gives a chunk back to the free space (a returned one, a cancelled loan, one whose receiver is gone). */
  release(c: Chunk): void {
    if (!this.isOut(c)) return;
    this.out.delete(c.slot);
    this.spareSlots.push(c.slot);
    if (c.target >= 0) {
      this.count(c.target, -c.counted);
      if (this.capped[c.target] === c) this.recap(c.target);
    }
    this.insert(c.offset, chunkSize(c.length));
  }

  private insert(at: number, size: number): void {
    const free = this.free;
    let i = 0;
    while (i < free.length && free[i]!.at < at) i++;
    const before = free[i - 1];
    const after = free[i];
    if (before !== undefined && before.at + before.size === at) {
      before.size += size;
      if (after !== undefined && before.at + before.size === after.at) {
        before.size += after.size;
        free.splice(i, 1);
      }
    } else if (after !== undefined && at + size === after.at) {
      after.at = at;
      after.size += size;
    } else free.splice(i, 0, { at, size });
  }

  /** `target` reads no more (it returned, or died and was replaced): every chunk it held is free again. */
  reclaimTarget(target: number): void {
    for (const c of this.out.values()) if (c.target === target) this.release(c);
  }

  /**
   * Asks the receivers to ring the owner's doorbell when they give a chunk
   * back; true if room for `length` bytes is there already (then do not park).
   */
  wantSpace(length: number): boolean {
    Atomics.store(this.cells, WANT, 1);
    this.reclaim();
    const c = this.alloc(length, -1);
    if (c === undefined) return false;
    this.release(c);
    return true;
  }
}

/** A receiver's side of one sender's slab. */
export class SlabReader {
  private readonly cells: Int32Array;

  constructor(
    readonly buffer: SharedArrayBuffer,
    /** The owner's doorbell, rung when a chunk comes back while it waits. */
    private readonly owner: Doorbell,
  ) {
    this.cells = new Int32Array(buffer, 0, TABLE + 2 * SLOTS);
  }

  /** The bytes a descriptor names, after checking it names a chunk that is still its message's. */
  view(d: Descriptor, total: number): Uint8Array {
    if (d.slot >= SLOTS) throw new ProtocolError(`slab descriptor names slot ${d.slot}; a slab has ${SLOTS}`);
    if (d.length !== total) throw new ProtocolError(`slab descriptor of ${d.length} bytes in a frame whose batch is ${total} bytes`);
    const now = Atomics.load(this.cells, TABLE + 2 * d.slot);
    if (now !== d.generation) {
      throw new ProtocolError(`slab chunk ${d.slot} is at generation ${now}, the descriptor names generation ${d.generation}: the chunk was reused, its message is gone`);
    }
    if (DATA + d.offset + d.length > this.buffer.byteLength) {
      throw new ProtocolError(`slab descriptor reaches byte ${d.offset + d.length}, past the ${this.buffer.byteLength - DATA} bytes of the sender's slab`);
    }
    return new Uint8Array(this.buffer, DATA + d.offset, d.length);
  }

  /** The receiver is done with the chunk: its owner may reuse it (and is woken if it waits). */
  done(d: Descriptor): void {
    this.giveBack(d);
    this.wakeOwner();
  }

  /**
   * done() without the wake-up: a receiver that gives back several chunks
   * in one pass wakes their owner once, after the last (wakeOwner()).
   * Rung per chunk, an owner waiting for its window woke, found one chunk
   * back, parked again and was rung again: a wake-up per message, each a
   * futex call on both threads.
   */
  giveBack(d: Descriptor): void {
    Atomics.store(this.cells, TABLE + 2 * d.slot + 1, d.generation);
  }

  /**
   * Rings the owner if it waits for a chunk. After giveBack(): the Dekker
   * pair is store DONE, then load WANT. force(), not ring(): a router sets
   * WANT before it announces its wait on the doorbell, so a receiver may
   * see WANT while PARKED is still 0; the bumped epoch then stops the wait.
   */
  wakeOwner(): void {
    if (Atomics.load(this.cells, WANT) !== 0) {
      Atomics.store(this.cells, WANT, 0);
      this.owner.force();
    }
  }
}
