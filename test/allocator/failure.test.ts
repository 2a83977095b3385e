// Fail-stop: one worker that throws or exits releases every other worker,
// and join() rejects naming it, with its message and stack. These tests
// rely on the test timeout, never on sleeps: a hang fails them.

import { describe, expect, it } from 'vitest';
import { Config, WorkerError, initialize } from '../../src/index.ts';

const workers = new URL('./fixtures/workers.ts', import.meta.url);

async function failure(exportName: string): Promise<WorkerError> {
  const guards = await initialize(Config.process(2), { module: workers, export: exportName });
  const error = await guards.join().then(
    () => { throw new Error('join() resolved'); },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WorkerError);
  return error as WorkerError;
}

describe('a failing worker', () => {
  it('that throws rejects join() with its message and stack, releasing a worker parked in awaitEvents()', async () => {
    const error = await failure('throwsWhileOtherWaits');
    expect(error.worker).toBe(1);
    expect(error.message).toContain('worker 1');
    expect(error.message).toContain('worker 1 gives up: boom');
    const cause = error.cause as Error;
    expect(cause.message).toBe('worker 1 gives up: boom');
    expect(cause.stack).toContain('throwsWhileOtherWaits');
    expect(cause.stack).toContain('workers.ts');
  });

  it('that throws releases a worker inside for await', async () => {
    const error = await failure('throwsWhileOtherIterates');
    expect(error.worker).toBe(1);
    expect(error.message).toContain('worker 1 gives up: boom');
    expect((error.cause as Error).stack).toContain('throwsWhileOtherIterates');
  });

  it('that calls process.exit(3) rejects join() naming it and its exit code', async () => {
    const error = await failure('exits');
    expect(error.worker).toBe(1);
    expect(error.message).toMatch(/exited with code 3/);
  });

  it('that receives with a codec other than the sender\'s fails with a ChannelError naming the channel', async () => {
    const error = await failure('codecMismatch');
    expect(error.worker).toBe(1);
    expect(error.message).toContain('ChannelError');
    expect(error.message).toContain('channel 22');
    expect(error.message).toMatch(/codec/);
  });

  it('that receives batches on a channel it never allocated fails with a ChannelError naming the channel', async () => {
    const error = await failure('unallocatedChannel');
    expect(error.worker).toBe(1);
    expect(error.message).toMatch(/ChannelError: channel 30: .*never allocated/);
  });
});
