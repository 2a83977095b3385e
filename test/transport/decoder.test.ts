// The TCP decoder puts a frame that spans socket chunks together in one
// buffer it reuses, frame after frame: no fresh memory per large frame.

import { describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../src/transport/decoder.ts';
import { HEADER_BYTES, Kind, writeHeader } from '../../src/transport/frame.ts';

function frame(length: number, seq: number, fill: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + length);
  writeHeader(new DataView(out.buffer), 0, { length, channel: 0, source: 0, target: 1, seq, kind: Kind.DATA, codec: 16, flags: 0, count: 1, total: length });
  out.fill(fill, HEADER_BYTES);
  return out;
}

describe('the frame decoder', () => {
  it('assembles frames that span chunks in one reused buffer, each intact while its handler runs', () => {
    const seen: { buffer: ArrayBufferLike; intact: boolean }[] = [];
    const decoder = new FrameDecoder({ peers: 2, maxFrame: 1 << 20, maxBatch: 1 << 20 }, (h, payload) => {
      seen.push({ buffer: payload.buffer, intact: payload.length === h.length && payload.every((b) => b === (h.seq & 255)) });
    });
    // Socket-sized chunks (64 KiB) of three 300 KiB frames and a smaller one.
    const stream = Buffer.concat([frame(300 << 10, 1, 1), frame(300 << 10, 2, 2), frame(100 << 10, 3, 3), frame(300 << 10, 4, 4)]);
    for (let at = 0; at < stream.length; at += 65536) decoder.push(stream.slice(at, at + 65536));
    expect(seen.map((s) => s.intact)).toEqual([true, true, true, true]);
    expect(new Set(seen.map((s) => s.buffer)).size).toBe(1);
    expect(decoder.buffered).toBe(0);
  });
});
