// The slab (large batches between threads, outside the rings): its
// descriptor's bytes, the header checks of a slab frame, the owner's
// allocator against random returns, a descriptor whose chunk was reused,
// and an outbox and inbox carrying large batches through a slab that fills.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RingReader, RingWriter, createRingBuffer } from '../../src/transport/ring.ts';
import { Doorbell } from '../../src/transport/doorbell.ts';
import { Outbox } from '../../src/transport/outbox.ts';
import { Inbox, type FrameSink } from '../../src/transport/inbox.ts';
import { Flags, Kind, validateHeader, type FrameHeader } from '../../src/transport/frame.ts';
import { FrameDecoder } from '../../src/transport/decoder.ts';
import {
  DESCRIPTOR_BYTES, MAX_SLAB_BYTES, SLAB_MIN_BYTES, SlabReader, SlabWriter, createSlab, readDescriptor, writeDescriptor, type Chunk,
} from '../../src/transport/slab.ts';
import { ProtocolError } from '../../src/index.ts';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const descriptor = fc.record({ slot: u32, generation: u32, offset: u32, length: u32 });

/**
 * An outbox and an inbox joined by a ring of `ringBytes`, large batches
 * going through a slab of `slabBytes` whose window is `window`; `owner` is
 * the doorbell the inbox rings when it gives chunks back, `backlog` the
 * outbox's count of what waits for the ring.
 */
function slabLink(ringBytes: number, slabBytes: number, window: number, maxBatch: number) {
  const ring = createRingBuffer(ringBytes);
  const slabBuffer = createSlab(slabBytes)!;
  const slab = new SlabWriter(slabBuffer, window);
  const owner = Doorbell.create();
  const backlog = { bytes: 0, cap: Infinity, overflow: (): never => { throw new Error('no cap here'); } };
  const outbox = new Outbox(new RingWriter(ring, Doorbell.create()), 0, new Uint32Array(1), backlog, slab);
  const inbox = new Inbox(new RingReader(ring, Doorbell.create()), 0, 1, maxBatch, new SlabReader(slabBuffer, owner));
  return { slab, owner, outbox, inbox, backlog };
}

describe('slab descriptors', () => {
  it('are four little-endian u32 (slot, generation, offset, length) and read back as written, at any offset', () => {
    fc.assert(
      fc.property(descriptor, fc.integer({ min: 0, max: 40 }), (d, at) => {
        const bytes = new Uint8Array(at + DESCRIPTOR_BYTES + 8).fill(0xaa);
        const view = new DataView(bytes.buffer);
        writeDescriptor(view, at, d);
        const le = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
        expect([...bytes.subarray(at, at + DESCRIPTOR_BYTES)]).toEqual([...le(d.slot), ...le(d.generation), ...le(d.offset), ...le(d.length)]);
        // Nothing outside its 16 bytes is touched.
        expect(bytes.subarray(0, at).every((b) => b === 0xaa)).toBe(true);
        expect(bytes.subarray(at + DESCRIPTOR_BYTES).every((b) => b === 0xaa)).toBe(true);
        expect(readDescriptor(view, at)).toEqual(d);
      }),
    );
  });

  it('travel in DATA frames flagged SLAB only where a slab is, with a descriptor-sized payload and a batch within maxBatch', () => {
    const limits = { peers: 4, maxFrame: 1 << 12, maxBatch: 1 << 20 };
    fc.assert(
      fc.property(
        fc.record({ kind: fc.integer({ min: 1, max: 7 }), flags: fc.integer({ min: 0, max: 3 }), length: fc.integer({ min: 0, max: 64 }), total: fc.integer({ min: 0, max: 2 << 20 }), count: fc.integer({ min: 0, max: 4 }) }),
        fc.boolean(),
        (f, slab) => {
          const h: FrameHeader = { length: f.length, channel: 0, source: 1, target: 2, seq: 0, kind: f.kind as Kind, codec: 16, flags: f.flags, count: f.count, total: f.total };
          if (!(f.flags & Flags.SLAB)) return;
          const ok = slab && f.kind === Kind.DATA && !(f.flags & Flags.LAST) && f.length === DESCRIPTOR_BYTES && f.total <= limits.maxBatch && f.count > 0 && f.count <= f.total + 1;
          if (ok) expect(() => validateHeader(h, { ...limits, slab })).not.toThrow();
          else expect(() => validateHeader(h, { ...limits, slab })).toThrow(ProtocolError);
        },
      ),
    );
  });

  it('are refused from a TCP peer: a slab frame names memory only threads of the sending process have', () => {
    const frame = new Uint8Array(32 + DESCRIPTOR_BYTES);
    const v = new DataView(frame.buffer);
    v.setUint32(0, DESCRIPTOR_BYTES, true);
    v.setUint32(8, 0, true);
    v.setUint32(12, 1, true);
    v.setUint8(20, Kind.DATA);
    v.setUint16(22, Flags.SLAB, true);
    v.setUint32(24, 1, true);
    v.setUint32(28, 1 << 16, true);
    const decoder = new FrameDecoder({ peers: 2, maxFrame: 1 << 20, maxBatch: 1 << 20 }, () => {
      throw new Error('delivered');
    });
    expect(() => decoder.push(frame)).toThrow(/refers to a slab where there is none/);
  });
});

describe('a slab', () => {
  it('hands out chunks that never overlap, reuses what came back, and refuses a descriptor whose chunk was reused', () => {
    let reusedSeen = 0;
    fc.assert(
      fc.property(
        fc.array(fc.oneof(
          { weight: 3, arbitrary: fc.record({ op: fc.constant('alloc' as const), length: fc.integer({ min: 0, max: 96 << 10 }) }) },
          { weight: 2, arbitrary: fc.record({ op: fc.constant('done' as const), pick: fc.nat() }) },
          { weight: 1, arbitrary: fc.record({ op: fc.constant('gone' as const), target: fc.integer({ min: 0, max: 2 }) }) },
        ), { minLength: 1, maxLength: 80 }),
        (script) => {
          const buffer = createSlab(256 << 10)!;
          const writer = new SlabWriter(buffer, 1 << 20);
          const reader = new SlabReader(buffer, Doorbell.create());
          const live: Chunk[] = [];
          const stale: Chunk[] = [];
          let stamp = 0;
          const stamps = new Map<Chunk, number>();
          for (const s of script) {
            if (s.op === 'alloc') {
              const target = s.length % 3;
              const c = writer.alloc(s.length, target);
              if (c === undefined) {
                // Refused only while chunks are out: an empty slab holds anything up to its capacity.
                expect(live.length).toBeGreaterThan(0);
                continue;
              }
              for (const l of live) expect(c.offset + c.length <= l.offset || l.offset + l.length <= c.offset || c.length === 0 || l.length === 0).toBe(true);
              if (stale.some((o) => o.slot === c.slot)) reusedSeen++;
              c.bytes.fill(++stamp & 255);
              stamps.set(c, stamp & 255);
              live.push(c);
            } else if (s.op === 'done' && live.length > 0) {
              const c = live.splice(s.pick % live.length, 1)[0]!;
              const got = reader.view(c, c.length);
              expect(got.every((b) => b === stamps.get(c))).toBe(true);
              reader.done(c);
              stale.push(c);
            } else if (s.op === 'gone') {
              writer.reclaimTarget(s.target);
              for (let i = live.length - 1; i >= 0; i--) if (live[i]!.target === s.target) stale.push(...live.splice(i, 1));
            }
            // Every live chunk still holds what was written into it.
            for (const l of live) expect(reader.view(l, l.length).every((b) => b === stamps.get(l))).toBe(true);
          }
          writer.reclaim();
          expect(writer.outstanding).toBe(live.length);
          for (const o of stale) {
            const now = live.find((l) => l.slot === o.slot);
            if (now !== undefined) expect(() => reader.view(o, o.length)).toThrow(/was reused, its message is gone/);
          }
        },
      ),
      { numRuns: 150 },
    );
    expect(reusedSeen).toBeGreaterThan(0);
  });

  it('says which lengths it can ever hold (whole 4 KiB pages within slabBytes, whatever slabBytes is), and an empty slab gives those a chunk and refuses the rest without throwing, up to 4 GiB', () => {
    const PAGE = 4096;
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: 1, max: 1 << 20 }), fc.constantFrom(2 ** 31 + 100, MAX_SLAB_BYTES)),
        fc.oneof(fc.integer({ min: 0, max: 1 << 20 }), fc.integer({ min: 0, max: 2 ** 32 - 1 })),
        (slabBytes, length) => {
          const writer = new SlabWriter(createSlab(slabBytes)!, 1 << 20);
          // The lengths a slab of whole pages holds: every one up to its
          // last whole page (0 takes a page too), none past it.
          const fits = Math.max(length, 1) <= Math.floor(slabBytes / PAGE) * PAGE;
          expect(writer.fits(length)).toBe(fits);
          // Allocated only where that stays small: a fitting chunk is real memory.
          if (fits && length > 8 << 20) return;
          const chunk = writer.alloc(length, 0);
          if (!fits) expect(chunk).toBeUndefined();
          else expect(chunk?.bytes.length).toBe(length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('hands out 4096 chunks at once, each on its own slot, refuses the next, and reuses the slot that came back', () => {
    const buffer = createSlab(32 << 20)!;
    const writer = new SlabWriter(buffer, 1 << 20);
    const reader = new SlabReader(buffer, Doorbell.create());
    const out: Chunk[] = [];
    for (let c = writer.alloc(1, 1); c !== undefined; c = writer.alloc(1, 1)) out.push(c);
    expect(out.length).toBe(4096);
    expect(new Set(out.map((c) => c.slot)).size).toBe(4096);
    const back = out[1234]!;
    reader.done(back);
    const again = writer.alloc(1, 1)!;
    expect(again.slot).toBe(back.slot);
    expect(again.generation).not.toBe(back.generation);
    expect(writer.alloc(1, 1)).toBeUndefined();
  });

  it('counts the oldest chunk in flight to each target for at most the window and the others whole, through loans sent out of order, returns in any order and a target gone', () => {
    const window = 8 << 10;
    fc.assert(
      fc.property(
        fc.array(fc.oneof(
          { weight: 3, arbitrary: fc.record({ op: fc.constant('send' as const), length: fc.integer({ min: 0, max: 24 << 10 }), target: fc.integer({ min: 0, max: 1 }) }) },
          { weight: 1, arbitrary: fc.record({ op: fc.constant('loan' as const), length: fc.integer({ min: 0, max: 24 << 10 }) }) },
          { weight: 1, arbitrary: fc.record({ op: fc.constant('send loan' as const), pick: fc.nat(), target: fc.integer({ min: 0, max: 1 }) }) },
          { weight: 3, arbitrary: fc.record({ op: fc.constant('done' as const), pick: fc.nat() }) },
          { weight: 1, arbitrary: fc.record({ op: fc.constant('gone' as const), target: fc.integer({ min: 0, max: 1 }) }) },
        ), { minLength: 1, maxLength: 120 }),
        (script) => {
          const buffer = createSlab(1 << 20)!;
          const writer = new SlabWriter(buffer, window);
          const reader = new SlabReader(buffer, Doorbell.create());
          const loans: Chunk[] = [];
          // Per target, the chunks in flight in the order they were sent.
          const inFlight: Chunk[][] = [[], []];
          for (const s of script) {
            if (s.op === 'send' || s.op === 'loan') {
              const c = writer.alloc(s.length, s.op === 'send' ? s.target : -1);
              if (c === undefined) continue;
              if (s.op === 'send') inFlight[s.target]!.push(c);
              else loans.push(c);
            } else if (s.op === 'send loan' && loans.length > 0) {
              const c = loans.splice(s.pick % loans.length, 1)[0]!;
              writer.assign(c, s.target);
              inFlight[s.target]!.push(c);
            } else if (s.op === 'done') {
              const all = inFlight.flat();
              if (all.length === 0) continue;
              const c = all[s.pick % all.length]!;
              const list = inFlight[c.target]!;
              list.splice(list.indexOf(c), 1);
              reader.done(c);
            } else if (s.op === 'gone') {
              writer.reclaimTarget(s.target);
              inFlight[s.target] = [];
            }
            writer.reclaim();
            for (const [target, list] of inFlight.entries()) {
              const counted = list.reduce((sum, c, i) => sum + (i === 0 ? Math.min(c.length, window) : c.length), 0);
              expect(writer.pastWindow(target)).toBe(Math.max(0, counted - window));
            }
            expect(writer.pastTargets).toBe([0, 1].filter((target) => writer.pastWindow(target) > 0).length);
          }
          expect(writer.outstanding).toBe(loans.length + inFlight.flat().length);
        },
      ),
      {
        numRuns: 200,
        // A loan taken first and sent after two others: the cap passes to
        // the oldest sent, not to the oldest taken.
        examples: [[[
          { op: 'loan', length: 0 }, { op: 'send', length: 0, target: 1 }, { op: 'send', length: 8193, target: 1 },
          { op: 'send loan', pick: 0, target: 1 }, { op: 'done', pick: 0 },
        ]]],
      },
    );
  });

  it('wakes its owner when a chunk comes back while it waits for room', () => {
    const buffer = createSlab(64 << 10)!;
    const bell = Doorbell.create();
    const writer = new SlabWriter(buffer, 1 << 20);
    const reader = new SlabReader(buffer, bell);
    const c = writer.alloc(64 << 10, 1)!;
    expect(writer.alloc(4096, 1)).toBeUndefined();
    const before = bell.epoch();
    expect(writer.wantSpace(4096)).toBe(false);
    reader.done(c);
    expect(bell.epoch()).toBe(before + 1);
    expect(writer.alloc(4096, 1)).toBeDefined();
  });
});

describe('outbox and inbox with a slab', () => {
  it('wake a waiting owner once per ring\'s worth of chunks given back (lent ones of the last drain first) and once at the end of a drain, not for each chunk of less than that', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.record({ length: fc.integer({ min: SLAB_MIN_BYTES, max: 3 * SLAB_MIN_BYTES }), lend: fc.boolean() }), { minLength: 0, maxLength: 12 }), { minLength: 1, maxLength: 6 }),
        fc.constantFrom(64 << 10, 256 << 10),
        (passes, ringBytes) => {
          const { slab, owner, outbox, inbox } = slabLink(ringBytes, 8 << 20, ringBytes, 1 << 30);
          // The owner asks for a chunk again the moment it is rung (the
          // worst case: it woke, found too little back, parked again); each
          // ring is one bump of its epoch.
          const arm = (): void => void slab.wantSpace(8 << 20);
          arm();
          let lent: number[] = [];
          for (const pass of passes) {
            for (const m of pass) outbox.data(0, 1, 16, 1, new Uint8Array(m.length));
            outbox.drain();
            outbox.publish();
            // What the inbox should do: views lent last drain go back first,
            // then chunks as they are copied, a wake each time a ring's
            // worth went back since the last, and one at the end. A wake
            // rings only an owner that asked again since the last (armed).
            let expected = 0;
            let given = 0;
            let armed = true;
            const giveBack = (length: number): void => {
              given += length;
              if (given < ringBytes) return;
              if (armed) expected++;
              armed = false;
              given = 0;
            };
            for (const length of lent) giveBack(length);
            for (const m of pass) {
              armed = true;
              if (!m.lend) giveBack(m.length);
            }
            if (given > 0 && armed) expected++;
            const before = owner.epoch();
            let at = 0;
            inbox.drain({
              batch: () => {
                // Rung or not, it asks again before the next chunk comes back.
                arm();
                return pass[at++]!.lend;
              },
              close: () => {},
              finish: () => {},
              accepts: () => true,
            });
            expect(at).toBe(pass.length);
            expect(owner.epoch() - before).toBe(expected);
            lent = pass.filter((m) => m.lend).map((m) => m.length);
            // Every chunk copied is back already, and the owner knows.
            slab.reclaim();
            expect(slab.outstanding).toBe(lent.length);
            // Woken, it found its chunks, and parks again for the next ones.
            arm();
          }
          const before = owner.epoch();
          inbox.returnLent();
          expect(owner.epoch() - before).toBe(lent.length > 0 ? 1 : 0);
          slab.reclaim();
          expect(slab.outstanding).toBe(0);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('a sink that throws mid-drain: the chunks it was given go back, and the waiting owner is still woken', () => {
    const ringBytes = 256 << 10;
    const { slab, owner, outbox, inbox } = slabLink(ringBytes, 8 << 20, ringBytes, 1 << 30);
    for (let i = 0; i < 3; i++) outbox.data(0, 1, 16, 1, new Uint8Array(SLAB_MIN_BYTES));
    outbox.drain();
    outbox.publish();
    expect(slab.wantSpace(8 << 20)).toBe(false);
    const before = owner.epoch();
    let at = 0;
    const sink = {
      batch: (): boolean => {
        if (++at === 2) throw new Error('the sink gives up');
        return false;
      },
      close: () => {},
      finish: () => {},
      accepts: () => true,
    };
    expect(() => inbox.drain(sink)).toThrow('the sink gives up');
    expect(owner.epoch() - before).toBe(1);
    // The first, copied, and the second, whose sink threw, are back; the third is still unread.
    expect(slab.reclaim()).toBe(2);
    expect(slab.outstanding).toBe(1);
  });

  it('carry large batches through a slab that fills, of any size (whole pages or not), in order and byte-exact, with borrowed chunks held until the next drain', () => {
    let waited = 0;
    fc.assert(
      fc.property(
        // A slab of any size, its last page partial or not; some batches as long as the whole slab.
        fc.integer({ min: SLAB_MIN_BYTES, max: 256 << 10 }),
        fc.array(fc.record({ large: fc.boolean(), whole: fc.boolean(), length: fc.integer({ min: 0, max: 48 << 10 }), seed: fc.integer(), lend: fc.boolean(), receive: fc.boolean() }), { minLength: 1, maxLength: 30 }),
        (slabBytes, batches) => {
          const { slab, outbox, inbox, backlog } = slabLink(4096, slabBytes, 1 << 20, 1 << 20);
          const want = batches.map((b) => {
            const n = b.large ? (b.whole ? slabBytes : SLAB_MIN_BYTES + b.length) : b.length >> 6;
            const bytes = new Uint8Array(n);
            let x = b.seed | 1;
            for (let i = 0; i < n; i += 64) bytes[i] = x = (x * 1103515245 + 12345) & 0xff;
            return bytes;
          });
          let next = 0;
          let kept: { view: Uint8Array; want: Uint8Array }[] = [];
          const sink: FrameSink = {
            batch: (_s, _c, _k, _n, payload) => {
              const i = next++;
              expect(Buffer.from(payload).equals(Buffer.from(want[i]!))).toBe(true);
              if (!batches[i]!.lend) return false;
              kept.push({ view: payload, want: want[i]!.slice() });
              return true;
            },
            close: () => {},
            finish: () => {},
            accepts: () => true,
          };
          const receive = (): void => {
            // Views kept from the last drain are intact up to this one.
            for (const k of kept) expect(Buffer.from(k.view).equals(Buffer.from(k.want))).toBe(true);
            kept = [];
            inbox.drain(sink);
          };
          batches.forEach((b, i) => {
            outbox.data(0, 1, 16, 1, want[i]!);
            if (outbox.overflowFrames > 0) waited++;
            if (b.receive) {
              outbox.drain();
              outbox.publish();
              receive();
            }
          });
          for (let rounds = 0; ; rounds++) {
            const empty = outbox.drain();
            outbox.publish();
            receive();
            if (empty && next === batches.length) break;
            expect(rounds).toBeLessThan(1000);
          }
          receive();
          inbox.returnLent();
          slab.reclaim();
          expect(slab.outstanding).toBe(0);
          expect(backlog.bytes).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
    expect(waited).toBeGreaterThan(0);
  });
});
