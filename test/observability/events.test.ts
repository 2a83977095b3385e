// The plain diagnostics channels for events, each observed as it happens.

import diagnostics from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Config, initialize, Retry, Runtime, type ThreadReplacedMessage } from '../../src/index.ts';
import { Busy, ExitOnce } from './fixtures/operations.ts';
import { OVERFLOW_CHANNEL } from './fixtures/overflow.ts';

const operations = new URL('./fixtures/operations.ts', import.meta.url);

describe('event channels', () => {
  it('weft:thread-replaced tells which thread died and why, as Runtime.inMemory replaces it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-obs-replaced-'));
    const replaced: ThreadReplacedMessage[] = [];
    const listener = (message: unknown) => replaced.push(message as ThreadReplacedMessage);
    diagnostics.subscribe('weft:thread-replaced', listener);
    try {
      await using runtime = await Runtime.inMemory({ workers: 1, operations });
      // The thread exits running the task; its replacement runs it again.
      expect(await runtime.call(ExitOnce, { value: 7, marker: join(dir, 'exited') })).toBe(7);
      expect(replaced).toHaveLength(1);
      expect(replaced[0]).toMatchObject({ worker: 0, reason: 'died' });
    } finally {
      diagnostics.unsubscribe('weft:thread-replaced', listener);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('weft:thread-replaced says terminated for a thread whose cancelled task ran on past its grace', async () => {
    const replaced: ThreadReplacedMessage[] = [];
    const listener = (message: unknown) => replaced.push(message as ThreadReplacedMessage);
    diagnostics.subscribe('weft:thread-replaced', listener);
    try {
      await using runtime = await Runtime.inMemory({ workers: 1, operations, cancelGraceMs: 100, retry: Retry.none() });
      // Busy spins without looking at its signal: past its timeout and its grace, its thread is terminated.
      await expect(runtime.call(Busy, 60_000, { timeoutMs: 200 })).rejects.toThrow(/TaskTimeoutError: operation obs.Busy on input index 0 produced no result within 200 ms/);
      expect(replaced).toEqual([{ worker: 0, reason: 'terminated', error: undefined }]);
      // Its replacement serves.
      expect(await runtime.call(Busy, 1)).toBe(1);
    } finally {
      diagnostics.unsubscribe('weft:thread-replaced', listener);
    }
  });

  it('weft:overflow carries the OverflowError, published in the thread that overflows', async () => {
    const seen = new BroadcastChannel(OVERFLOW_CHANNEL);
    const message = new Promise<{ name: string; message: string }>((resolve) => (seen.onmessage = (event) => resolve((event as { data: { name: string; message: string } }).data)));
    try {
      const run = initialize<string>(Config.process(2, { ringBytes: 4096, highWaterBytes: 16 * 1024, maxBacklogBytes: 1 << 20 }), {
        module: new URL('./fixtures/overflow.ts', import.meta.url),
        export: 'overflowWatched',
      });
      // The overflowing worker fails (fail-stop): the run rejects.
      await expect(run.then((guards) => guards.join())).rejects.toThrow(/OverflowError/);
      expect(await message).toMatchObject({ name: 'OverflowError', message: expect.stringMatching(/backlog would pass maxBacklogBytes \(1048576\)/) });
    } finally {
      seen.close();
    }
  });
});
