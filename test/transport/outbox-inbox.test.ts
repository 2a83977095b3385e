// Property tests of a sender's Outbox and a receiver's Inbox on one ring:
// random batches, some larger than a frame (so they travel as PART runs),
// sent faster than they are received (so the ring fills and overflow is
// used). Every batch must arrive once, in order, byte for byte. And a
// corrupted header must surface as a ProtocolError, never another exception.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RingReader, RingWriter, createRingBuffer } from '../../src/transport/ring.ts';
import { Doorbell } from '../../src/transport/doorbell.ts';
import { Outbox } from '../../src/transport/outbox.ts';
import { Inbox, type FrameSink } from '../../src/transport/inbox.ts';
import { Kind } from '../../src/transport/frame.ts';
import { ProtocolError } from '../../src/index.ts';

const CAPACITY = 4096;
const MAX_BATCH = 1 << 20;

type Event =
  | { kind: 'batch'; channel: number; codec: number; count: number; payload: Uint8Array }
  | { kind: 'close'; channel: number }
  | { kind: 'finish' };

type Step =
  | { op: 'data'; channel: number; codec: number; length: number; seed: number }
  | { op: 'close'; channel: number }
  | { op: 'flush' }
  | { op: 'receive' }
  | { op: 'block'; channel: number };

/**
 * One sender (worker 0) and one receiver on one ring. `peers` is 1 so that
 * any change to a source or target field names a worker that does not exist.
 */
function link() {
  const buffer = createRingBuffer(CAPACITY);
  const writer = new RingWriter(buffer, Doorbell.create());
  const backlog = { bytes: 0, cap: Infinity, overflow: (): never => { throw new Error('no cap here'); } };
  const outbox = new Outbox(writer, 0, new Uint32Array(1), backlog);
  const inbox = new Inbox(new RingReader(buffer, Doorbell.create()), 0, 1, MAX_BATCH);
  const events: Event[] = [];
  /** Channels whose batches the sink does not take now (a receiver with enough unread). */
  const blocked = new Set<number>();
  const sink: FrameSink = {
    batch: (_source, channel, codec, count, payload) => {
      events.push({ kind: 'batch', channel, codec, count, payload: payload.slice() });
      return false;
    },
    close: (_source, channel) => events.push({ kind: 'close', channel }),
    finish: () => events.push({ kind: 'finish' }),
    accepts: (channel) => !blocked.has(channel),
  };
  return { buffer, writer, outbox, inbox, events, sink, blocked, backlog };
}

function bytes(length: number, seed: number): Uint8Array {
  const b = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const steps: fc.Arbitrary<Step[]> = fc.array(
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant('data' as const),
        channel: fc.integer({ min: 0, max: 3 }),
        codec: fc.integer({ min: 1, max: 30 }),
        // Up to 3x the largest frame payload (2016 bytes here): many batches fragment.
        length: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 6000 })),
        seed: fc.integer(),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('close' as const), channel: fc.integer({ min: 0, max: 3 }) }) },
    { weight: 2, arbitrary: fc.constant({ op: 'flush' as const }) },
    { weight: 2, arbitrary: fc.constant({ op: 'receive' as const }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('block' as const), channel: fc.integer({ min: 0, max: 3 }) }) },
  ),
  { minLength: 1, maxLength: 120, size: 'max' },
);

describe('outbox and inbox', () => {
  it('deliver every batch once, in order, byte-exact, through PART runs, overflow and a receiver that leaves channels in the ring', () => {
    let overflowSeen = 0;
    let fragmented = 0;
    let stalls = 0;
    fc.assert(
      fc.property(steps, (script) => {
        const { outbox, inbox, events, sink, blocked, backlog } = link();
        const sent: Event[] = [];
        for (const s of script) {
          switch (s.op) {
            case 'data': {
              const payload = bytes(s.length, s.seed);
              const count = 1 + (s.seed >>> 0) % (s.length + 1);
              outbox.data(0, s.channel, s.codec, count, payload);
              // The sender may reuse its buffer at once (batchers do): overflow must have copied it.
              const copy = payload.slice();
              payload.fill(0xee);
              sent.push({ kind: 'batch', channel: s.channel, codec: s.codec, count, payload: copy });
              if (s.length > outbox.writer.maxPayload) fragmented++;
              break;
            }
            case 'close':
              outbox.control(0, s.channel, Kind.CLOSE);
              sent.push({ kind: 'close', channel: s.channel });
              break;
            case 'flush':
              outbox.drain();
              outbox.publish();
              break;
            case 'receive': {
              const before = events.length;
              inbox.drain(sink);
              // A stall leaves the frame for a blocked channel where it is; nothing after it passes.
              if (inbox.stalled) {
                stalls++;
                const next = sent[events.length];
                expect(next?.kind === 'batch' && blocked.has(next.channel)).toBe(true);
              }
              expect(events.length).toBeGreaterThanOrEqual(before);
              break;
            }
            case 'block':
              if (blocked.has(s.channel)) blocked.delete(s.channel);
              else blocked.add(s.channel);
              break;
          }
          if (outbox.overflowFrames > 0) overflowSeen++;
          expect(backlog.bytes).toBe(outbox.overflowBytes);
        }
        blocked.clear();
        outbox.control(0, 0, Kind.FIN);
        sent.push({ kind: 'finish' });
        // Finish: alternate flushing and receiving until overflow is empty.
        for (let rounds = 0; ; rounds++) {
          const empty = outbox.drain();
          outbox.publish();
          inbox.drain(sink);
          if (empty) break;
          expect(rounds).toBeLessThan(10_000);
        }
        inbox.drain(sink);
        expect(outbox.overflowFrames).toBe(0);
        expect(outbox.overflowBytes).toBe(0);
        expect(events.length).toBe(sent.length);
        for (let i = 0; i < sent.length; i++) {
          const got = events[i]!;
          const want = sent[i]!;
          expect(got.kind).toBe(want.kind);
          if (got.kind === 'batch' && want.kind === 'batch') {
            expect([got.channel, got.codec, got.count]).toEqual([want.channel, want.codec, want.count]);
            expect(same(got.payload, want.payload)).toBe(true);
          } else if (got.kind === 'close' && want.kind === 'close') {
            expect(got.channel).toBe(want.channel);
          }
        }
      }),
      { numRuns: 200 },
    );
    expect(overflowSeen).toBeGreaterThan(0);
    expect(fragmented).toBeGreaterThan(0);
    expect(stalls).toBeGreaterThan(0);
  });

  it('views a sink keeps stay intact until the next drain, while the producer keeps writing, also once the positions pass 2^31', () => {
    let lentSeen = 0;
    fc.assert(
      fc.property(
        fc.array(fc.record({ length: fc.integer({ min: 0, max: 1200 }), seed: fc.integer(), lend: fc.boolean() }), { minLength: 1, maxLength: 60 }),
        // Where the ring's byte counters start: 0, or shortly before they turn
        // negative as int32 (after 2 GiB of traffic), an 8-aligned position.
        fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4 * CAPACITY }).map((k) => (2 ** 31 - k * 8) | 0)),
        (batches, origin) => {
          const buffer = createRingBuffer(CAPACITY);
          // WRITE and READ, as a ring that already carried `origin` bytes.
          const control = new Int32Array(buffer, 0, 64);
          Atomics.store(control, 0, origin);
          Atomics.store(control, 16, origin);
          const outbox = new Outbox(new RingWriter(buffer, Doorbell.create()), 0, new Uint32Array(1), { bytes: 0, cap: Infinity, overflow: () => { throw new Error('no cap here'); } });
          const inbox = new Inbox(new RingReader(buffer, Doorbell.create()), 0, 1, MAX_BATCH);
          const want = batches.map((b) => bytes(b.length, b.seed));
          let next = 0;
          let kept: { view: Uint8Array; want: Uint8Array }[] = [];
          const sink: FrameSink = {
            batch: (_source, _channel, _codec, _count, payload, owned) => {
              const i = next++;
              expect(same(payload, want[i]!)).toBe(true);
              if (!batches[i]!.lend || owned) return false;
              kept.push({ view: payload, want: want[i]! });
              lentSeen++;
              return true;
            },
            close: () => {},
            finish: () => {},
            accepts: () => true,
          };
          const drain = (): void => {
            // Views from the previous drain expire at this call; until then
            // the producer must not have overwritten them.
            for (const k of kept) expect(same(k.view, k.want)).toBe(true);
            kept = [];
            inbox.drain(sink);
          };
          want.forEach((payload, i) => {
            outbox.data(0, i, 1, 1, payload);
            outbox.drain();
            outbox.publish();
            if (i % 3 === 2) drain();
          });
          for (let rounds = 0; next < want.length; rounds++) {
            outbox.drain();
            outbox.publish();
            drain();
            expect(rounds).toBeLessThan(10_000);
          }
        },
      ),
      { numRuns: 200 },
    );
    expect(lentSeen).toBeGreaterThan(0);
  });

  /** Sends a few batches (one fragmented) and publishes them; returns where each frame header starts. */
  function loaded(): ReturnType<typeof link> & { headers: number[] } {
    const l = link();
    // Frames: DATA(10), PART(2016), PART(984, last), DATA(0), DATA(200), CLOSE.
    const sizes = [10, 3000, 0, 200];
    for (let i = 0; i < sizes.length; i++) l.outbox.data(0, i, 1, 1, bytes(sizes[i]!, i + 7));
    l.outbox.control(0, 2, Kind.CLOSE);
    l.outbox.publish();
    // Walk the frames the way the reader will, without consuming them.
    const headers: number[] = [];
    let at = 0;
    for (let f = 0; f < l.outbox.sentFrames; f++) {
      headers.push(at);
      at += (32 + l.writer.view.getUint32(at, true) + 7) & ~7;
    }
    expect(l.outbox.overflowFrames).toBe(0);
    return { ...l, headers };
  }

  it('a corrupted header byte yields a ProtocolError or an intact delivery, never another exception', () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 0, max: 31 }), fc.integer({ min: 1, max: 255 }), (pick, offset, xor) => {
        const { buffer, headers, inbox, sink } = loaded();
        const frame = headers[pick % headers.length]!;
        const data = new Uint8Array(buffer, 256);
        data[frame + offset]! ^= xor;
        try {
          inbox.drain(sink);
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a corrupted length, source, target or sequence number is always a ProtocolError', () => {
    // Fields the receiver can check on its own: length (0..3), source (8..11),
    // target (12..15), seq (16..19). Frames 0 and 4 are DATA with payload,
    // where length must equal total; frame 5 is a CLOSE, which carries none.
    fc.assert(
      fc.property(
        fc.constantFrom(0, 4, 5),
        fc.constantFrom(0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19),
        fc.integer({ min: 1, max: 255 }),
        (pick, offset, xor) => {
          const { buffer, headers, inbox, sink } = loaded();
          const data = new Uint8Array(buffer, 256);
          data[headers[pick]! + offset]! ^= xor;
          expect(() => inbox.drain(sink)).toThrow(ProtocolError);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a corrupted PART length that sends the reader to the end of the ring is a ProtocolError', () => {
    // One full DATA frame, then a PART run whose first frame ends the ring
    // exactly. Shortening that PART's length by 8 bytes leaves the reader
    // 8 bytes before the end, where no header fits.
    const { buffer, outbox, inbox, sink } = link();
    const max = outbox.writer.maxPayload;
    outbox.data(0, 1, 1, 1, bytes(max, 1));
    outbox.data(0, 1, 1, 1, bytes(max + 500, 9));
    outbox.publish();
    const view = new DataView(buffer, 256);
    const part = max + 32;
    expect(view.getUint8(part + 20)).toBe(Kind.PART);
    view.setUint32(part, max - 8, true);
    expect(() => inbox.drain(sink)).toThrow(ProtocolError);
  });

  it('a frame out of sequence names the frames lost or reordered', () => {
    const { buffer, headers, inbox, sink } = loaded();
    new DataView(buffer, 256).setUint32(headers[1]! + 16, 7, true);
    expect(() => inbox.drain(sink)).toThrow(/frame 7 from worker 0 arrived where frame 1 was expected/);
  });
});
