// Binary task outputs of 64 KiB and more travel detached from their batch
// (to a coordinator in the same process, through the slab), and those of 4
// MiB and more in 1 MiB pieces: each kind arrives as itself, with exactly
// its bytes, over a buffer of its own. A thread killed while its output
// travels in pieces leaves nothing behind for the next output. And a
// thread killed while large inputs wait for it unread in the coordinator's
// slab gives those chunks back.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Config } from '../../src/allocator/index.ts';
import { Runtime } from '../../src/runtime/index.ts';
import { LargeBinary, PageSum, pattern, ReportThenReturn, type Kind } from './fixtures/large-outputs.ts';
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
    // Detached in one piece; in 1 MiB pieces, the last one short.
    const sizes = [64 << 10, 3 << 20, 9 * MiB + 104];
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

describe('large binary outputs in pieces', () => {
  it('arrive whole when two threads send many at once, each output its own bytes', async () => {
    await using runtime = await Runtime.inMemory({ workers: 2, operations });
    const inputs = Array.from({ length: 12 }, (_, i) => ({ kind: 'view' as Kind, bytes: 5 * MiB + i * 4097, seed: i }));
    const outputs = await runtime.fanout(LargeBinary, inputs);
    outputs.forEach((out, i) => {
      const { bytes, seed } = inputs[i]!;
      expect(Buffer.from((out as Uint8Array).buffer).equals(Buffer.from(pattern(bytes, seed)))).toBe(true);
    });
  }, 120_000);

  it('arrive whole through a cluster runtime\'s gateway too', async () => {
    const runtime = (await Runtime.cluster(Config.process(3), { operations }))!;
    try {
      const inputs = Array.from({ length: 4 }, (_, i) => ({ kind: 'Float64Array' as Kind, bytes: 6 * MiB + 8 * i, seed: i }));
      const outputs = await runtime.fanout(LargeBinary, inputs);
      outputs.forEach((out, i) => {
        const { bytes, seed } = inputs[i]!;
        expect(out).toBeInstanceOf(Float64Array);
        expect(bytesOf(out as Float64Array).equals(Buffer.from(pattern(bytes, seed)))).toBe(true);
      });
    } finally {
      await runtime.close();
    }
  }, 120_000);

  it('leave nothing behind when the thread sending them is killed as it returns (mid-output when it got that far: 3 of 64 MiB in a traced run): the task runs again and its output arrives whole', async () => {
    // The thread reports 'returning' and then returns a 64 MiB output. The
    // coordinator runs the progress handler in its receive loop, so while
    // the handler runs nothing of the output is taken: the thread sends the
    // result and the pieces that fit in flight, then waits for them to be
    // taken, and the whole output can never arrive. The handler holds the
    // loop a moment (the thread gets that long to reach its wait; were it
    // slower, it is killed before its output leaves, which must come out
    // the same) and terminates the thread (the first time only). A
    // half-received output must go with its thread: the task runs again
    // on the replacement, and a piece of the dead thread's output taken as
    // the new one's would show in its bytes.
    const threads: Worker[] = [];
    const collect = (w: Worker): void => void threads.push(w);
    process.on('worker', collect);
    try {
      await using runtime = await Runtime.inMemory({ workers: 1, operations });
      process.off('worker', collect);
      expect(threads).toHaveLength(1);
      let killed = 0;
      const bytes = 64 * MiB;
      const [out] = await runtime.fanout(ReportThenReturn, [{ bytes, seed: 5 }], {
        onProgress: (p) => {
          if (p.task?.detail !== 'returning' || killed++ > 0) return;
          for (const t0 = performance.now(); performance.now() - t0 < 200; );
          void threads[0]!.terminate();
        },
      });
      expect(killed).toBe(2);
      expect(Buffer.from((out as Uint8Array).buffer).equals(Buffer.from(pattern(bytes, 5)))).toBe(true);
      // And the replacement's next pieced output is whole too.
      const [next] = await runtime.fanout(LargeBinary, [{ kind: 'view', bytes: 6 * MiB + 8, seed: 9 }]);
      expect(Buffer.from((next as Uint8Array).buffer).equals(Buffer.from(pattern(6 * MiB + 8, 9)))).toBe(true);
    } finally {
      process.off('worker', collect);
    }
  }, 120_000);
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
