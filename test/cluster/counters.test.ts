// A cluster link's counters in allocator.stats(): two processes exchange
// known traffic; each reports the channel's counts exactly, and the link's
// bytes, heartbeat round trip and reconnects.

import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AllocatorStats } from '../../src/index.ts';
import { HEADER_BYTES } from '../../src/transport/frame.ts';
import { detail, freePorts, hostfile, killAll, run, type Running } from './helpers.ts';
import { FRAMES, PER_FRAME } from './fixtures/counters.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/counters.ts', import.meta.url));
const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('cluster link counters', () => {
  it('count a channel\'s messages, bytes and frames across the link exactly, and the link\'s bytes, round trip and reconnects', async () => {
    const h = hostfile(await freePorts(2));
    dirs.push(h.dir);
    const ps = [0, 1].map((i) => run(FIXTURE, ['-n', '2', '-p', String(i), '-w', '1', '-h', h.path]));
    started.push(...ps);
    const results: AllocatorStats[] = [];
    for (const [i, p] of ps.entries()) {
      expect((await p.exited).code, detail(p)).toBe(0);
      const line = p.stdout.find((l) => l.startsWith('result '));
      expect(line, detail(p)).toBeDefined();
      results[i] = (JSON.parse(line!.slice('result '.length)) as AllocatorStats[])[0]!;
    }
    const [sender, receiver] = results as [AllocatorStats, AllocatorStats];
    const messages = FRAMES * PER_FRAME;
    const payload = 8 * messages;
    expect(sender.channels.find((c) => c.channel === 5 && c.peer === 1)).toEqual({
      channel: 5, peer: 1, sentMessages: messages, sentBytes: payload, sentFrames: FRAMES,
      receivedMessages: 0, receivedBytes: 0, receivedFrames: 0, backlogBytes: 0,
    });
    expect(receiver.channels.find((c) => c.channel === 5 && c.peer === 0)).toEqual({
      channel: 5, peer: 0, sentMessages: 0, sentBytes: 0, sentFrames: 0,
      receivedMessages: messages, receivedBytes: payload, receivedFrames: FRAMES, backlogBytes: 0,
    });
    const [out] = sender.links;
    const [inn] = receiver.links;
    expect(sender.links).toHaveLength(1);
    expect(receiver.links).toHaveLength(1);
    expect(out!.process).toBe(1);
    expect(inn!.process).toBe(0);
    // Every frame but the data is a header alone (heartbeats, closes), and
    // the router writes whole frames: what left is the data's frames and
    // payload plus whole headers.
    expect(out!.bytesOut).toBeGreaterThanOrEqual(FRAMES * HEADER_BYTES + payload);
    expect((out!.bytesOut - payload) % HEADER_BYTES).toBe(0);
    // What arrived holds at least the data (a read may end inside a later header).
    expect(inn!.bytesIn).toBeGreaterThanOrEqual(FRAMES * HEADER_BYTES + payload);
    for (const link of [out!, inn!]) {
      // Each worker waited for a round trip before sending: one was measured, under the heartbeat timeout.
      expect(link.rttMs).toBeGreaterThanOrEqual(0);
      expect(link.rttMs).toBeLessThan(3_000);
      expect(link.reconnects).toBe(0);
    }
  }, 120_000);
});
