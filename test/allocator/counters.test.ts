// The substrate's counters (allocator.stats()): per channel and peer, the
// messages, bytes and frames of known traffic between two threads, counted
// the same on both sides, and the parks of a worker that waits idle.

import { describe, expect, it } from 'vitest';
import { Config, initialize, type ChannelStats } from '../../src/index.ts';
import { FRAMES, LOAN_BYTES, PER_FRAME, TO_SELF, type Report } from './fixtures/counters.ts';

const fixture = new URL('./fixtures/counters.ts', import.meta.url);

function entry(stats: ChannelStats[], channel: number, peer: number): ChannelStats | undefined {
  return stats.find((s) => s.channel === channel && s.peer === peer);
}

describe('allocator.stats() counters', () => {
  it('counts the messages, bytes and frames of known traffic on each channel and peer, alike on both ends', async () => {
    const guards = await initialize<Report>(Config.process(2), { module: fixture, export: 'traffic' });
    const [sender, receiver] = (await guards.join()) as [Report, Report];
    const numbers = { sentMessages: FRAMES * PER_FRAME, sentBytes: 8 * FRAMES * PER_FRAME, sentFrames: FRAMES };
    expect(entry(sender.stats.channels, 1, 1)).toEqual({
      channel: 1, peer: 1, ...numbers, receivedMessages: 0, receivedBytes: 0, receivedFrames: 0, backlogBytes: 0,
    });
    expect(entry(receiver.stats.channels, 1, 0)).toEqual({
      channel: 1, peer: 0, sentMessages: 0, sentBytes: 0, sentFrames: 0,
      receivedMessages: numbers.sentMessages, receivedBytes: numbers.sentBytes, receivedFrames: numbers.sentFrames, backlogBytes: 0,
    });
    // To itself: one batch, counted as sent and received.
    expect(entry(sender.stats.channels, 1, 0)).toEqual({
      channel: 1, peer: 0, sentMessages: TO_SELF, sentBytes: 8 * TO_SELF, sentFrames: 1,
      receivedMessages: TO_SELF, receivedBytes: 8 * TO_SELF, receivedFrames: 1, backlogBytes: 0,
    });
    // A loan is a batch of one.
    expect(entry(sender.stats.channels, 2, 1)).toMatchObject({ sentMessages: 1, sentBytes: LOAN_BYTES, sentFrames: 1 });
    expect(entry(receiver.stats.channels, 2, 0)).toMatchObject({ receivedMessages: 1, receivedBytes: LOAN_BYTES, receivedFrames: 1 });
    // Nothing on a channel and peer that carried nothing.
    expect(entry(receiver.stats.channels, 2, 1)).toBeUndefined();
    // The acknowledgement, after the receiver's snapshot.
    expect(entry(sender.stats.channels, 3, 1)).toMatchObject({ sentFrames: 0, receivedMessages: 1, receivedBytes: 8, receivedFrames: 1 });
    expect(entry(sender.stats.channels, 3, 0)).toBeUndefined();
    // Threads of one process: no links.
    expect(sender.stats.links).toEqual([]);
  }, 60_000);

  it('counts a park when awaitEvents finds nothing to do and sleeps', async () => {
    const guards = await initialize<Report>(Config.process(2), { module: fixture, export: 'traffic' });
    const [, receiver] = (await guards.join()) as [Report, Report];
    expect(receiver.parksOverIdleWait).toBe(1);
  }, 60_000);
});
