// Detached bytes in msgpack batches (a large task output's path): the batch
// is framed (0xc1, lengths, body, parts 8-aligned), laid out in parts for
// the outbox, and decodes to the same messages with each part an owned
// copy, from ordinary memory or from shared memory (a slab chunk).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { msgpack, Detached } from '../../src/allocator/codec-msgpack.ts';
import { concat } from '../../src/transport/outbox.ts';
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
