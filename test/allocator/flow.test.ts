// Backpressure with a bound: send() says when to wait, ready() and drain()
// say when to go on, a receiver leaves what it has not read in the ring,
// and a sender that never waits fails with an OverflowError at its cap
// instead of growing until the machine runs out of memory.

import { describe, expect, it } from 'vitest';
import { checkConfig } from '../../src/allocator/config.ts';
import { Config, WorkerError, initialize } from '../../src/index.ts';
import { HIGH_WATER, MESSAGES, RING } from './fixtures/flow.ts';

const flow = new URL('./fixtures/flow.ts', import.meta.url);
const small = { ringBytes: RING, highWaterBytes: HIGH_WATER };

describe('backpressure', () => {
  it('send() returns false past the high-water mark of a receiver that does not read, and ready() resolves once under it', async () => {
    const guards = await initialize<unknown>(Config.process(3, small), { module: flow, export: 'pressure' });
    const [sender, received] = (await guards.join()) as [{ sentBeforeFalse: number; backlogAtFalse: number; backlogAfterReady: number; maxBacklog: number }, number];
    // The receiver kept calling receive() all along: had it decoded
    // everything, the ring would never have stayed full.
    expect(sender.sentBeforeFalse).toBeLessThan(MESSAGES);
    expect(sender.backlogAtFalse).toBeGreaterThan(HIGH_WATER);
    expect(sender.backlogAfterReady).toBeLessThanOrEqual(HIGH_WATER);
    // Waiting whenever told to keeps the backlog within one frame of the mark.
    expect(sender.maxBacklog).toBeLessThanOrEqual(HIGH_WATER + RING);
    expect(received).toBe(MESSAGES);
  });

  it('sendAll() of an async source waits when told to and delivers everything in order', async () => {
    const guards = await initialize<number>(Config.process(2, small), { module: flow, export: 'sendAllAsync' });
    const [maxBacklog, received] = await guards.join();
    expect(received).toBe(MESSAGES);
    expect(maxBacklog).toBeLessThanOrEqual(HIGH_WATER + RING);
  });

  it('a synchronous worker past the high-water mark waits in awaitDrain() until its backlog is in the ring, and times out while the receiver does not read', async () => {
    const guards = await initialize<unknown>(Config.process(3, small), { module: flow, export: 'syncDrain' });
    const [sender, received] = (await guards.join()) as [{ backlogAtFalse: number; timedOut: boolean; backlogAfterTimeout: number; backlogAfterDrain: number; maxBacklog: number }, number];
    expect(sender.backlogAtFalse).toBeGreaterThan(HIGH_WATER);
    // Worker 1 reads nothing of the data before the go, which was sent only
    // after the timeout; but its receive() while it waits for the go takes a
    // ring's worth ahead, so some of the backlog may move on, never all.
    expect(sender.timedOut).toBe(true);
    expect(sender.backlogAfterTimeout).toBeGreaterThan(0);
    expect(sender.backlogAfterDrain).toBe(0);
    expect(sender.maxBacklog).toBeLessThanOrEqual(HIGH_WATER + RING);
    expect(received).toBe(MESSAGES);
  });

  it('two workers waiting in ready() for each other before either reads do not deadlock', async () => {
    const guards = await initialize<number>(Config.process(2, small), { module: flow, export: 'mutualReady' });
    expect(await guards.join()).toEqual([MESSAGES, MESSAGES]);
  });

  for (const [name, exported] of [['a sender', 'overflows'], ['a sender that catches the error', 'overflowsCaught']] as const) {
    it(`${name} that never waits fails with an OverflowError naming channel and target at maxBacklogBytes, and the receiver is released`, async () => {
      // Fast enough to fail before every worker started: initialize() rejects then, else join().
      const run = initialize<string>(Config.process(2, { ...small, maxBacklogBytes: 1 << 20 }), { module: flow, export: exported });
      const error = await run.then((guards) => guards.join()).then(
        () => undefined,
        (e: unknown) => e as WorkerError,
      );
      expect(error).toBeInstanceOf(WorkerError);
      expect(error!.worker).toBe(0);
      expect(error!.message).toMatch(/OverflowError: channel 5: worker 0's backlog would pass maxBacklogBytes \(1048576\) .* to worker 1/);
      expect((error!.cause as Error).name).toBe('OverflowError');
    });
  }

  it('drain() resolves when the overflow is bound for a worker that already returned, and later sends to it are dropped', async () => {
    const guards = await initialize<{ before: number; after: number; later: number }>(Config.process(2, small), { module: flow, export: 'drainAfterReturn' });
    const [sender] = await guards.join();
    expect(sender!.before).toBeGreaterThan(0);
    expect(sender!.after).toBe(0);
    expect(sender!.later).toBe(0);
  });

  it('a worker returns while its ring to a worker that returned first is full: no FIN waits behind it', async () => {
    const guards = await initialize<number>(Config.process(2, small), { module: flow, export: 'returnAfterPeerReturned' });
    const [overflowing] = await guards.join();
    // The ring was full: frames waited in overflow when worker 1's FIN came.
    expect(overflowing).toBeGreaterThan(0);
  });

  it('two workers that flooded each other without reading both return', async () => {
    const guards = await initialize<number>(Config.process(2, small), { module: flow, export: 'floodEachOtherThenReturn' });
    const overflow = await guards.join();
    // Each returned with far more than a ring and the decode-ahead bound still to send.
    for (const bytes of overflow) expect(bytes).toBeGreaterThan(4 * RING);
  });

  it('the limits are checked where the Config is made', () => {
    expect(() => Config.process(2, { highWaterBytes: -1 })).toThrow(/highWaterBytes must be an integer from 0/);
    expect(() => Config.process(2, { maxBacklogBytes: 1 << 20, highWaterBytes: 2 << 20 })).toThrow(/highWaterBytes must be an integer from 0 to 1048576/);
    expect(() => Config.process(2, { maxBacklogBytes: 0 })).toThrow(/maxBacklogBytes must be an integer from 1/);
    expect(checkConfig(Config.process(2)).options).toMatchObject({ highWaterBytes: 1 << 20, maxBacklogBytes: 256 << 20 });
    // Every option of Options is accepted by each kind (Runtime.cluster remakes its Config from config.options).
    expect(checkConfig(Config.process(2, { slabBytes: 0 })).options.slabBytes).toBe(0);
    expect(checkConfig(Config.cluster({ threads: 1, process: 0, addresses: ['127.0.0.1:1', '127.0.0.1:2'], slabBytes: 0 })).options.slabBytes).toBe(0);
  });
});
