// Detached bytes in msgpack batches (a large task output's path): the batch
// is framed (0xc1, lengths, body, parts 8-aligned), laid out in parts for
// the outbox, and decodes to the same messages with each part an owned
// copy, from ordinary memory or from shared memory (a slab chunk).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { msgpack, msgpackr, Detached } from '../../src/allocator/codec-msgpack.ts';
import { concat } from '../../src/transport/parts.ts';
import { CodecError } from '../../src/index.ts';

describe('detached bytes in a msgpack batch', () => {
  it('round-trip beside ordinary values, each part arriving as an owned copy of exactly its bytes', () => {
    const codec = msgpack<unknown>();
    fc.assert(
      fc.property(
        fc.array(fc.record({ id: fc.integer(), bytes: fc.option(fc.uint8Array({ maxLength: 300 }), { nil: undefined }), note: fc.string({ maxLength: 8 }) }), { minLength: 1, maxLength: 12 }),
        fc.boolean(),
        (messages, shared) => {
          const batcher = codec.batcher();
          for (const m of messages) batcher.add({ ...m, bytes: m.bytes === undefined ? undefined : new Detached(m.bytes) });
          const parts = batcher.takeParts!();
          const detached = messages.filter((m) => m.bytes !== undefined).length;
          expect(parts.length === 1).toBe(detached === 0);
          let payload = concat(parts);
          if (shared) {
            const sab = new Uint8Array(new SharedArrayBuffer(payload.length));
            sab.set(payload);
            payload = sab;
          }
          const got = codec.decode(payload, messages.length, false) as { id: number; bytes?: Uint8Array; note: string }[];
          got.forEach((g, i) => {
            const want = messages[i]!;
            expect(g.id).toBe(want.id);
            expect(g.note).toBe(want.note);
            if (want.bytes === undefined) expect(g.bytes).toBeUndefined();
            else {
              expect(g.bytes).toBeInstanceOf(Uint8Array);
              expect([...g.bytes!]).toEqual([...want.bytes]);
              expect(g.bytes!.buffer).toBeInstanceOf(ArrayBuffer);
              expect(g.bytes!.buffer.byteLength).toBe(want.bytes.length);
            }
          });
        },
      ),
    );
  });

  it('packed on its own (outside a batch), a Detached value carries its bytes inline', () => {
    const codec = msgpack<unknown>();
    const batcher = codec.batcher();
    batcher.add(new Detached(new Uint8Array([1, 2, 3])));
    const [d] = codec.decode(batcher.take(), 1, false) as Uint8Array[];
    expect([...d!]).toEqual([1, 2, 3]);
  });

  it('a framed batch cut short, or naming a part it does not carry, is a CodecError', () => {
    const codec = msgpack<unknown>();
    const batcher = codec.batcher();
    batcher.add({ a: new Detached(new Uint8Array(100).fill(9)) });
    const whole = concat(batcher.takeParts!());
    for (const cut of [4, 16, whole.length - 50]) expect(() => codec.decode(whole.subarray(0, cut), 1, false)).toThrow(CodecError);
    // Claim no parts: the body's reference to part 0 has nothing to name.
    const none = whole.slice();
    new DataView(none.buffer).setUint32(8, 0, true);
    expect(() => codec.decode(none, 1, false)).toThrow(/refers to detached bytes #0 it does not carry/);
  });
});

// Large binary fields of users' own messages ({ id, pixels }) travel the
// same way, detached from the batch: one copy into the slab, one out.
const DETACH = 64 << 10;
const KINDS = [Buffer, Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array] as unknown as (Uint8ArrayConstructor | BufferConstructor)[] & { BYTES_PER_ELEMENT: number }[];

/** A typed array of kind `k`, `elements` long, at `offset` elements into a larger buffer of seeded bytes. */
function view(k: number, elements: number, offset: number, seed: number): ArrayBufferView {
  const kind = KINDS[k]!;
  const size = (kind as Uint8ArrayConstructor).BYTES_PER_ELEMENT;
  const bytes = new Uint8Array((offset + elements + 1) * size);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (seed + i * 13) & 255;
  return kind === Buffer ? Buffer.from(bytes.buffer, offset, elements) : new (kind as Uint8ArrayConstructor)(bytes.buffer, offset * size, elements);
}

/**
 * The bytes under `v`, compared with Buffer's equals: a deep equality of the
 * values spread into arrays took 135 s for 60 runs of fields of 64 KiB and
 * more at load 20, past the test's timeout.
 */
const bytesOf = (v: ArrayBufferView): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

describe('large binary fields of a msgpack message', () => {
  it('detach at 64 KiB and round-trip byte-exact as the same kind over a buffer of their own, beside small ones encoded inline, from ordinary or shared memory', () => {
    const codec = msgpack<unknown>();
    const field = fc.record({
      kind: fc.integer({ min: 0, max: KINDS.length - 1 }),
      // Around the threshold, and well under it.
      bytes: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: DETACH - 16, max: DETACH + 4096 })),
      offset: fc.integer({ min: 0, max: 3 }),
      seed: fc.integer({ min: 0, max: 255 }),
    });
    fc.assert(
      fc.property(fc.array(fc.record({ id: fc.integer(), fields: fc.array(field, { maxLength: 3 }) }), { minLength: 1, maxLength: 4 }), fc.boolean(), (specs, shared) => {
        const messages = specs.map((s) => ({
          id: s.id,
          fields: s.fields.map((f) => view(f.kind, Math.floor(f.bytes / (KINDS[f.kind] as Uint8ArrayConstructor).BYTES_PER_ELEMENT), f.offset, f.seed)),
        }));
        const batcher = codec.batcher();
        for (const m of messages) batcher.add(m);
        const parts = batcher.takeParts!();
        const large = messages.flatMap((m) => m.fields).filter((v) => v.byteLength >= DETACH);
        // The body first, then each large field's bytes as they are (and padding).
        expect(parts.filter((p) => large.some((v) => p.buffer === v.buffer)).length).toBe(large.length);
        let payload = concat(parts);
        if (shared) {
          const sab = new Uint8Array(new SharedArrayBuffer(payload.length));
          sab.set(payload);
          payload = sab;
        }
        const got = codec.decode(payload, messages.length, false) as typeof messages;
        got.forEach((g, i) => {
          expect(g.id).toBe(messages[i]!.id);
          expect(g.fields.length).toBe(messages[i]!.fields.length);
          g.fields.forEach((v, j) => {
            const want = messages[i]!.fields[j]!;
            expect(v.constructor).toBe(want.constructor);
            expect(bytesOf(v).equals(bytesOf(want)), `message ${i}, field ${j}: ${want.byteLength} bytes of ${want.constructor.name}`).toBe(true);
            expect(v.buffer).toBeInstanceOf(ArrayBuffer);
            expect(v.byteOffset).toBe(0);
          });
        });
      }),
      { numRuns: 60 },
    );
  });

  it('outside a batch, and under the threshold, typed arrays are written exactly as msgpackr writes them', async () => {
    // The msgpackr weft loads (its CommonJS build, where weft's extensions
    // are registered): `import('msgpackr')` would load its ES module build,
    // a second copy without them, whose own writer puts a typed array of
    // wider elements into a bin element by element.
    const { Packr } = msgpackr();
    const plain = new Packr({ moreTypes: true });
    // bin for a Buffer; the 't' extension, type code, then the bytes for the others.
    expect([...plain.pack(Buffer.from([1, 2, 3]))]).toEqual([0xc4, 3, 1, 2, 3]);
    expect([...plain.pack(new Float32Array([1.5]))]).toEqual([0xc7, 5, 0x74, 7, 0, 0, 0xc0, 0x3f]);
    expect([...plain.pack(new Uint8Array(70_000))].slice(0, 7)).toEqual([0xc9, 0, 1, 0x11, 0x71, 0x74, 1]);
    expect([...new Packr({ moreTypes: false }).pack(new Int16Array([-1]))]).toEqual([0xc4, 2, 0xff, 0xff]);
    const codec = msgpack<unknown>();
    const batcher = codec.batcher();
    batcher.add({ small: new Uint16Array([1, 2]) });
    expect(batcher.takeParts!().length).toBe(1);
  });
});
