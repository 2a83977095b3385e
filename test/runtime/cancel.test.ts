// Cancellation that reaches running tasks, streaming directives and task
// progress, through the public API on the local and in-memory runtimes
// (cluster.test.ts runs the same scenarios on a cluster of 2 processes).

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ArgumentError, IndexedStream, OperationError, Retry, Runtime } from '../../src/index.ts';
import { AwaitAbort, BadProgress, HangOnce, Increment } from './fixtures/operations.ts';
import { abortSpinning, abortWithin, breakEarly, breakWhileRunning, chattyProgress, ordering, timeoutNoOverlap, until } from './fixtures/cancel-scenarios.ts';
import { inProcessBackends } from './fixtures/in-process.ts';

const operations = new URL('./fixtures/operations.ts', import.meta.url);
const root = mkdtempSync(join(tmpdir(), 'weft-cancel-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => mkdtempSync(join(root, `d${dirs++}-`));

describe.each(inProcessBackends)('cancellation on %s', (name, start) => {
  it('aborting a directive aborts the ctx.signal of its tasks waiting on it, within the 100 ms docs/runtime.md keeps', async () => {
    await using runtime = await start();
    const runs = await abortWithin(runtime, freshDir);
    for (const run of runs) {
      expect(run.error).toBe('AbortError');
      expect(run.seen).toEqual([0, 1].map(() => ({ name: 'TaskCancelledError', message: 'its directive was aborted' })));
    }
    const slowest = runs.map((run) => run.slowestMs);
    expect(Math.min(...slowest), `${name}: abort -> ctx.signal seen, slowest task per run: ${slowest.map((ms) => ms.toFixed(1)).join(', ')} ms`).toBeLessThan(100);
  });

  it('a timed-out attempt is retried only once it has ended: two attempts of a task never overlap', async () => {
    await using runtime = await start();
    const result = await timeoutNoOverlap(runtime, freshDir());
    expect(result.overlap).toBe(null);
    expect(result.outputs).toEqual([0, 1, 2, 3]);
  });

  it('break after 10 of 10^6 results: the source is closed, nothing more is pulled, the runtime goes on', async () => {
    await using runtime = await start();
    const result = await breakEarly(runtime);
    expect(result.seen).toBe(10);
    expect(result.closed).toBe(true);
    expect(result.pulledAtBreak).toBeLessThan(100_000);
    expect(result.pulledLater).toBe(result.pulledAtBreak);
    expect(result.afterOk).toBe(true);
  });

  it('break while tasks run: each running task sees its signal abort', async () => {
    await using runtime = await start();
    const result = await breakWhileRunning(runtime, freshDir());
    expect(result.taken).toBe(10);
    expect(result.started).toBeGreaterThan(0);
    expect(result.aborted).toBe(result.started);
    expect(result.reasons).toEqual(["the stream's consumer stopped"]);
  });

  it('ordered: true yields in input order; without it every pair comes once', async () => {
    await using runtime = await start();
    expect(await ordering(runtime)).toEqual({ inOrder: true, allOnce: true });
  });

  it('progress details reach onProgress with their index, throttled, the last one included', async () => {
    await using runtime = await start();
    const times = 100_000;
    const result = await chattyProgress(runtime, 4, times);
    expect(result.outputs).toEqual([0, 1, 2, 3]);
    expect(result.indicesMatch).toBe(true);
    expect(result.lastK).toEqual([0, 1, 2, 3].map(() => times - 1));
    for (const count of result.counts) {
      expect(count).toBeGreaterThanOrEqual(2);
      expect(count).toBeLessThan(times / 100);
    }
  });

  it('a progress detail that cannot travel fails its task with an ArgumentError naming ctx.progress', async () => {
    await using runtime = await start();
    const error = (await runtime.call(BadProgress, 0).catch((e: unknown) => e)) as OperationError;
    expect(error).toBeInstanceOf(OperationError);
    expect((error.cause as Error).name).toBe('ArgumentError');
    expect(error.message).toMatch(/ctx\.progress: the detail cannot be sent/);
  });

  it('closing the runtime aborts the signals of running tasks', async () => {
    const dir = freshDir();
    const runtime = await start();
    let waiting!: () => void;
    const started = new Promise<void>((resolve) => (waiting = resolve));
    const run = runtime.fanout(AwaitAbort, [{ marker: join(dir, 'close') }], { onProgress: (p) => p.task !== undefined && waiting() }).catch((e: unknown) => e as Error);
    await started;
    await runtime.close();
    expect(((await run) as Error).name).toBe('RuntimeClosedError');
    await until(() => existsSync(join(dir, 'close.0.1')), 'the task to see the close');
  });
});

describe('force', () => {
  it('in memory: a task spinning synchronously when its directive is aborted has its thread replaced; the next directive completes', async () => {
    await using runtime = await Runtime.inMemory({ workers: 1, operations, cancelGraceMs: 200 });
    expect(await abortSpinning(runtime, freshDir())).toEqual({ error: 'AbortError', nextOk: true });
  });

  it('in memory: an async task that ignores its signal past the grace has its thread replaced, and its retry answers', async () => {
    // Two threads: the retry need not wait for the replacement thread to start.
    await using runtime = await Runtime.inMemory({ workers: 2, operations, cancelGraceMs: 200 });
    const dir = freshDir();
    const inputs = [0, 1, 2].map((value) => ({ value, marker: join(dir, 'hang'), at: 1 }));
    expect(await runtime.fanout(HangOnce, inputs, { timeoutMs: 1_000, retry: Retry.immediate(1) })).toEqual([0, 1, 2]);
  });

  it('local: an async task that ignores its signal past the grace is not retried beside itself: TaskStuckError', async () => {
    const runtime = Runtime.local({ cancelGraceMs: 100 });
    const dir = freshDir();
    const inputs = [0, 1, 2].map((value) => ({ value, marker: join(dir, 'hang'), at: 1 }));
    const error = (await runtime.fanout(HangOnce, inputs, { timeoutMs: 200, retry: Retry.immediate(1) }).catch((e: unknown) => e)) as OperationError;
    expect(error).toBeInstanceOf(OperationError);
    expect(error.index).toBe(1);
    expect((error.cause as Error).name).toBe('TaskStuckError');
    await runtime.close();
  });
});

describe('bad values for the new options', () => {
  it('are refused with an ArgumentError naming them', async () => {
    const runtime = Runtime.local();
    const stream = IndexedStream.from([1]).map(Increment);
    expect(() => stream.stream(runtime, { ordered: 'yes' as never })).toThrow(ArgumentError);
    expect(() => stream.stream(runtime, { ordered: 1 as never })).toThrow(/stream option ordered must be a boolean, got 1/);
    expect(() => stream.stream(runtime, { signal: 'stop' as never })).toThrow(/stream option signal must be an AbortSignal/);
    expect(() => stream.stream(runtime, { cancelGraceMs: 0 })).toThrow(/stream option cancelGraceMs must be a positive number of milliseconds up to 2147483647/);
    await expect(stream.run(runtime, { cancelGraceMs: -5 })).rejects.toThrow(/run option cancelGraceMs must be a positive number of milliseconds up to 2147483647 .*, got -5/);
    expect(() => Runtime.local({ cancelGraceMs: Number.NaN })).toThrow(/runtime option cancelGraceMs must be .*, got NaN/);
    await expect(Runtime.inMemory({ operations, cancelGraceMs: 'soon' as never })).rejects.toThrow(/runtime option cancelGraceMs must be .*, got "soon"/);
    await runtime.close();
  });
});
