// Binary task outputs of 64 KiB and more travel detached from their batch
// (to a coordinator in the same process, through the slab): each kind
// arrives as itself, with exactly its bytes, over a buffer of its own.

import { describe, expect, it } from 'vitest';
import { Runtime } from '../../src/runtime/index.ts';
import { LargeBinary, pattern, type Kind } from './fixtures/large-outputs.ts';

const operations = new URL('./fixtures/large-outputs.ts', import.meta.url);

function bytesOf(v: ArrayBuffer | ArrayBufferView): Buffer {
  return v instanceof ArrayBuffer ? Buffer.from(v) : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

describe('large binary outputs', () => {
  it('arrive as the kind returned, byte for byte, each over an ArrayBuffer of just its bytes', async () => {
    await using runtime = await Runtime.inMemory({ workers: 2, operations });
    const kinds: [Kind, (v: unknown) => boolean][] = [
      ['Float64Array', (v) => v instanceof Float64Array],
      ['Buffer', (v) => Buffer.isBuffer(v)],
      ['DataView', (v) => v instanceof DataView],
      ['ArrayBuffer', (v) => v instanceof ArrayBuffer],
      ['view', (v) => v instanceof Uint8Array && !Buffer.isBuffer(v)],
    ];
    const sizes = [64 << 10, 3 << 20];
    const inputs = kinds.flatMap(([kind]) => sizes.map((bytes, i) => ({ kind, bytes, seed: i + kind.length })));
    const outputs = await runtime.fanout(LargeBinary, inputs);
    outputs.forEach((out, i) => {
      const { kind, bytes, seed } = inputs[i]!;
      expect(kinds.find(([k]) => k === kind)![1](out)).toBe(true);
      const got = bytesOf(out as ArrayBuffer | ArrayBufferView);
      expect(got.equals(Buffer.from(pattern(bytes, seed)))).toBe(true);
      const buffer = out instanceof ArrayBuffer ? out : (out as ArrayBufferView).buffer;
      expect(buffer).toBeInstanceOf(ArrayBuffer);
      expect(buffer.byteLength).toBe(bytes);
    });
  });
});
