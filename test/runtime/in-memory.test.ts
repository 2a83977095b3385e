// `Runtime.inMemory`: directives on worker threads that import the fixture
// operations module, including threads that die mid-task.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pullAhead } from './window.ts';
import {
  AbortError,
  FoldError,
  IndexedStream,
  Literal,
  OperationError,
  Retry,
  RetriesExhaustedError,
  Runtime,
  type Operation,
} from '../../src/runtime/index.ts';
import {
  AlwaysTransient,
  AsyncDouble,
  AsyncIncrement,
  BadConcat,
  Concat,
  Costly,
  ExitOnce,
  FailAt,
  FibAt,
  FlakyOnce,
  HangOnce,
  Increment,
  Show,
  Sum,
  WaitForFile,
} from './fixtures/operations.ts';

const operations = new URL('./fixtures/operations.ts', import.meta.url);
const markerDir = mkdtempSync(join(tmpdir(), 'weft-runtime-threads-'));
let markers = 0;
const marker = () => join(markerDir, `m${markers++}`);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

let runtime: Runtime;
beforeAll(async () => {
  runtime = await Runtime.inMemory({ workers: 2, operations, retry: Retry.immediate(2) });
});
afterAll(async () => {
  await runtime?.close();
});

describe('Runtime.inMemory on 2 workers', () => {
  it('sums fib of 1..10 to 143', async () => {
    expect(await IndexedStream.from(range(1, 10)).map(FibAt).fold(Sum).run(runtime)).toBe(143);
  });

  it('maps 10 000 items to outputs in input order', async () => {
    const inputs = range(0, 9_999);
    expect(await IndexedStream.from(inputs).map(Increment).run(runtime)).toEqual(inputs.map((n) => n + 1));
  });

  it('maps 10 000 items with async operations, settled at once or after a turn, mixed with sync ones, in input order', async () => {
    const inputs = range(0, 9_999);
    expect(await IndexedStream.from(inputs).map(AsyncIncrement).run(runtime)).toEqual(inputs.map((n) => n + 1));
    const chained = IndexedStream.from(inputs).map(AsyncIncrement).map(Increment).map(AsyncDouble).map(AsyncIncrement);
    expect(await chained.run(runtime)).toEqual(inputs.map((n) => (n + 2) * 2 + 1));
  });

  it('folds a non-commutative monoid in index order', async () => {
    const out = await IndexedStream.from(range(1, 2_000)).map(Show).fold(Concat).run(runtime);
    expect(out).toBe(range(1, 2_000).map((n) => `<${n}>`).join(''));
  });

  it('runs a chain, a Literal, call and fanout', async () => {
    expect(await IndexedStream.from(range(1, 100)).map(Increment).map(AsyncDouble).run(runtime)).toEqual(
      range(1, 100).map((n) => (n + 1) * 2),
    );
    expect(await new Literal(FibAt, 20).run(runtime)).toBe(6765);
    expect(await runtime.call(AsyncDouble, 21)).toBe(42);
    expect(await runtime.fanout(FibAt, [5, 6, 7])).toEqual([5, 8, 13]);
  });

  it('pulls an async iterable larger than the in-flight bound lazily', async () => {
    const maxInFlight = 64;
    const { total, widest } = await pullAhead(runtime, Increment, 20_000, maxInFlight);
    expect(total).toBe((20_000 * 20_001) / 2);
    expect(widest).toBeLessThanOrEqual(maxInFlight);
  });

  it('a stream of costly tasks that stops at its first output pulled a window sized by what the threads run, not maxInFlight', async () => {
    let pulled = 0;
    function* inputs() {
      for (let n = 0; n < 100_000; n++) {
        pulled++;
        yield { n, ms: 20 };
      }
    }
    let first: [number, number] | undefined;
    for await (const pair of IndexedStream.from(inputs()).map(Costly).stream(runtime)) {
      first = pair;
      break;
    }
    expect(first![1]).toBe(first![0]);
    // 2 threads x the default concurrency (64), twice over: 256; maxInFlight is 4096.
    expect(pulled).toBeGreaterThan(2);
    expect(pulled).toBeLessThanOrEqual(300);
  });

  it('recovers from a transient error', async () => {
    const m = marker();
    const out = await IndexedStream.from(range(0, 99).map((value) => ({ value, marker: m, at: 42 })))
      .map(FlakyOnce)
      .run(runtime);
    expect(out).toEqual(range(0, 99));
  });

  it('rejects once retries are exhausted', async () => {
    const error = await runtime.fanout(AlwaysTransient, [7]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect(error).toMatchObject({ operation: 'test.AlwaysTransient', index: 0, attempts: 3 });
  });

  it('rejects a map on a fatal error, naming operation, index, message and remote stack', async () => {
    const inputs = range(0, 499).map((value) => ({ value, at: 321 }));
    const error = (await IndexedStream.from(inputs).map(FailAt).run(runtime).catch((e: unknown) => e)) as OperationError;
    expect(error).toBeInstanceOf(OperationError);
    expect(error).toMatchObject({ operation: 'test.FailAt', index: 321 });
    expect(error.message).toContain('RangeError: cannot take 321');
    expect(error.stack).toContain('fixtures/operations.ts');
  });

  it('rejects a fold whose combine throws', async () => {
    const error = await IndexedStream.from(['a', 'b', '!'])
      .map(Increment as unknown as Operation<string, string>)
      .fold(BadConcat)
      .run(runtime)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FoldError);
    expect(error).toMatchObject({ monoid: 'test.BadConcat' });
  });

  it('fails only the directive with the fatal error; a concurrent one completes', async () => {
    const failing = IndexedStream.from(range(0, 999).map((value) => ({ value, at: 10 })))
      .map(FailAt)
      .run(runtime);
    const other = IndexedStream.from(range(1, 2_000)).map(Show).fold(Concat).run(runtime);
    await expect(failing).rejects.toBeInstanceOf(OperationError);
    expect(await other).toBe(range(1, 2_000).map((n) => `<${n}>`).join(''));
  });

  it('retries a task whose async operation never settles once the per-task timeout passes', async () => {
    const m = marker();
    const inputs = range(0, 199).map((value) => ({ value, marker: m, at: 77 }));
    const progress: { failed: number }[] = [];
    const out = await IndexedStream.from(inputs)
      .map(HangOnce)
      .run(runtime, { timeoutMs: 500, retry: Retry.immediate(3), onProgress: (p) => progress.push(p) });
    expect(out).toEqual(range(0, 199));
    expect(progress.at(-1)?.failed).toBeGreaterThanOrEqual(1);
  });

  it('answers an unknown operation with an error naming it', async () => {
    const unregistered: Operation<number, number> = { kind: 'operation', name: 'test.NotInTheModule', fn: (n) => n };
    const error = (await runtime.call(unregistered, 1).catch((e: unknown) => e)) as OperationError;
    expect(error).toBeInstanceOf(OperationError);
    expect((error.cause as Error).name).toBe('UnknownOperationError');
  });

  it('survives a worker that calls process.exit mid-task', async () => {
    const m = marker();
    const inputs = range(0, 999).map((value) => ({ value, marker: m, at: 500 }));
    const total = await IndexedStream.from(inputs)
      .map(ExitOnce)
      .fold(Sum)
      .run(runtime);
    expect(total).toBe((999 * 1000) / 2);
    // The replacement serves the next directive.
    expect(await IndexedStream.from(range(1, 10)).map(FibAt).fold(Sum).run(runtime)).toBe(143);
  });

  it('aborts one of two concurrent directives; the other completes', async () => {
    const release = marker();
    const controller = new AbortController();
    let started!: () => void;
    const dispatched = new Promise<void>((resolve) => (started = resolve));
    const aborted = IndexedStream.from(range(0, 999).map((value) => ({ value, marker: release })))
      .map(WaitForFile)
      .run(runtime, { signal: controller.signal, onProgress: (p) => p.dispatched > 0 && started() });
    await dispatched;
    const other = IndexedStream.from(range(1, 10)).map(FibAt).fold(Sum).run(runtime);
    controller.abort();
    await expect(aborted).rejects.toBeInstanceOf(AbortError);
    // Let the aborted directive's tasks already on workers finish; its queued ones were dropped.
    writeFileSync(release, '');
    expect(await other).toBe(143);
  });
});

describe('Runtime.inMemory on 1 worker', () => {
  it('replaces a worker that calls process.exit: with no other worker, only the newcomer can finish', async () => {
    await using single = await Runtime.inMemory({ workers: 1, operations });
    const m = marker();
    const inputs = range(0, 99).map((value) => ({ value, marker: m, at: 50 }));
    expect(await IndexedStream.from(inputs).map(ExitOnce).fold(Sum).run(single)).toBe(4950);
  });
});
