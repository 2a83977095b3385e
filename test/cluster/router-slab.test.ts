// The receiving router reads a large PART run from a peer straight into a
// chunk of its slab and hands the local worker one descriptor (router-inbound.ts).
// Bytes from the network are hostile: these tests drive a Router with frames
// built by hand, fed through a stand-in socket in chunks fast-check picks
// (once through a real socket, for what Node itself delivers), and read
// what the worker would through its own Inbox.

import { afterEach, describe, expect, it } from 'vitest';
import { EventEmitter } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import fc from 'fast-check';
import { Router } from '../../src/transport/router.ts';
import { Inbound } from '../../src/transport/router-inbound.ts';
import { Doorbell, DOORBELL_BYTES } from '../../src/transport/doorbell.ts';
import { createRingBuffer, maxPayload, RingReader, RingWriter } from '../../src/transport/ring.ts';
import { createSlab, SlabReader, SlabWriter, SLAB_MIN_BYTES } from '../../src/transport/slab.ts';
import { Inbox, type FrameSink } from '../../src/transport/inbox.ts';
import { Outbox } from '../../src/transport/outbox.ts';
import { FrameDecoder } from '../../src/transport/decoder.ts';
import { Flags, HEADER_BYTES, Kind, writeHeader, type FrameHeader } from '../../src/transport/frame.ts';
import { LinkCounters, linkCountersBuffer } from '../../src/transport/link-counters.ts';
import type { PeerError } from '../../src/errors.ts';
import { HIGH_WATER } from '../../src/transport/router-peer.ts';
import { SocketReads } from '../../src/transport/reads.ts';
import type { Link } from '../../src/transport/mesh.ts';

const RING_BYTES = 256 << 10;
const MAX_FRAME = maxPayload(RING_BYTES);
const MAX_BATCH = 4 << 20;
const WINDOW = 1 << 20;
// Process 1 of 3, one thread each: worker 1 is local; workers 0 and 2 are the peers'.
const LOCAL = 1;

/**
 * Stands in for a peer's socket: bytes arrive through arrive(), as 'data'
 * (a link we accepted) or, on a link we dialled, read as Node reads with
 * `onread` (reads.ts): each read into the buffer the reads gave last, at
 * most its length. Writes are swallowed.
 */
class FakeSocket extends EventEmitter {
  readonly reads: SocketReads | undefined;
  /** On a dialled link: each read, with the memory it went to. */
  readonly readInto: { memory: ArrayBufferLike; n: number }[] = [];

  constructor(dialled: boolean) {
    super();
    if (!dialled) return;
    this.reads = new SocketReads();
    this.reads.socket = this as unknown as Socket;
  }

  get link(): Link {
    return { socket: this as unknown as Socket, rest: Buffer.alloc(0), ...(this.reads === undefined ? {} : { reads: this.reads }) };
  }

  arrive(bytes: Uint8Array): void {
    if (this.reads === undefined) {
      this.emit('data', Buffer.from(bytes));
      return;
    }
    const { buffer, callback } = this.reads.onread as { buffer: () => Uint8Array; callback: (n: number, b: Uint8Array) => boolean };
    for (let at = 0; at < bytes.length;) {
      const into = buffer();
      const n = Math.min(into.length, bytes.length - at);
      into.set(bytes.subarray(at, at + n));
      at += n;
      this.readInto.push({ memory: into.buffer, n });
      callback(n, into);
    }
  }

  paused = false;
  destroyed = false;
  /** Nothing waits in a stream: the test hands every byte to arrive(). */
  readonly readableLength = 0;
  writableLength = 0;
  pause(): this {
    this.paused = true;
    return this;
  }
  resume(): this {
    this.paused = false;
    return this;
  }
  /** Copies of what the router wrote, in order. */
  readonly written: Uint8Array[] = [];
  cork(): void {}
  uncork(): void {}
  write(bytes: Uint8Array, done?: () => void): boolean {
    this.written.push(bytes.slice());
    if (done !== undefined) queueMicrotask(done);
    return true;
  }
  end(): void {}
  destroy(): void {
    this.destroyed = true;
  }
}

interface Batch {
  source: number;
  channel: number;
  bytes: Uint8Array;
  /** The payload viewed the router's slab (not the ring, not a buffer the worker put together). */
  inSlab: boolean;
}

function harness(dialled: boolean, slabBytes = 64 << 20) {
  const routerBell = new Doorbell(new SharedArrayBuffer(DOORBELL_BYTES));
  const workerBell = new SharedArrayBuffer(DOORBELL_BYTES);
  const down = createRingBuffer(RING_BYTES);
  const slabBuffer = createSlab(slabBytes)!;
  const slab = new SlabWriter(slabBuffer, WINDOW);
  const sockets = [new FakeSocket(dialled), undefined, new FakeSocket(dialled)];
  const up = createRingBuffer(RING_BYTES);
  const workerSlabBuffer = createSlab(64 << 20)!;
  const workerSlab = new SlabWriter(workerSlabBuffer, RING_BYTES);
  const losses: PeerError[] = [];
  const router = new Router({
    process: 1, processes: 3, threads: 1, addresses: ['a:1', 'b:2', 'c:3'],
    links: sockets.map((s) => s?.link),
    bell: routerBell,
    fromWorkers: [new RingReader(up, new Doorbell(workerBell))],
    toWorkers: [new RingWriter(down, new Doorbell(workerBell))],
    slab,
    workerSlabs: [new SlabReader(workerSlabBuffer, new Doorbell(workerBell))],
    limits: { peers: 3, maxFrame: MAX_FRAME, maxBatch: MAX_BATCH },
    heartbeatTimeoutMs: 600_000,
    onFailure: (e) => losses.push(e),
    onLoss: (e) => losses.push(e),
    counters: new LinkCounters(linkCountersBuffer(3)),
  });
  const inbox = new Inbox(new RingReader(down, routerBell), LOCAL, 3, MAX_BATCH, new SlabReader(slabBuffer, routerBell));
  const { got: batches, receive } = reader(inbox, slabBuffer);
  started.push(router);
  // The local worker's side of its ring to the router, with its slab, as rings.ts builds it.
  const backlog = { bytes: 0, cap: 1 << 30, overflow: (): never => { throw new Error('backlog over its cap'); } };
  const outbox = new Outbox(new RingWriter(up, routerBell), LOCAL, new Uint32Array(3), backlog, workerSlab, true);
  return { router, sockets: sockets as [FakeSocket, undefined, FakeSocket], slab, batches, receive, losses, outbox, workerSlab };
}

/** What a worker reads through its inbox: each batch copied, and whether it viewed the router's slab. */
function reader(inbox: Inbox, slabBuffer: SharedArrayBuffer): { got: Batch[]; receive: () => number } {
  const got: Batch[] = [];
  const sink: FrameSink = {
    batch: (source, channel, _codec, _count, payload) => {
      got.push({ source, channel, bytes: payload.slice(), inSlab: payload.buffer === slabBuffer });
      return false;
    },
    close: () => {},
    finish: () => {},
    accepts: () => true,
  };
  return { got, receive: () => inbox.drain(sink) };
}

const started: Router[] = [];
afterEach(() => {
  for (const r of started.splice(0)) r.abort('test over');
});

/** One batch from `source` to the local worker as the sender's outbox cuts it: one DATA frame, or PART frames of at most MAX_FRAME. */
function frames(source: number, seq: number, channel: number, payload: Uint8Array): { bytes: Uint8Array; frames: number } {
  const parts: { h: FrameHeader; p: Uint8Array }[] = [];
  const base = { channel, source, target: LOCAL, codec: 0, count: 1, total: payload.length };
  if (payload.length <= MAX_FRAME) parts.push({ h: { ...base, seq, length: payload.length, kind: Kind.DATA, flags: 0 }, p: payload });
  else {
    for (let at = 0; at < payload.length; at += MAX_FRAME) {
      const p = payload.subarray(at, Math.min(at + MAX_FRAME, payload.length));
      const last = at + p.length === payload.length;
      parts.push({ h: { ...base, seq: (seq + parts.length) >>> 0, length: p.length, kind: Kind.PART, flags: last ? Flags.LAST : 0 }, p });
    }
  }
  const out = new Uint8Array(parts.reduce((n, x) => n + HEADER_BYTES + x.p.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const { h, p } of parts) {
    writeHeader(view, at, h);
    out.set(p, at + HEADER_BYTES);
    at += HEADER_BYTES + p.length;
  }
  return { bytes: out, frames: parts.length };
}

function header(h: Partial<FrameHeader> & { length: number; total: number }): Uint8Array {
  const b = new Uint8Array(HEADER_BYTES);
  writeHeader(new DataView(b.buffer), 0, { channel: 5, source: 0, target: LOCAL, seq: 0, kind: Kind.PART, codec: 0, flags: 0, count: 1, ...h });
  return b;
}

/** `bytes` arrive cut at `cuts`: each piece what the socket has when it is read. */
function emit(socket: FakeSocket, bytes: Uint8Array, cuts: number[]): void {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const p of [...points, bytes.length]) {
    if (p > from) socket.arrive(bytes.subarray(from, p));
    from = p;
  }
}

function pattern(length: number, seed: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed) & 255;
  return b;
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe.each([
  { dialled: false, how: 'a link we accepted (data events)' },
  { dialled: true, how: 'a link we dialled (reads into buffers the router gives)' },
])('large frames from a peer, read into the router slab, on $how', ({ dialled }) => {
  it('any chunking of large and small batches from two peers: the worker gets each whole, in order, large ones as one slab chunk; every chunk comes back', async () => {
    const message = fc.record({ from: fc.constantFrom(0, 2), length: fc.oneof(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: SLAB_MIN_BYTES, max: 3 * MAX_FRAME + 5 })), seed: fc.nat(255) });
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 40 }), async (messages, cuts) => {
        const { sockets, slab, batches, receive, losses } = harness(dialled);
        const seqs = [0, 0, 0];
        const streams: number[][] = [[], [], []];
        const sent: Batch[] = [];
        const wire = [[] as Uint8Array[], [], [] as Uint8Array[]];
        messages.forEach((m, k) => {
          const payload = pattern(m.length, m.seed);
          const f = frames(m.from, seqs[m.from]!, k, payload);
          seqs[m.from] = (seqs[m.from]! + f.frames) >>> 0;
          wire[m.from]!.push(f.bytes);
          streams[m.from]!.push(k);
          sent.push({ source: m.from, channel: k, bytes: payload, inSlab: m.length >= SLAB_MIN_BYTES });
        });
        for (const from of [0, 2]) {
          const all = Buffer.concat(wire[from]!);
          // Read as it arrives, so the ring never holds more than it can.
          for (const piece of [all.subarray(0, all.length >>> 1), all.subarray(all.length >>> 1)]) {
            emit(sockets[from]!, piece, cuts);
            receive();
          }
        }
        // Frames queued behind a full ring move on when the router's loop
        // runs (the worker's reads ring its doorbell), not within a read.
        await until('every batch arrived', () => {
          receive();
          return batches.length === messages.length || losses.length > 0;
        });
        expect(losses).toEqual([]);
        for (const from of [0, 2]) {
          const got = batches.filter((b) => b.source === from);
          const want = sent.filter((b) => b.source === from);
          expect(got.map((b) => b.channel)).toEqual(want.map((b) => b.channel));
          // Buffer#equals, not toEqual: a deep compare of 400 KiB element by element takes seconds.
          expect(got.map((b, i) => Buffer.from(b.bytes).equals(want[i]!.bytes) && b.inSlab === want[i]!.inSlab)).toEqual(want.map(() => true));
        }
        slab.reclaim();
        expect(slab.outstanding).toBe(0);
      }),
      { numRuns: 40 },
    );
  });

  it('a run the router slab has no room for comes through the ring and is put together by the worker; the next run that fits takes the slab again', async () => {
    // 256 KiB of slab: the first run (about 384 KiB) cannot have a chunk.
    const { sockets, slab, batches, receive, losses } = harness(dialled, 256 << 10);
    const big = pattern(3 * MAX_FRAME + 5, 1);
    const fits = pattern(MAX_FRAME + 100, 2);
    const small = pattern(500, 3);
    const a = frames(0, 0, 1, big);
    const b = frames(0, a.frames, 2, fits);
    const c = frames(0, a.frames + b.frames, 3, small);
    const all = Buffer.concat([a.bytes, b.bytes, c.bytes]);
    // In pieces smaller than the ring, read as they arrive.
    for (let at = 0; at < all.length; at += 100_000) {
      emit(sockets[0], all.subarray(at, Math.min(at + 100_000, all.length)), [4_321]);
      await until(`the worker read up to byte ${at}`, () => {
        receive();
        return !sockets[0].paused || losses.length > 0;
      });
    }
    await until('all three batches arrived', () => {
      receive();
      return batches.length === 3 || losses.length > 0;
    });
    expect(losses).toEqual([]);
    expect(batches.map((x) => [x.channel, x.inSlab])).toEqual([[1, false], [2, true], [3, false]]);
    expect([big, fits, small].map((want, i) => Buffer.from(batches[i]!.bytes).equals(want))).toEqual([true, true, true]);
    slab.reclaim();
    expect(slab.outstanding).toBe(0);
  });

  it('a run that declares more than maxMessageBytes is refused before anything is allocated', () => {
    const { sockets, slab, losses } = harness(dialled);
    sockets[0].arrive(Buffer.from(header({ length: 1000, total: MAX_BATCH + 1 })));
    expect(losses.map((e) => e.message).join()).toMatch(/process 0 \(a:1\) broke the protocol: batch of 4194305 bytes exceeds maxMessageBytes \(4194304\) here/);
    expect(slab.outstanding).toBe(0);
  });

  it('a run that does not continue as it began, overruns its total, or is interrupted by another frame from its source, is refused and its chunk freed', () => {
    fc.assert(
      fc.property(fc.constantFrom('channel', 'total', 'seq', 'overrun', 'data', 'close', 'fin'), fc.boolean(), (how, whole) => {
        const { sockets, slab, losses } = harness(dialled);
        const total = MAX_FRAME + 10;
        sockets[0].arrive(Buffer.concat([header({ length: MAX_FRAME, total }), Buffer.alloc(MAX_FRAME)]));
        expect(slab.outstanding).toBe(1);
        const next = how === 'channel' ? header({ length: 10, total, seq: 1, channel: 6, flags: Flags.LAST })
          : how === 'total' ? header({ length: 10, total: total + 8, seq: 1, flags: Flags.LAST })
          : how === 'seq' ? header({ length: 10, total, seq: 2, flags: Flags.LAST })
          : how === 'overrun' ? header({ length: 11, total, seq: 1, flags: Flags.LAST })
          : how === 'data' ? header({ length: 10, total: 10, seq: 1, kind: Kind.DATA })
          : header({ length: 0, total: 0, count: 0, seq: 1, kind: how === 'close' ? Kind.CLOSE : Kind.FIN });
        // Whole in one chunk (delivered) or its payload still to come (read in place).
        if (whole) sockets[0].arrive(Buffer.concat([next, Buffer.alloc(11)]));
        else sockets[0].arrive(Buffer.from(next));
        expect(losses.map((e) => e.message).join()).toMatch(/broke the protocol: .*(does not continue its run( to worker \d+| on channel \d+)|arrived where frame 1 was expected|(DATA|CLOSE|FIN) frame from worker 0 interrupts a PART run|overruns its total)/);
        expect(slab.outstanding).toBe(0);
      }),
    );
  });

  it('a peer that declares a large run and never sends the rest pins one chunk, and the other peer is still read and delivered', async () => {
    const { sockets, slab, batches, receive, losses } = harness(dialled);
    sockets[0].arrive(Buffer.from(header({ length: MAX_FRAME, total: MAX_BATCH })));
    sockets[0].arrive(Buffer.alloc(1000)); // and then nothing
    expect(slab.outstanding).toBe(1);
    // The other peer floods far past the window while the stalled run stays open.
    const many = 40;
    for (let k = 0; k < many; k++) {
      const f = frames(2, k * 3, 9, pattern(2 * MAX_FRAME + 3, k));
      await until(`peer 2's socket is read (batch ${k})`, () => {
        receive();
        return !sockets[2].paused;
      });
      emit(sockets[2], f.bytes, [777, 70_000]);
    }
    await until('every batch of peer 2 arrived', () => {
      receive();
      return batches.length === many;
    });
    expect(batches.every((b, k) => b.source === 2 && b.inSlab && b.bytes[5] === pattern(6, k)[5])).toBe(true);
    expect(losses).toEqual([]);
    slab.reclaim();
    // Only the stalled run's chunk is still out.
    expect(slab.outstanding).toBe(1);
  });

  it.each([
    { size: 2 * MAX_FRAME + 3, as: 'PART runs' },
    { size: MAX_FRAME, as: 'whole DATA frames' },
  ])('a worker that reads slowly, sent large batches as $as: past its window of chunks the sockets pause, and resume once it reads', async ({ size }) => {
    const { sockets, slab, batches, receive } = harness(dialled);
    let k = 0;
    let seq = 0;
    while (!sockets[2].paused) {
      const f = frames(2, seq, 9, pattern(size, k));
      seq += f.frames;
      emit(sockets[2], f.bytes, []);
      k++;
      expect(k).toBeLessThan(200);
    }
    // Paused once the chunks handed over pass the window: a batch past it at most.
    expect(k * size).toBeLessThanOrEqual(WINDOW + 2 * size);
    expect(sockets[0].paused).toBe(true);
    await until('the sockets resume once the worker has read', () => {
      receive();
      return !sockets[2].paused && !sockets[0].paused;
    });
    expect(batches.length).toBe(k);
    slab.reclaim();
    expect(slab.outstanding).toBe(0);
  });

  it('a worker that keeps up after a pause: the chunks it gave back are counted as back, and the sockets do not pause again', async () => {
    const { sockets, slab, batches, receive } = harness(dialled);
    const size = 2 * MAX_FRAME + 3;
    let k = 0;
    // Past its window once: the slab has that much free space afterwards.
    while (!sockets[2].paused) {
      emit(sockets[2], frames(2, k * 3, 9, pattern(size, k)).bytes, []);
      k++;
      expect(k).toBeLessThan(100);
    }
    await until('the sockets resume once the worker has read', () => {
      receive();
      return !sockets[2].paused && !sockets[0].paused;
    });
    // Now the worker reads each batch as it comes, for twice its window.
    const more = k + Math.ceil((2 * WINDOW) / size);
    for (; k < more; k++) {
      emit(sockets[2], frames(2, k * 3, 9, pattern(size, k)).bytes, []);
      expect(sockets[2].paused || sockets[0].paused).toBe(false);
      receive();
    }
    expect(batches.length).toBe(more);
    slab.reclaim();
    expect(slab.outstanding).toBe(0);
  });

  it('a peer that dies half way through a run or a large DATA frame: the loss is reported and its chunk is free again', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 * MAX_FRAME + 2 * HEADER_BYTES - 1 }), fc.constantFrom(2 * MAX_FRAME + 1, MAX_FRAME), (upTo, size) => {
        const { sockets, slab, losses } = harness(dialled);
        const f = frames(0, 0, 3, pattern(size, 1));
        // Never the whole of it: a whole batch is the worker's to give back.
        sockets[0].arrive(Buffer.from(f.bytes.subarray(0, Math.max(upTo % f.bytes.length, HEADER_BYTES))));
        sockets[0].emit('close');
        expect(losses.map((e) => e.message).join()).toMatch(/connection to process 0 \(a:1\) closed without a goodbye/);
        expect(slab.outstanding).toBe(0);
      }),
      { numRuns: 30 },
    );
  });

  it('a worker\'s large batch for a peer leaves as views of its slab chunk: any sizes decode on the wire to the same batches, PART runs numbered on, and every chunk comes back once written', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: SLAB_MIN_BYTES, max: 3 * MAX_FRAME + 9 })), { minLength: 1, maxLength: 6 }), async (sizes) => {
        const { sockets, outbox, workerSlab, losses } = harness(dialled);
        const sent = sizes.map((n, k) => pattern(n, k));
        sent.forEach((payload, k) => outbox.data(0, k, 0, 1, payload));
        outbox.publish();
        expect(workerSlab.outstanding).toBe(sizes.filter((n) => n >= SLAB_MIN_BYTES).length);
        // What the peer would read: whole batches, a PART run put back together, and the sequence.
        const got: Uint8Array[] = [];
        const seqs: number[] = [];
        let run: Uint8Array[] = [];
        const decoder = new FrameDecoder({ peers: 3, maxFrame: MAX_FRAME, maxBatch: MAX_BATCH }, (h, p) => {
          seqs.push(h.seq);
          if (h.kind === Kind.DATA) got.push(p.slice());
          else if (h.kind === Kind.PART) {
            run.push(p.slice());
            if (h.flags & Flags.LAST) {
              got.push(Buffer.concat(run));
              run = [];
            }
          }
        });
        let read = 0;
        await until('every batch is on the wire', () => {
          for (; read < sockets[0].written.length; read++) decoder.push(sockets[0].written[read]!);
          return got.length === sent.length;
        });
        expect(got.map((b, k) => Buffer.from(b).equals(sent[k]!))).toEqual(sent.map(() => true));
        expect(seqs).toEqual(seqs.map((_, i) => i));
        expect(losses).toEqual([]);
        await until('every chunk is back', () => {
          workerSlab.reclaim();
          return workerSlab.outstanding === 0;
        });
      }),
      { numRuns: 25 },
    );
  });

  it('a descriptor the router cannot read from a worker\'s ring fails the run with the reason, not an unhandled rejection in the network thread', async () => {
    const { outbox, losses } = harness(dialled);
    // Slot 5000 of a 4096-slot slab: only a broken worker writes it.
    outbox.sendChunk({ slot: 5000, generation: 1, offset: 0, length: SLAB_MIN_BYTES, target: 0, counted: 0, bytes: new Uint8Array(0) }, 4, 0, 1);
    outbox.publish();
    await until('the router fails', () => losses.length > 0);
    expect(losses.map((e) => e.message).join()).toMatch(/the router failed: slab descriptor names slot 5000/);
  });

  it('a peer worker that finishes while a large batch for it waits in the ring to the router: the batch still leaves whole, and its chunk is not reused before', async () => {
    const { sockets, outbox, workerSlab, losses } = harness(dialled);
    const first = pattern(2 * MAX_FRAME + 7, 1);
    outbox.data(0, 4, 0, 1, first);
    outbox.publish();
    // Worker 0 sent FIN (endpoint.finish(0)) before the router read the ring.
    outbox.discard(0);
    // The worker's next large batch, to the other peer, must not take that chunk.
    const second = pattern(2 * MAX_FRAME + 7, 2);
    outbox.data(2, 4, 0, 1, second);
    outbox.publish();
    const got: Uint8Array[][] = [[], [], []];
    const decoders = [0, 2].map((p) => {
      let run: Uint8Array[] = [];
      return new FrameDecoder({ peers: 3, maxFrame: MAX_FRAME, maxBatch: MAX_BATCH }, (h, payload) => {
        run.push(payload.slice());
        if (h.kind === Kind.DATA || h.flags & Flags.LAST) {
          got[p]!.push(Buffer.concat(run));
          run = [];
        }
      });
    });
    const read = [0, 0];
    await until('both batches are on the wire', () => {
      [0, 2].forEach((p, k) => {
        for (; read[k]! < sockets[p as 0 | 2].written.length; read[k]!++) decoders[k]!.push(sockets[p as 0 | 2].written[read[k]!]!);
      });
      return losses.length > 0 || (got[0]!.length === 1 && got[2]!.length === 1);
    });
    expect(losses).toEqual([]);
    expect(Buffer.from(got[0]![0]!).equals(first)).toBe(true);
    expect(Buffer.from(got[2]![0]!).equals(second)).toBe(true);
    await until('every chunk is back', () => {
      workerSlab.reclaim();
      return workerSlab.outstanding === 0;
    });
  });

  it('a peer lost while a whole run of its waits for room in the worker\'s ring: the run\'s chunk is free again', () => {
    const { sockets, slab, losses } = harness(dialled);
    // The worker reads nothing: peer 0's small batches fill its ring.
    let seq = 0;
    for (; seq < 4; seq++) sockets[0].arrive(Buffer.from(frames(0, seq, 3, pattern(MAX_FRAME >>> 1, seq)).bytes));
    const run = frames(0, seq, 3, pattern(2 * MAX_FRAME + 1, 9));
    sockets[0].arrive(Buffer.from(run.bytes));
    expect(slab.outstanding).toBe(1);
    sockets[0].emit('close');
    expect(losses.map((e) => e.message).join()).toMatch(/connection to process 0 \(a:1\) closed without a goodbye/);
    expect(slab.outstanding).toBe(0);
  });
});

describe('a large run from a link we dialled', () => {
  it('is read from the socket straight into its slab chunk: only what comes in with each part\'s header passes through the link\'s own buffer', async () => {
    const { sockets, slab, batches, receive, losses } = harness(true);
    const payload = pattern(3 * MAX_FRAME + 5, 4);
    // The whole run waits on the socket: each read takes as much as the buffer it goes to holds.
    sockets[0].arrive(frames(0, 0, 1, payload).bytes);
    const intoChunk = sockets[0].readInto.filter((r) => r.memory === slab.buffer).reduce((n, r) => n + r.n, 0);
    // Four parts, each with at most a read of the link's own buffer (64 KiB) copied.
    expect(intoChunk).toBeGreaterThanOrEqual(payload.length - 4 * (64 << 10));
    await until('the batch arrived', () => {
      receive();
      return batches.length === 1 || losses.length > 0;
    });
    expect(losses).toEqual([]);
    expect(batches[0]!.inSlab).toBe(true);
    expect(Buffer.from(batches[0]!.bytes).equals(payload)).toBe(true);
  });
});

describe('a link we dialled, over a real socket', () => {
  it('bytes Node read before the router took the link wait in the stream and reach the worker first; a large batch after them lands in a slab chunk, whole and in order', async () => {
    let peer: Socket | undefined;
    const server = createServer((s) => (peer = s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    // Dialled with onread, as dial.ts does.
    const reads = new SocketReads();
    const socket = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, onread: reads.onread });
    reads.socket = socket;
    try {
      await until('connected', () => peer !== undefined && !socket.connecting);
      const early = [pattern(3000, 1), pattern(MAX_FRAME + 7, 2)];
      const first = frames(0, 0, 0, early[0]!);
      const second = frames(0, first.frames, 1, early[1]!);
      peer!.write(Buffer.concat([first.bytes, second.bytes]));
      // Nobody listens yet: the bytes wait in the stream, as they would without onread.
      await until('the early bytes are held by the stream', () => socket.readableLength === first.bytes.length + second.bytes.length);
      const bell = new Doorbell(new SharedArrayBuffer(DOORBELL_BYTES));
      const down = createRingBuffer(RING_BYTES);
      const slabBuffer = createSlab(64 << 20)!;
      const losses: PeerError[] = [];
      started.push(new Router({
        process: 1, processes: 2, threads: 1, addresses: ['a:1', 'b:2'],
        links: [{ socket, rest: Buffer.alloc(0), reads }, undefined],
        bell,
        fromWorkers: [new RingReader(createRingBuffer(RING_BYTES), bell)],
        toWorkers: [new RingWriter(down, bell)],
        slab: new SlabWriter(slabBuffer, WINDOW),
        limits: { peers: 2, maxFrame: MAX_FRAME, maxBatch: MAX_BATCH },
        heartbeatTimeoutMs: 600_000,
        onFailure: (e) => losses.push(e),
        onLoss: (e) => losses.push(e),
        counters: new LinkCounters(linkCountersBuffer(2)),
      }));
      const { got, receive } = reader(new Inbox(new RingReader(down, bell), LOCAL, 2, MAX_BATCH, new SlabReader(slabBuffer, bell)), slabBuffer);
      const late = pattern(3 * MAX_FRAME + 11, 3);
      peer!.write(frames(0, first.frames + second.frames, 2, late).bytes);
      await until('all three batches arrived', () => {
        receive();
        return got.length === 3 || losses.length > 0;
      });
      expect(losses).toEqual([]);
      expect(got.map((b) => [b.channel, b.inSlab])).toEqual([[0, false], [1, true], [2, true]]);
      expect([...early, late].map((want, k) => Buffer.from(got[k]!.bytes).equals(want))).toEqual([true, true, true]);
    } finally {
      socket.destroy();
      peer?.destroy();
      server.close();
    }
  });
});

describe('the router inbound half with two local workers', () => {
  /** Process 1 of 2, two threads each: local workers 0 and 1 are workers 2 and 3; the peer's are 0 and 1. */
  function twoWorkers() {
    const bell = new Doorbell(new SharedArrayBuffer(DOORBELL_BYTES));
    const rings = [createRingBuffer(RING_BYTES), createRingBuffer(RING_BYTES)];
    const slabBuffer = createSlab(64 << 20)!;
    const slab = new SlabWriter(slabBuffer, WINDOW);
    const pauses: boolean[] = [];
    const inbound = new Inbound(rings.map((r) => new RingWriter(r, bell)), 4, (p) => pauses.push(p), slab);
    /** What local worker `local` reads from its ring. */
    const read = (local: number): Batch[] => {
      const { got, receive } = reader(new Inbox(new RingReader(rings[local]!, bell), 2 + local, 4, MAX_BATCH, new SlabReader(slabBuffer, bell)), slabBuffer);
      receive();
      return got;
    };
    return { inbound, slab, read, pauses };
  }

  const part = (source: number, local: number, seq: number, total: number, last: boolean): FrameHeader =>
    ({ channel: 7, source, target: 2 + local, seq, kind: Kind.PART, codec: 0, flags: last ? Flags.LAST : 0, count: 1, total, length: MAX_FRAME });

  it('a worker that returns while a run for it is half read in place: the run keeps its chunk to its end, and the other worker\'s batch is intact', () => {
    const { inbound, slab, read } = twoWorkers();
    const total = 2 * MAX_FRAME;
    // Source 0's run for local 0: its first part is being read from the socket into its chunk.
    const first = part(0, 0, 0, total, false);
    const into = inbound.open(0, { ...first })!;
    expect(into).toBeDefined();
    inbound.workerExited(0);
    // Meanwhile source 1 sends local 1 a whole run.
    const other = pattern(total, 5);
    inbound.deliver(1, part(1, 1, 0, total, false), other.subarray(0, MAX_FRAME));
    inbound.deliver(1, part(1, 1, 1, total, true), other.subarray(MAX_FRAME));
    // The rest of source 0's first part arrives where open() said, then its last part.
    into.fill(0xee);
    inbound.complete(0, { ...first });
    inbound.deliver(0, part(0, 0, 1, total, true), new Uint8Array(MAX_FRAME));
    inbound.publish();
    const got = read(1);
    expect(got.length).toBe(1);
    expect(got[0]!.inSlab).toBe(true);
    expect(Buffer.from(got[0]!.bytes).equals(other)).toBe(true);
    expect(read(0)).toEqual([]);
    slab.reclaim();
    expect(slab.outstanding).toBe(0);
  });
});

describe('the router inbound half, a large DATA frame', () => {
  it('whole in one read or read in place, it reaches the worker in a chunk; for a worker that returns half way through, the chunk is freed at its end and nothing is delivered', () => {
    const bell = new Doorbell(new SharedArrayBuffer(DOORBELL_BYTES));
    const ring = createRingBuffer(RING_BYTES);
    const slabBuffer = createSlab(64 << 20)!;
    const slab = new SlabWriter(slabBuffer, WINDOW);
    // Process 1 of 3, one thread each: local worker 0 is worker LOCAL.
    const inbound = new Inbound([new RingWriter(ring, bell)], 3, () => {}, slab);
    const { got, receive: read } = reader(new Inbox(new RingReader(ring, bell), LOCAL, 3, MAX_BATCH, new SlabReader(slabBuffer, bell)), slabBuffer);
    const data = (source: number, seq: number, channel: number): FrameHeader =>
      ({ channel, source, target: LOCAL, seq, kind: Kind.DATA, codec: 0, flags: 0, count: 1, total: MAX_FRAME, length: MAX_FRAME });
    const one = pattern(MAX_FRAME, 1);
    const two = pattern(MAX_FRAME, 2);
    inbound.deliver(0, data(0, 0, 1), one);
    const into = inbound.open(0, data(2, 0, 2))!;
    expect(into.buffer).toBe(slabBuffer);
    into.set(two);
    inbound.complete(0, data(2, 0, 2));
    inbound.publish();
    read();
    expect(got.map((b) => [b.source, b.channel, b.inSlab])).toEqual([[0, 1, true], [2, 2, true]]);
    expect([one, two].map((want, i) => Buffer.from(got[i]!.bytes).equals(want))).toEqual([true, true]);
    // The worker returns while the next one is half read into its chunk.
    const half = inbound.open(0, data(0, 1, 3))!;
    expect(half.buffer).toBe(slabBuffer);
    inbound.workerExited(0);
    half.fill(9);
    inbound.complete(0, data(0, 1, 3));
    inbound.publish();
    read();
    expect(got.length).toBe(2);
    slab.reclaim();
    expect(slab.outstanding).toBe(0);
  });
});

describe('a peer with two workers', () => {
  it.each([false, true])('one worker part way through a large run, the other flooding a worker that reads nothing: the socket still pauses once the router\'s queue passes its mark (dialled: %s)', (dialled) => {
    // Process 1 of 2, two threads each: the peer's workers are 0 and 1, ours 2 and 3.
    const socket = new FakeSocket(dialled);
    const bell = new Doorbell(new SharedArrayBuffer(DOORBELL_BYTES));
    const workerBell = new Doorbell(new SharedArrayBuffer(DOORBELL_BYTES));
    const slabBuffer = createSlab(64 << 20)!;
    const slab = new SlabWriter(slabBuffer, WINDOW);
    const losses: PeerError[] = [];
    started.push(new Router({
      process: 1, processes: 2, threads: 2, addresses: ['a:1', 'b:2'],
      links: [socket.link, undefined],
      bell,
      fromWorkers: [0, 1].map(() => new RingReader(createRingBuffer(RING_BYTES), workerBell)),
      toWorkers: [0, 1].map(() => new RingWriter(createRingBuffer(RING_BYTES), workerBell)),
      slab,
      limits: { peers: 4, maxFrame: MAX_FRAME, maxBatch: MAX_BATCH },
      heartbeatTimeoutMs: 600_000,
      onFailure: (e) => losses.push(e),
      onLoss: (e) => losses.push(e),
      counters: new LinkCounters(linkCountersBuffer(2)),
    }));
    // Worker 0 opens a run for worker 2 and never finishes it.
    const run = new Uint8Array(HEADER_BYTES + MAX_FRAME);
    writeHeader(new DataView(run.buffer), 0, { channel: 1, source: 0, target: 2, seq: 0, kind: Kind.PART, codec: 0, flags: 0, count: 1, total: MAX_BATCH, length: MAX_FRAME });
    socket.arrive(run);
    expect(slab.outstanding).toBe(1);
    // Worker 1 streams empty batches to worker 3, whose ring fills.
    const empty = new Uint8Array(HEADER_BYTES * 1024);
    const view = new DataView(empty.buffer);
    let seq = 0;
    let sent = 0;
    while (!socket.paused && sent <= 4 * HIGH_WATER) {
      for (let k = 0; k < 1024; k++) writeHeader(view, k * HEADER_BYTES, { channel: 2, source: 1, target: 3, seq: seq++, kind: Kind.DATA, codec: 0, flags: 0, count: 1, total: 0, length: 0 });
      socket.arrive(empty);
      sent += empty.length;
    }
    expect(losses).toEqual([]);
    expect(socket.paused).toBe(true);
    // The ring's worth and the queue's mark, and at most one read past it.
    expect(sent).toBeLessThanOrEqual(RING_BYTES + HIGH_WATER + empty.length);
  });
});
