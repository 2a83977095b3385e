// Property tests of the SPSC frame ring, on one thread: a producer and a
// consumer take turns in a random order, and a model says what each step
// must see. Frames have random sizes up to half the ring, so they
// wrap around many times in one run.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RingReader, RingWriter, createRingBuffer } from '../../src/transport/ring.ts';
import { Doorbell } from '../../src/transport/doorbell.ts';
import { HEADER_BYTES, frameBytes } from '../../src/transport/frame.ts';

type Op =
  | { op: 'reserve'; length: number; fill: number }
  | { op: 'publish' }
  | { op: 'next' }
  | { op: 'release' };

const ops = (maxPayload: number): fc.Arbitrary<Op[]> =>
  fc.array(
    fc.oneof(
      { weight: 4, arbitrary: fc.record({ op: fc.constant('reserve' as const), length: fc.integer({ min: 0, max: maxPayload }), fill: fc.integer({ min: 0, max: 255 }) }) },
      { weight: 2, arbitrary: fc.constant({ op: 'publish' as const }) },
      { weight: 4, arbitrary: fc.constant({ op: 'next' as const }) },
      { weight: 1, arbitrary: fc.constant({ op: 'release' as const }) },
    ),
    { minLength: 20, maxLength: 400, size: 'max' },
  );

/** The payload of the k-th frame: deterministic, so the consumer can check it byte for byte. */
function payload(k: number, length: number, fill: number): Uint8Array {
  const p = new Uint8Array(length);
  for (let i = 0; i < length; i++) p[i] = (fill + k * 31 + i * 7) & 0xff;
  return p;
}

/** Byte-exact comparison without the cost of a deep-equality matcher per frame. */
function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Where a frame of `length` payload bytes ends when it starts at `pos`: wrap gap included. */
function after(pos: number, length: number, capacity: number): number {
  const size = frameBytes(length);
  const tail = capacity - (pos % capacity);
  return pos + (tail < size ? tail + size : size);
}

function ring(capacity: number): { writer: RingWriter; reader: RingReader } {
  const buffer = createRingBuffer(capacity);
  return { writer: new RingWriter(buffer, Doorbell.create()), reader: new RingReader(buffer, Doorbell.create()) };
}

describe('ring', () => {
  it.each([4096, 8192])('keeps frames FIFO and byte-exact through random interleavings and wrap-around (capacity %i)', (capacity) => {
    const maxPayload = capacity / 2 - HEADER_BYTES;
    // Across all runs, the interesting cases must actually occur.
    let wraps = 0;
    let refusals = 0;
    fc.assert(
      fc.property(ops(maxPayload), (script) => {
        const { writer, reader } = ring(capacity);
        expect(writer.maxPayload).toBe(maxPayload);
        // The model: byte positions that only grow, like the ring's own.
        let write = 0; // producer's reserved position
        let released = 0; // consumer's released position (what the producer may reuse)
        let written = 0; // frames reserved
        const unpublished: Uint8Array[] = [];
        const published: Uint8Array[] = [];
        let consumed = 0; // frames read
        let read = 0; // consumer's position after the frames read
        for (const step of script) {
          switch (step.op) {
            case 'reserve': {
              const size = frameBytes(step.length);
              const tail = capacity - (write % capacity);
              const need = tail < size ? tail + size : size;
              const free = capacity - (write - released);
              const at = writer.reserve(step.length);
              if (free < need) {
                expect(at).toBe(-1);
                refusals++;
                break;
              }
              // -1 only when the ring is really full.
              expect(at).toBeGreaterThanOrEqual(0);
              expect(at % 8).toBe(0);
              expect(at + size).toBeLessThanOrEqual(capacity);
              if (tail < size) {
                expect(at).toBe(0);
                wraps++;
              }
              write += need;
              const p = payload(written++, step.length, step.fill);
              writer.view.setUint32(at, step.length, true);
              writer.bytes.set(p, at + HEADER_BYTES);
              unpublished.push(p);
              break;
            }
            case 'publish':
              writer.publish();
              published.push(...unpublished.splice(0));
              expect(writer.pending).toBe(false);
              break;
            case 'next': {
              const at = reader.next();
              if (consumed === published.length) {
                // Nothing published is unread: frames reserved but unpublished stay invisible.
                expect(at).toBe(-1);
                expect(reader.poll()).toBe(false);
                break;
              }
              expect(at).toBeGreaterThanOrEqual(0);
              const want = published[consumed++]!;
              const length = reader.view.getUint32(at, true);
              expect(length).toBe(want.length);
              expect(same(reader.bytes.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length), want)).toBe(true);
              reader.advance(length);
              read = after(read, length, capacity);
              break;
            }
            case 'release': {
              reader.release();
              // Released space is everything consumed, wrap gaps included.
              released = read;
              break;
            }
          }
        }
        // Drain: everything published arrives, in order, and then nothing.
        writer.publish();
        published.push(...unpublished.splice(0));
        while (consumed < published.length) {
          const at = reader.next();
          expect(at).toBeGreaterThanOrEqual(0);
          const want = published[consumed++]!;
          expect(reader.view.getUint32(at, true)).toBe(want.length);
          expect(same(reader.bytes.subarray(at + HEADER_BYTES, at + HEADER_BYTES + want.length), want)).toBe(true);
          reader.advance(want.length);
        }
        expect(reader.next()).toBe(-1);

      }),
      { numRuns: 200 },
    );
    expect(wraps).toBeGreaterThan(0);
    expect(refusals).toBeGreaterThan(0);
  });

  it('wraps: a long run of frames that do not divide the capacity crosses the end many times', () => {
    const { writer, reader } = ring(4096);
    let sent = 0;
    let received = 0;
    let wrapped = 0;
    let last = -1;
    for (let round = 0; round < 200; round++) {
      const length = 100 + (round % 13) * 37;
      const at = writer.reserve(length);
      expect(at).toBeGreaterThanOrEqual(0);
      if (at < last) wrapped++;
      last = at;
      writer.view.setUint32(at, length, true);
      writer.bytes.set(payload(sent++, length, 1), at + HEADER_BYTES);
      writer.publish();
      const r = reader.next();
      expect(r).toBe(at);
      expect(reader.bytes.subarray(r + HEADER_BYTES, r + HEADER_BYTES + length)).toEqual(payload(received++, length, 1));
      reader.advance(length);
      reader.release();
    }
    expect(wrapped).toBeGreaterThan(10);
  });

  it('a full ring refuses until the consumer releases, and wantSpace reports the freed room', () => {
    const { writer, reader } = ring(4096);
    const length = writer.maxPayload;
    let frames = 0;
    while (writer.reserve(length) >= 0) frames++;
    expect(frames).toBe(2); // 2 frames of half a ring each fill it exactly
    expect(writer.wantSpace(length)).toBe(false);
    writer.publish();
    expect(reader.next()).toBe(0);
    reader.advance(length);
    expect(writer.reserve(length)).toBe(-1); // consumed but not released: still full
    reader.release();
    expect(writer.wantSpace(length)).toBe(true);
    expect(writer.reserve(length)).toBe(0);
  });

  it('a held frame (filled later, as the router reads it off a socket) is not published until settled, nor anything behind it; unreserved, its room is free again', () => {
    const { writer, reader } = ring(4096);
    const first = writer.reserve(100);
    writer.view.setUint32(first, 100, true);
    // Held across the end of the ring: its wrap marker must stay unpublished too.
    const filler = writer.reserve(3000);
    writer.view.setUint32(filler, 3000, true);
    writer.publish();
    expect(reader.next()).toBe(first);
    reader.advance(100);
    expect(reader.next()).toBe(filler);
    reader.advance(3000);
    reader.release();
    const held = writer.reserveHeld(1500);
    expect(held).toBe(0); // wrapped
    writer.publish();
    expect(reader.next()).toBe(-1);
    writer.unreserve();
    const again = writer.reserveHeld(1500);
    expect(again).toBe(0);
    writer.view.setUint32(again, 1500, true);
    writer.bytes.set(payload(7, 1500, 1), again + HEADER_BYTES);
    writer.publish();
    expect(reader.next()).toBe(-1);
    writer.settle();
    writer.publish();
    expect(reader.next()).toBe(0);
    expect(reader.bytes.subarray(HEADER_BYTES, HEADER_BYTES + 1500)).toEqual(payload(7, 1500, 1));
  });

  it('refuses capacities that are not a power of two in range', () => {
    expect(() => createRingBuffer(5000)).toThrow(/power of two/);
    expect(() => createRingBuffer(1024)).toThrow(/power of two/);
  });
});

describe('doorbell', () => {
  it('rings while any of its owner\'s waits is pending, and not after a dead owner\'s waits are cleared', () => {
    const bell = Doorbell.create();
    const producer = new Doorbell(bell.buffer);
    producer.ring();
    expect(bell.epoch()).toBe(0);
    bell.announce();
    bell.announce();
    bell.settle();
    producer.ring();
    expect(bell.epoch()).toBe(1); // one wait still pending: it must be woken
    // The owner is terminated with that wait pending; its replacement gets the bell.
    bell.clearWaits();
    producer.ring();
    expect(bell.epoch()).toBe(1);
  });
});
