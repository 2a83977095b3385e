// Directive semantics on `Runtime.local()`: everything the runtime decides
// (order, folding, retries, abort, dedup, progress) without threads.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pullAhead } from './window.ts';
import {
  AbortError,
  DuplicateDefinitionError,
  FoldError,
  IndexedStream,
  Literal,
  OperationError,
  Retry,
  RetriesExhaustedError,
  Runtime,
  RuntimeClosedError,
  defineOperation,
  type Operation,
  type Progress,
  type RuntimeOptions,
} from '../../src/runtime/index.ts';
// The test of duplicate results needs a backend that makes them.
import { LoopbackBackend } from '../../src/runtime/backends/local/loopback.ts';
import type { Backend } from '../../src/runtime/core/backend.ts';
import { runtimeOver } from '../../src/runtime/runtime.ts';
import {
  AlwaysTransient,
  AsyncDouble,
  BadConcat,
  Concat,
  FailAt,
  FibAt,
  FlakyOnce,
  SlowToCancel,
  Increment,
  Show,
  Sum,
} from './fixtures/operations.ts';

const runtimes: Runtime[] = [];
function local(options?: RuntimeOptions): Runtime {
  const runtime = Runtime.local(options);
  runtimes.push(runtime);
  return runtime;
}
afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((runtime) => runtime.close()));
});

const markerDir = mkdtempSync(join(tmpdir(), 'weft-runtime-local-'));
let markers = 0;
const marker = () => join(markerDir, `m${markers++}`);

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('directives on the local runtime', () => {
  it('sums fib of 1..10 to 143', async () => {
    expect(await IndexedStream.from(range(1, 10)).map(FibAt).fold(Sum).run(local())).toBe(143);
  });

  it('maps 10 000 items to outputs in input order', async () => {
    const inputs = range(0, 9_999);
    expect(await IndexedStream.from(inputs).map(AsyncDouble).run(local())).toEqual(inputs.map((n) => n * 2));
  });

  it('chains operations and folds with a non-commutative monoid in index order', async () => {
    const out = await IndexedStream.from(range(1, 50)).map(Increment).map(Show).fold(Concat).run(local(), { maxInFlight: 7 });
    expect(out).toBe(range(2, 51).map((n) => `<${n}>`).join(''));
  });

  it('folds an empty input to the monoid identity and maps it to an empty array', async () => {
    expect(await IndexedStream.from<number>([]).map(FibAt).fold(Sum).run(local())).toBe(0);
    expect(await IndexedStream.from<number>([]).map(FibAt).run(local())).toEqual([]);
  });

  it('folds a stream with no operation', async () => {
    expect(await IndexedStream.from(['a', 'b', 'c']).fold(Concat).run(local())).toBe('abc');
  });

  it('runs a Literal, call and fanout', async () => {
    const runtime = local();
    expect(await new Literal(FibAt, 10).run(runtime)).toBe(55);
    expect(await runtime.call(FibAt, 12)).toBe(144);
    expect(await runtime.fanout(FibAt, [1, 2, 3, 4])).toEqual([1, 1, 2, 3]);
  });

  it('pulls an async iterable lazily, never more than maxInFlight ahead', async () => {
    const maxInFlight = 16;
    const { total, widest } = await pullAhead(local(), AsyncDouble, 1000, maxInFlight);
    expect(total).toBe(999 * 1000);
    expect(widest).toBeLessThanOrEqual(maxInFlight);
    expect(widest).toBeGreaterThan(1);
  });
});

describe('failures on the local runtime', () => {
  it('retries a transient error and recovers', async () => {
    const m = marker();
    const inputs = range(0, 9).map((value) => ({ value, marker: m, at: 4 }));
    const progress: Progress[] = [];
    const out = await IndexedStream.from(inputs)
      .map(FlakyOnce)
      .run(local({ retry: Retry.immediate(2) }), { onProgress: (p) => progress.push(p) });
    expect(out).toEqual(range(0, 9));
    expect(progress.at(-1)).toEqual({ dispatched: 11, done: 10, failed: 1, total: 10, outcome: 'succeeded', lostProcesses: [], joinedProcesses: [] });
  });

  it('rejects with RetriesExhaustedError once the policy gives up', async () => {
    const error = await IndexedStream.from([1, 2])
      .map(AlwaysTransient)
      .run(local({ retry: Retry.fixed(2, 1) }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect(error).toMatchObject({ operation: 'test.AlwaysTransient', attempts: 3 });
    expect((error as Error).message).toMatch(/still failing after 2 retries on input index/);
    expect((error as Error).message).toMatch(/still busy with/);
  });

  it('rejects a map with an error naming the operation, the index, the message and the stack', async () => {
    const inputs = range(0, 9).map((value) => ({ value, at: 6 }));
    const error = (await IndexedStream.from(inputs).map(FailAt).run(local()).catch((e: unknown) => e)) as OperationError;
    expect(error).toBeInstanceOf(OperationError);
    expect(error).toMatchObject({ operation: 'test.FailAt', index: 6 });
    expect(error.message).toContain('RangeError: cannot take 6');
    expect(error.stack).toContain('fixtures/operations.ts');
    expect((error.cause as Error).name).toBe('RangeError');
  });

  it('rejects a fold whose combine throws, naming the monoid and the ranges', async () => {
    const error = (await IndexedStream.from(['a', 'b', '!', 'd'])
      .fold(BadConcat)
      .run(local())
      .catch((e: unknown) => e)) as FoldError;
    expect(error).toBeInstanceOf(FoldError);
    expect(error).toMatchObject({ monoid: 'test.BadConcat', start: 0, middle: 2, end: 3 });
    expect(error.message).toContain("refusing '!'");
    expect(error.stack).toContain('fixtures/operations.ts');
  });

  it('gives an unknown operation an error result naming it', async () => {
    const unregistered: Operation<number, number> = { kind: 'operation', name: 'test.NeverDefined', fn: (n) => n };
    const error = (await local().call(unregistered, 1).catch((e: unknown) => e)) as OperationError;
    expect(error).toBeInstanceOf(OperationError);
    expect((error.cause as Error).name).toBe('UnknownOperationError');
    expect(error.message).toContain("unknown operation 'test.NeverDefined'");
  });

  it('refuses two different definitions under one name', () => {
    defineOperation('test.Once', (n: number) => n);
    expect(() => defineOperation('test.Once', (n: number) => n)).not.toThrow();
    expect(() => defineOperation('test.Once', (n: number) => n + 1)).toThrow(DuplicateDefinitionError);
  });

  it('retries a task that times out, once its first attempt has ended on its signal', async () => {
    const inputs = range(0, 5).map(() => ({ marker: marker(), lingerMs: 0 }));
    const out = await IndexedStream.from(inputs).map(SlowToCancel).run(local({ timeoutMs: 250, retry: Retry.immediate(3) }));
    expect(out).toEqual(range(0, 5));
  });

  it('says no retry was allowed when a task times out under Retry.none()', async () => {
    const error = await IndexedStream.from([{ marker: marker(), lingerMs: 0 }])
      .map(SlowToCancel)
      .run(local({ timeoutMs: 50, retry: Retry.none() }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect(error).toMatchObject({ operation: 'test.SlowToCancel', index: 0, attempts: 1 });
    expect((error as Error).message).toMatch(/^operation test\.SlowToCancel failed and its retry policy allows no retry on input index 0 \(attempt 1\): TaskTimeoutError: /);
  });

  it('aborts one of two concurrent directives and leaves the other alone', async () => {
    const runtime = local();
    const controller = new AbortController();
    const aborted = IndexedStream.from(range(1, 1000)).map(FibAt).fold(Sum).run(runtime, { signal: controller.signal });
    const other = IndexedStream.from(range(1, 10)).map(FibAt).fold(Sum).run(runtime);
    controller.abort();
    await expect(aborted).rejects.toBeInstanceOf(AbortError);
    expect(await other).toBe(143);
  });

  it('rejects at once when the signal is already aborted', async () => {
    await expect(local().call(FibAt, 3, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortError);
  });

  it('counts a result delivered twice once', async () => {
    const inner = new LoopbackBackend();
    const twice: Backend = {
      parallelism: 1,
      lease: (handlers) => inner.lease({ ...handlers, results: (results) => handlers.results([...results, ...results]) }),
      dispatch: (tasks) => inner.dispatch(tasks),
      close: () => inner.close(),
    };
    const runtime = runtimeOver(twice);
    runtimes.push(runtime);
    let last: Progress | undefined;
    const out = await IndexedStream.from(range(1, 20))
      .map(Increment)
      .map(Show)
      .fold(Concat)
      .run(runtime, { onProgress: (p) => (last = p) });
    expect(out).toBe(range(2, 21).map((n) => `<${n}>`).join(''));
    expect(last).toEqual({ dispatched: 40, done: 40, failed: 0, total: 40, outcome: 'succeeded', lostProcesses: [], joinedProcesses: [] });
  });

  it('rejects running directives when the runtime closes, and refuses new ones', async () => {
    const runtime = Runtime.local();
    const running = runtime.fanout(FibAt, range(1, 100));
    await runtime[Symbol.asyncDispose]();
    await expect(running).rejects.toBeInstanceOf(RuntimeClosedError);
    await expect(runtime.call(FibAt, 1)).rejects.toBeInstanceOf(RuntimeClosedError);
  });
});
