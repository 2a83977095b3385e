// The substrate's backlog figures (allocator.stats()): a sender told to
// wait shows its backlog towards the receiver on the channel that filled
// it, in the per-channel figures as in the worker's total, and none once
// it has drained.

import { describe, expect, it } from 'vitest';
import { Config, initialize } from '../../src/index.ts';
import type { BacklogReport } from './fixtures/backlog.ts';

const fixture = new URL('./fixtures/backlog.ts', import.meta.url);

describe('allocator.stats() backlog', () => {
  it('shows the bytes waiting for ring space towards a peer, per channel and in total, and none once drained', async () => {
    const guards = await initialize<BacklogReport>(Config.process(2, { ringBytes: 16 * 1024, highWaterBytes: 32 * 1024 }), { module: fixture, export: 'backlog' });
    const [sender, receiver] = (await guards.join()) as [BacklogReport, BacklogReport];
    const waiting = sender.waiting!;
    expect(waiting.overflowBytes).toBeGreaterThan(32 * 1024);
    expect(waiting.overflowFrames).toBeGreaterThan(0);
    const bulk = waiting.channels.find((c) => c.channel === 5 && c.peer === 1)!;
    // Every channel to a peer shares its ring, and so its backlog.
    expect(bulk.backlogBytes).toBe(waiting.overflowBytes);
    expect(waiting.channels.find((c) => c.channel === 6 && c.peer === 1)!.backlogBytes).toBe(waiting.overflowBytes);
    expect(sender.drained.overflowBytes).toBe(0);
    expect(sender.drained.channels.every((c) => c.backlogBytes === 0)).toBe(true);
    expect(receiver.messages).toBe(sender.messages);
    const received = receiver.drained.channels.find((c) => c.channel === 5 && c.peer === 0)!;
    expect(received.receivedMessages).toBe(sender.messages - 1);
    expect(received.receivedBytes).toBe(sender.drained.channels.find((c) => c.channel === 5 && c.peer === 1)!.sentBytes);
  }, 60_000);
});
