// FrameDecoder, the parser of every byte that arrives over TCP: property
// tests with fast-check. Whatever the bytes and however they are chunked,
// it either yields exactly the frames that were sent, in order, or fails
// with a ProtocolError; it never holds more than one frame of maxFrame bytes.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FrameDecoder, type DecoderLimits } from '../../src/transport/decoder.ts';
import { HEADER_BYTES, Kind, Flags, writeHeader, type FrameHeader } from '../../src/transport/frame.ts';
import { ProtocolError } from '../../src/errors.ts';
import { SocketReads } from '../../src/transport/reads.ts';

const limits: DecoderLimits = { peers: 6, maxFrame: 300, maxBatch: 4096 };
const BOUND = HEADER_BYTES + limits.maxFrame;

interface Frame {
  header: FrameHeader;
  payload: Uint8Array;
}

const worker = fc.integer({ min: 0, max: limits.peers - 1 });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const common = { channel: u32, source: worker, target: worker, seq: u32, codec: fc.integer({ min: 0, max: 255 }) };
const pick = (f: { channel: number; source: number; target: number; seq: number; codec: number }) =>
  ({ channel: f.channel, source: f.source, target: f.target, seq: f.seq, codec: f.codec });

/** A frame validateHeader accepts, of any kind. */
const frame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ ...common, payload: fc.uint8Array({ minLength: 0, maxLength: limits.maxFrame }) }).chain((f) =>
    fc.integer({ min: 1, max: f.payload.length + 1 }).map((count) => ({
      header: { ...pick(f), length: f.payload.length, kind: Kind.DATA, flags: 0, count, total: f.payload.length },
      payload: f.payload,
    })),
  ),
  fc.record({ ...common, payload: fc.uint8Array({ minLength: 0, maxLength: limits.maxFrame }), last: fc.boolean(), extra: fc.integer({ min: 0, max: 1000 }) }).map((f) => ({
    header: { ...pick(f), length: f.payload.length, kind: Kind.PART, flags: f.last ? Flags.LAST : 0, count: 1, total: f.payload.length + f.extra },
    payload: f.payload,
  })),
  fc.record({ ...common, kind: fc.constantFrom(Kind.CLOSE, Kind.FIN, Kind.HEARTBEAT, Kind.GOODBYE) }).map((f) => ({
    header: { ...pick(f), kind: f.kind, length: 0, flags: 0, count: 0, total: 0 },
    payload: new Uint8Array(0),
  })),
  fc.record({ ...common, reason: fc.string({ maxLength: 60 }) }).map((f) => {
    const payload = new TextEncoder().encode(f.reason);
    return { header: { ...pick(f), length: payload.length, kind: Kind.ABORT, flags: 0, count: 0, total: 0 }, payload };
  }),
);

function encode(frames: Frame[]): Uint8Array {
  const out = new Uint8Array(frames.reduce((n, f) => n + HEADER_BYTES + f.payload.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const f of frames) {
    writeHeader(view, at, f.header);
    out.set(f.payload, at + HEADER_BYTES);
    at += HEADER_BYTES + f.payload.length;
  }
  return out;
}

/** Cuts `bytes` at the given points (any order, duplicates allowed). */
function chunk(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.slice(from, p)); // slice: each chunk has a buffer of its own, as from a socket
    from = p;
  }
  return out;
}

/** Feeds the chunks; returns the frames seen and the error, checking the memory bound after every chunk. */
function feed(chunks: Uint8Array[]): { frames: Frame[]; error: unknown } {
  const frames: Frame[] = [];
  // The payload may view the chunk: copy it, as the router does when it must keep one.
  const decoder = new FrameDecoder(limits, (header, payload) => frames.push({ header, payload: payload.slice() }));
  for (const c of chunks) {
    try {
      decoder.push(c);
    } catch (error) {
      return { frames, error };
    } finally {
      expect(decoder.buffered).toBeLessThanOrEqual(BOUND);
    }
  }
  return { frames, error: undefined };
}

/**
 * Reads `bytes` as Node reads a dialled link (reads.ts): each read into the
 * buffer the reads gave last, at most its length and the next of `sizes`;
 * the decoder offers a body in progress once `min` bytes of it remain.
 * Returns the error that stopped it, checking the memory bound after every read.
 */
function readAsDialled(decoder: FrameDecoder, bytes: Uint8Array, sizes: number[], min: number): unknown {
  const reads = new SocketReads();
  reads.attach({ bytes: (c) => decoder.push(c), into: () => decoder.into(min), filled: (n) => decoder.filled(n) });
  let buffer = reads.onread.buffer as () => Uint8Array;
  let into = buffer();
  for (let at = 0, k = 0; at < bytes.length; k++) {
    const n = Math.min(bytes.length - at, into.length, 1 + (sizes.length > 0 ? sizes[k % sizes.length]! : bytes.length));
    into.set(bytes.subarray(at, at + n));
    at += n;
    try {
      reads.onread.callback(n, into);
    } catch (error) {
      return error;
    } finally {
      expect(decoder.buffered).toBeLessThanOrEqual(BOUND);
    }
    buffer = reads.onread.buffer as () => Uint8Array;
    into = buffer();
  }
  return undefined;
}

/**
 * A decoder whose placer gives a buffer of its own when the next of
 * `answers` says so: the frames it yields, and the buffers given and not
 * yet filled. A placed frame must arrive in the very buffer the placer
 * gave, and only then.
 */
function placing(answers: boolean[]): { decoder: FrameDecoder; got: Frame[]; given: Uint8Array[] } {
  const got: Frame[] = [];
  const given: Uint8Array[] = [];
  let asked = 0;
  const decoder = new FrameDecoder(
    limits,
    (header, payload, placed) => {
      expect(placed).toBe(given.length > 0 && payload === given[0]);
      if (placed) given.shift();
      got.push({ header, payload: payload.slice() });
    },
    (header) => {
      if (!answers[asked++ % answers.length]) return undefined;
      const into = new Uint8Array(header.length);
      given.push(into);
      return into;
    },
  );
  return { decoder, got, given };
}

describe('FrameDecoder', () => {
  it('any chunking of a valid stream yields the same frames, in order', () => {
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, cuts) => {
        const { frames: got, error } = feed(chunk(encode(frames), cuts));
        expect(error).toBeUndefined();
        expect(got).toEqual(frames);
      }),
      { numRuns: 500 },
    );
  });

  it('with a placer, a frame that spans chunks is read straight into the buffer it gives (placed), the others as before; any chunking yields the same frames', () => {
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 40 }), fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), (frames, cuts, answers) => {
        const { decoder, got, given } = placing(answers);
        for (const c of chunk(encode(frames), cuts)) {
          decoder.push(c);
          // Placed bytes are in the placer's buffer, not the decoder's.
          if (decoder.placing) expect(decoder.buffered).toBe(0);
        }
        expect(got).toEqual(frames);
        expect(given).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });

  it('read as a dialled link reads (each read straight into the rest of the body in progress where the decoder offers it): any split into reads yields the same frames, placed ones in the placer\'s buffer', () => {
    fc.assert(
      fc.property(
        fc.array(frame, { maxLength: 20 }),
        fc.array(fc.nat(99), { maxLength: 40 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 120 }),
        (frames, sizes, answers, min) => {
          const { decoder, got, given } = placing(answers);
          let straight = 0;
          const into = decoder.into.bind(decoder);
          // Counts the reads that went straight to a body: they must be at least `min` long when offered.
          decoder.into = (m) => {
            const body = into(m);
            if (body !== undefined) {
              expect(body.length).toBeGreaterThanOrEqual(min);
              straight++;
            }
            return body;
          };
          expect(readAsDialled(decoder, encode(frames), sizes, min)).toBeUndefined();
          expect(got).toEqual(frames);
          expect(given).toEqual([]);
          // A body longer than `min` past the read that brought its header in (at most 100 bytes of it) is read straight to its place.
          if (frames.some((f) => f.payload.length >= 100 + min)) expect(straight).toBeGreaterThan(0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('arbitrary and mutated bytes read as a dialled link reads: frames before the damage intact, then at most a ProtocolError, within the memory bound', () => {
    fc.assert(
      fc.property(
        fc.array(frame, { minLength: 1, maxLength: 10 }),
        fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 8 }),
        fc.array(fc.nat(400), { maxLength: 20 }),
        fc.integer({ min: 1, max: 120 }),
        (frames, mutations, sizes, min) => {
          const bytes = encode(frames);
          for (const m of mutations) bytes[m.at % bytes.length] = m.value;
          const first = Math.min(bytes.length, ...mutations.map((m) => m.at % bytes.length));
          const got: Frame[] = [];
          const decoder = new FrameDecoder(limits, (header, payload) => got.push({ header, payload: payload.slice() }));
          const error = readAsDialled(decoder, bytes, sizes, min);
          if (error !== undefined) expect(error).toBeInstanceOf(ProtocolError);
          let end = 0;
          let intact = 0;
          while (intact < frames.length && (end += HEADER_BYTES + frames[intact]!.payload.length) <= first) intact++;
          expect(got.slice(0, intact)).toEqual(frames.slice(0, intact));
          if (mutations.length === 0) expect(got).toEqual(frames);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('arbitrary bytes, arbitrarily chunked: frames or a ProtocolError, nothing else, within the memory bound', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.array(fc.nat(), { maxLength: 20 }), (bytes, cuts) => {
        const { error } = feed(chunk(bytes, cuts));
        if (error !== undefined) expect(error).toBeInstanceOf(ProtocolError);
      }),
      { numRuns: 1000 },
    );
  });

  it('mutated valid streams: the frames before the damage come out intact, then at most a ProtocolError', () => {
    fc.assert(
      fc.property(
        fc.array(frame, { minLength: 1, maxLength: 10 }),
        fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (frames, mutations, cuts) => {
          const bytes = encode(frames);
          for (const m of mutations) bytes[m.at % bytes.length] = m.value;
          const first = Math.min(...mutations.map((m) => m.at % bytes.length));
          const { frames: got, error } = feed(chunk(bytes, cuts));
          if (error !== undefined) expect(error).toBeInstanceOf(ProtocolError);
          // Every frame that ends before the first changed byte is decoded as sent.
          let end = 0;
          let intact = 0;
          while (intact < frames.length && (end += HEADER_BYTES + frames[intact]!.payload.length) <= first) intact++;
          expect(got.slice(0, intact)).toEqual(frames.slice(0, intact));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('an oversized length is refused as soon as the header is in, before any payload is buffered', () => {
    const h = Buffer.alloc(HEADER_BYTES);
    writeHeader(new DataView(h.buffer, h.byteOffset, HEADER_BYTES), 0, {
      length: 0xffffffff, channel: 0, source: 0, target: 1, seq: 0, kind: Kind.DATA, codec: 0, flags: 0, count: 1, total: 0xffffffff,
    });
    const decoder = new FrameDecoder(limits, () => {});
    decoder.push(h.subarray(0, 31));
    expect(() => decoder.push(h.subarray(31))).toThrow(/frame length 4294967295 exceeds the limit of 300 bytes/);
    expect(decoder.buffered).toBeLessThanOrEqual(HEADER_BYTES);
    // A failed decoder stays failed.
    expect(() => decoder.push(new Uint8Array(1))).toThrow(ProtocolError);
  });

  it('an exception in the frame handler surfaces as a ProtocolError with the cause', () => {
    const decoder = new FrameDecoder(limits, () => {
      throw new TypeError('handler broke');
    });
    const bytes = encode([{ header: { length: 0, channel: 0, source: 0, target: 0, seq: 0, kind: Kind.FIN, codec: 0, flags: 0, count: 0, total: 0 }, payload: new Uint8Array(0) }]);
    let caught: unknown;
    try {
      decoder.push(bytes);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ProtocolError);
    expect((caught as Error).cause).toBeInstanceOf(TypeError);
  });
});
