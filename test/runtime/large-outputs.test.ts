// Binary task outputs of 64 KiB and more travel detached from their batch
// (to a coordinator in the same process, through the slab): each kind
// arrives as itself, with exactly its bytes, over a buffer of its own. And a
// thread killed while large inputs wait for it unread in the coordinator's
// slab gives those chunks back.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Runtime } from '../../src/runtime/index.ts';
import { LargeBinary, PageSum, pattern, type Kind } from './fixtures/large-outputs.ts';
import { SpinUntil } from './fixtures/operations.ts';

const operations = new URL('./fixtures/large-outputs.ts', import.meta.url);
const MiB = 1 << 20;

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

describe('a thread killed while it holds large inputs', () => {
  it('gives their slab chunks back: three threads killed holding 96 MiB each, more than the 256 MiB slab, and every input still arrives', async () => {
    // One thread spins in a task; a 96 MiB input is dispatched to it behind
    // that task, so its chunk of the coordinator's slab waits unread; the
    // spinning directive is aborted and the thread terminated. Were the
    // chunks of a dead thread kept, the third input would find no room in
    // the slab and wait for it forever.
    await using runtime = await Runtime.inMemory({ workers: 1, operations: [operations, new URL('./fixtures/operations.ts', import.meta.url)], cancelGraceMs: 100 });
    const dir = mkdtempSync(join(tmpdir(), 'weft-held-'));
    try {
      const input = pattern(96 * MiB, 3);
      const expected = (await runtime.fanout(PageSum, [input]))[0];
      for (let round = 0; round < 3; round++) {
        const controller = new AbortController();
        let spinning!: () => void;
        const started = new Promise<void>((resolve) => (spinning = resolve));
        const spin = runtime
          .fanout(SpinUntil, [{ marker: join(dir, `never-${round}`) }], { signal: controller.signal, onProgress: (p) => p.task?.detail === 'spinning' && spinning() })
          .catch((e: unknown) => e as Error);
        await started;
        let sent!: () => void;
        const dispatched = new Promise<void>((resolve) => (sent = resolve));
        const big = runtime.fanout(PageSum, [input], { onProgress: (p) => p.dispatched > 0 && sent() });
        await dispatched;
        controller.abort();
        expect(((await spin) as Error).name).toBe('AbortError');
        expect(await big).toEqual([expected]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
