// Messages larger than a ring travel as runs of PART frames and arrive whole
// (with slabBytes: 0; large messages go through the slab otherwise: slab.test.ts).

import { describe, expect, it } from 'vitest';
import { Config, initialize } from '../../src/index.ts';
import { BIG_BYTES, BORROWED, bigBytes, bigObject } from './fixtures/workers.ts';

const workers = new URL('./fixtures/workers.ts', import.meta.url);

describe('messages larger than the ring', () => {
  it('a 3 MiB Uint8Array through a 64 KiB ring arrives byte for byte', async () => {
    const guards = await initialize<Uint8Array>(Config.process(2, { ringBytes: 65536, slabBytes: 0 }), { module: workers, export: 'bigTypedArray' });
    const [mine, theirs] = await guards.join();
    const want = bigBytes();
    for (const got of [mine!, theirs!]) {
      expect(got.length).toBe(BIG_BYTES);
      expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer))).toBe(true);
    }
  });

  it('a msgpack object of several MiB through a 64 KiB ring arrives equal', async () => {
    const guards = await initialize<unknown>(Config.process(2, { ringBytes: 65536, slabBytes: 0 }), { module: workers, export: 'bigMsgpack' });
    const [count, received] = await guards.join();
    expect(count).toBe(0);
    expect(received).toEqual(bigObject());
  });

  it('borrowed typed arrays view the ring and stay intact until the worker waits for more', async () => {
    const guards = await initialize<number>(Config.process(2, { ringBytes: 1 << 18, slabBytes: 0 }), { module: workers, export: 'borrowed' });
    expect(await guards.join()).toEqual([0, BORROWED]);
  });
});
