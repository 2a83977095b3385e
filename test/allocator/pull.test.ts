// ChannelPull's recv() walks batches on a single compare; these properties pin
// down what it must keep doing: FIFO across remote batches and self-sent
// messages interleaved in any order, `available`/`done` exact after every
// step, and Codec.recycle handed only batches that were read to the end
// (reusing one must never change a message still to come).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ChannelPull } from '../../src/allocator/pull.ts';
import type { PullHost } from '../../src/allocator/pull.ts';

type Op = { op: 'deliver'; size: number } | { op: 'local'; count: number } | { op: 'recv'; count: number };

const ops = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant('deliver' as const), size: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ op: fc.constant('local' as const), count: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ op: fc.constant('recv' as const), count: fc.integer({ min: 1, max: 8 }) }),
  ),
  { maxLength: 60 },
);

/** Worker 0 of 2, alone: nothing arrives but what a test delivers, and a stalled channel's wake is counted. */
function host(aheadBytes: number, wakeLocal = (): void => {}): PullHost {
  return {
    index: 0,
    peers: 2,
    aheadBytes,
    checkAbort() {},
    release() {},
    receive() {},
    spinThenPark: () => true,
    wakeLocal,
  };
}

describe('ChannelPull', () => {
  it('delivers remote batches and self-sent messages in order, and recycles only finished batches', () => {
    fc.assert(
      fc.property(ops, (script: Op[]) => {
        const recycled: number[][] = [];
        const pull = new ChannelPull<number>(7, host(Infinity), (batch) => {
          recycled.push(Array.from(batch));
          // A codec reusing the container overwrites it: nothing still due may change.
          (batch as number[]).fill(-1);
        });
        const model: number[] = [];
        let next = 0;
        for (const step of script) {
          if (step.op === 'deliver') {
            const batch = Array.from({ length: step.size }, () => next++);
            model.push(...batch);
            pull.deliver(batch, batch.length);
          } else if (step.op === 'local') {
            for (let i = 0; i < step.count; i++) {
              model.push(next);
              pull.deliverLocal(next++);
            }
          } else {
            for (let i = 0; i < step.count; i++) expect(pull.recv()).toBe(model.shift());
          }
          expect(pull.available).toBe(model.length > 0);
        }
        while (model.length > 0) expect(pull.recv()).toBe(model.shift());
        expect(pull.recv()).toBeUndefined();
        expect(pull.available).toBe(false);
        // Recycled batches were read to the end before they were handed over.
        for (const b of recycled) expect(b.every((v) => v >= 0)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('takes no more frames past its decode-ahead bound, and wakes its worker once read back under it', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 1000 }), (sizes, limit) => {
        let wakes = 0;
        const pull = new ChannelPull<number>(3, host(limit, () => wakes++));
        // The allocator's rule: deliver while the puller accepts; the rest waits in the ring.
        let ahead = 0;
        let delivered = 0;
        while (delivered < sizes.length && pull.accepts()) {
          pull.deliver([delivered], sizes[delivered]!);
          ahead += sizes[delivered++]!;
        }
        // At least one batch always gets in; past the bound, none.
        expect(delivered).toBeGreaterThan(0);
        if (delivered < sizes.length) {
          expect(ahead).toBeGreaterThanOrEqual(limit);
          expect(ahead - sizes[delivered - 1]!).toBeLessThan(limit);
        }
        const stalled = delivered < sizes.length;
        // Reading every batch (the last one is left when the next recv finds nothing).
        for (let i = 0; i < delivered; i++) expect(pull.recv()).toBe(i);
        expect(pull.recv()).toBeUndefined();
        expect(wakes).toBe(stalled ? 1 : 0);
        expect(pull.accepts()).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('is done once every sender closed and every message was read', () => {
    const pull = new ChannelPull<number>(1, host(Infinity));
    pull.deliver([1, 2], 2);
    pull.closeFrom(0);
    pull.closeFrom(1);
    expect(pull.done).toBe(false);
    expect(pull.recv()).toBe(1);
    expect(pull.done).toBe(false);
    expect(pull.recv()).toBe(2);
    expect(pull.done).toBe(true);
  });
});
