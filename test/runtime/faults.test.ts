// Tasks that misbehave on worker threads: one that never returns, one that
// ends its thread, outputs that cannot travel back, and async operations
// that must overlap. None may take a thread, or the runtime, for good.

import { describe, expect, it } from 'vitest';
import { IndexedStream, OperationError, Retry, RetriesExhaustedError, Runtime } from '../../src/runtime/index.ts';
import { BadOutput, ExitAt, Increment, Overlap, SpinAt } from './fixtures/operations.ts';

const operations = new URL('./fixtures/operations.ts', import.meta.url);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function failure(run: Promise<unknown>): Promise<OperationError> {
  const error = await run.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(error).toBeInstanceOf(OperationError);
  return error as OperationError;
}

describe('a task that never returns', () => {
  it('has its thread terminated and replaced: later directives without a timeout complete', async () => {
    await using runtime = await Runtime.inMemory({ workers: 1, operations, cancelGraceMs: 200 });
    const stuck = runtime.fanout(SpinAt, [{ value: 0, at: 0 }], { timeoutMs: 300, retry: Retry.none() });
    await expect(stuck).rejects.toThrow(RetriesExhaustedError);
    await expect(stuck).rejects.toThrow(/TaskTimeoutError: operation test.SpinAt on input index 0 produced no result within 300 ms/);
    // Only the replacement thread can run these.
    expect(await runtime.fanout(Increment, range(1, 100))).toEqual(range(2, 101));
    expect(await IndexedStream.from(range(1, 10)).map(Increment).run(runtime)).toEqual(range(2, 11));
  });

  it('is retried on another thread until retries run out, while other directives go on', async () => {
    await using runtime = await Runtime.inMemory({ workers: 2, operations, cancelGraceMs: 100 });
    const inputs = range(0, 20).map((value) => ({ value, at: 7 }));
    // A timeout counts from dispatch, and the innocent tasks queued behind
    // the stuck one time out with it: their retries, behind the other
    // directive's tasks and a thread's replacement, must answer within it
    // too. At 200 ms some did not at load 20 (an innocent index ran out of
    // retries first); 2 s they meet.
    const stuck = failure(runtime.fanout(SpinAt, inputs, { timeoutMs: 2_000, retry: Retry.immediate(1) }));
    // Both awaited together: an assertion failing on one must not leave the
    // other's rejection (the runtime closing under it) unobserved.
    const [error, others] = await Promise.all([stuck, runtime.fanout(Increment, range(1, 1000))]);
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect(error.index).toBe(7);
    expect(error.attempts).toBe(2);
    expect(others).toEqual(range(2, 1001));
    expect(await runtime.fanout(Increment, range(1, 1000))).toEqual(range(2, 1001));
  });
});

describe('a task that ends its thread', () => {
  it('is named by WorkerLostError, and innocent tasks queued with it are not given up', async () => {
    await using runtime = await Runtime.inMemory({ workers: 2, operations });
    for (const spinMs of [0, 2, 0]) {
      const inputs = range(0, 19).map((value) => ({ value, at: 5, spinMs }));
      const [error, others] = await Promise.all([failure(runtime.fanout(ExitAt, inputs)), runtime.fanout(Increment, range(1, 2000))]);
      expect(error.index).toBe(5);
      expect((error.cause as Error).name).toBe('WorkerLostError');
      expect(error.message).toMatch(/a worker thread died while running this task, 3 times \(worker \d exited with code 3\)/);
      expect(others).toEqual(range(2, 2001));
    }
  });
});

describe('outputs that cannot travel back', () => {
  it('fail their task with an OutputError naming the cause; no thread dies', async () => {
    await using runtime = await Runtime.inMemory({ workers: 1, operations, maxMessageBytes: 1 << 20 });
    const fn = await failure(runtime.call(BadOutput, { kind: 'function' }));
    expect(fn.message).toMatch(/operation test.BadOutput failed on input index 0 .*OutputError: the output is a function/);
    const symbol = await failure(runtime.call(BadOutput, { kind: 'symbol' }));
    expect(symbol.message).toMatch(/OutputError: the output is a symbol/);
    const weak = await failure(runtime.call(BadOutput, { kind: 'weakmap' }));
    expect(weak.message).toMatch(/OutputError: the output cannot be encoded: msgpack cannot carry a WeakMap/);
    const big = await failure(runtime.fanout(BadOutput, [{ kind: 'bytes', bytes: 10 }, { kind: 'bytes', bytes: 2 << 20 }]));
    expect(big.index).toBe(1);
    expect(big.message).toMatch(/OutputError: the output is \d+ bytes encoded, over the bound of \d+ \(maxMessageBytes 1048576/);
    // Each under the bound, together over it: they leave in several frames.
    const many = await runtime.fanout(BadOutput, range(1, 8).map(() => ({ kind: 'bytes' as const, bytes: 300_000 })));
    expect(many.map((bytes) => (bytes as Uint8Array).length)).toEqual(range(1, 8).map(() => 300_000));
    expect(await runtime.fanout(Increment, range(1, 100))).toEqual(range(2, 101));
  });
});

describe('async operations', () => {
  it('overlap up to the concurrency on each thread, and no deeper', async () => {
    await using runtime = await Runtime.inMemory({ workers: 2, operations, concurrency: 16 });
    const widest = Math.max(...(await runtime.fanout(Overlap, range(1, 200).map(() => 16))));
    expect(widest).toBeGreaterThanOrEqual(16);
    expect(widest).toBeLessThanOrEqual(32);
  });

  it('overlap 64 deep on each thread by default (the documented concurrency), and no deeper', async () => {
    await using runtime = await Runtime.inMemory({ workers: 2, operations });
    const widest = await runtime.fanout(Overlap, range(1, 400).map(() => 64));
    expect(Math.max(...widest)).toBe(64);
  });
});
