// Bad values given to the runtime's public calls: each is refused with an
// ArgumentError naming the option and the value, before anything is leased
// or started, so the runtime goes on working and closes normally.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArgumentError, defineMonoid, defineOperation, IndexedStream, Retry, Runtime, type RunOptions } from '../../src/runtime/index.ts';
import { Increment, Sum } from './fixtures/operations.ts';

const operations = new URL('./fixtures/operations.ts', import.meta.url);

const badRunOptions: [RunOptions, RegExp][] = [
  [{ maxInFlight: 0 }, /run option maxInFlight must be a positive integer, got 0/],
  [{ maxInFlight: -5 }, /maxInFlight must be a positive integer, got -5/],
  [{ maxInFlight: 'x' as never }, /maxInFlight must be a positive integer, got "x"/],
  [{ maxInFlight: 1.5 }, /maxInFlight must be a positive integer, got 1.5/],
  [{ timeoutMs: -1 }, /run option timeoutMs must be a positive number of milliseconds up to 2147483647 \(about 24.8 days\), got -1/],
  [{ timeoutMs: 2 ** 31 }, /timeoutMs must be .*, got 2147483648/],
  [{ timeoutMs: Number.POSITIVE_INFINITY }, /timeoutMs must be .*, got Infinity/],
  [{ timeoutMs: Number.NaN }, /timeoutMs must be .*, got NaN/],
  [{ timeoutMs: 'soon' as never }, /timeoutMs must be .*, got "soon"/],
  [{ retry: 'never' as never }, /run option retry must be a RetryPolicy .*, got "never"/],
  [{ retry: { retries: -1, delayMs: () => 0 } }, /retry must be a RetryPolicy/],
  [{ signal: {} as never }, /run option signal must be an AbortSignal, got an object \(Object\)/],
  [{ onProgress: 3 as never }, /run option onProgress must be a function, got 3/],
];

describe('run options', () => {
  let runtime: Runtime;
  beforeAll(async () => {
    runtime = await Runtime.inMemory({ workers: 1, operations });
  });
  afterAll(async () => {
    await runtime?.close();
  });

  it.each(badRunOptions)('refuses %o with a clear error, and the runtime goes on', async (options, message) => {
    const attempt = IndexedStream.from([1, 2, 3]).map(Increment).run(runtime, options);
    await expect(attempt).rejects.toThrow(ArgumentError);
    await expect(attempt).rejects.toThrow(message);
    expect(await runtime.fanout(Increment, [1, 2, 3])).toEqual([2, 3, 4]);
  });

  it('refuses bad options to call and fanout alike', async () => {
    await expect(runtime.call(Increment, 1, { maxInFlight: 0 })).rejects.toThrow(ArgumentError);
    await expect(runtime.fanout(Increment, [1], { timeoutMs: 0 })).rejects.toThrow(ArgumentError);
  });

  it('refuses call, fanout, map and fold without an operation or a monoid, naming what came instead; the runtime goes on', async () => {
    await expect(runtime.call(undefined as never, 1)).rejects.toThrow(ArgumentError);
    await expect(runtime.call(undefined as never, 1)).rejects.toThrow(/^runtime.call \(a Literal\) needs an operation made by defineOperation, got undefined$/);
    await expect(runtime.call({ name: 'Increment' } as never, 1)).rejects.toThrow(/needs an operation made by defineOperation, got an object \(Object\)/);
    expect(() => runtime.fanout(null as never, [1])).toThrow(/^map needs an operation made by defineOperation, got null$/);
    expect(() => IndexedStream.from([1]).map(Sum as never)).toThrow(ArgumentError);
    expect(() => IndexedStream.from([1]).fold(Increment as never)).toThrow(/^fold needs a monoid made by defineMonoid, got an object \(Object\)$/);
    expect(await runtime.call(Increment, 1)).toBe(2);
  });

  it('leaves nothing behind: a runtime whose runs were refused closes', async () => {
    const own = await Runtime.inMemory({ workers: 1, operations });
    await expect(own.fanout(Increment, [1], { signal: {} as never })).rejects.toThrow(ArgumentError);
    await expect(own.fanout(Increment, [1], { maxInFlight: 0 })).rejects.toThrow(ArgumentError);
    await expect(own.close()).resolves.toBeUndefined();
  });
});

describe('runtime options, sources and definitions', () => {
  it('refuses bad runtime options before starting anything', async () => {
    expect(() => Runtime.local({ maxInFlight: 0 })).toThrow(/runtime option maxInFlight must be a positive integer, got 0/);
    expect(() => Runtime.local({ retry: 3 as never })).toThrow(/runtime option retry must be a RetryPolicy/);
    await expect(Runtime.inMemory({ operations, timeoutMs: Number.NaN })).rejects.toThrow(/runtime option timeoutMs must be/);
    await expect(Runtime.inMemory({ operations, workers: 0 })).rejects.toThrow(/runtime option workers must be a positive integer, got 0/);
  });

  it('refuses a source that cannot be iterated', () => {
    expect(() => IndexedStream.from(42 as never)).toThrow(ArgumentError);
    expect(() => IndexedStream.from(42 as never)).toThrow(/IndexedStream.from: the source must be an iterable or an async iterable .*, got 42/);
    expect(() => IndexedStream.from(undefined as never)).toThrow(/got undefined/);
    expect(() => IndexedStream.from({} as never)).toThrow(/got an object/);
  });

  it('refuses to run a directive on anything but a Runtime', async () => {
    const stream = IndexedStream.from([1, 2]).map(Increment);
    for (const [runtime, shown] of [
      [undefined, 'undefined'],
      [{}, 'an object \\(Object\\)'],
      [{ execute: () => Promise.resolve([]) }, 'an object \\(Object\\)'],
    ] as const) {
      await expect(stream.run(runtime as never)).rejects.toThrow(ArgumentError);
      await expect(stream.fold(Sum).run(runtime as never)).rejects.toThrow(new RegExp(`run needs a Runtime .*, got ${shown}$`));
    }
  });

  it('refuses an operation that is not a function or has no name', () => {
    expect(() => defineOperation('test.options.NotAFunction', 42 as never)).toThrow(
      /defineOperation 'test.options.NotAFunction': the operation must be a function, got number/,
    );
    expect(() => defineOperation(undefined as never, (n: number) => n)).toThrow(/defineOperation needs a name .*, got undefined/);
    expect(() => defineOperation('', (n: number) => n)).toThrow(/defineOperation needs a name/);
    expect(() => defineMonoid('test.options.NoCombine', { empty: () => 0 } as never)).toThrow(/combine must be a function, got undefined/);
  });

  it('refuses a retry policy built from bad numbers, naming the call and the value', () => {
    const refusals: [() => unknown, RegExp][] = [
      [() => Retry.immediate(-1), /^Retry.immediate: retries must be a non-negative integer, got -1$/],
      [() => Retry.immediate(1.5), /retries must be a non-negative integer, got 1.5/],
      [() => Retry.fixed(2, -5), /^Retry.fixed: delayMs must be a finite number of milliseconds, 0 or more, got -5$/],
      [() => Retry.fixed(2, 'soon' as never), /delayMs must be .*, got "soon"/],
      [() => Retry.exponential(2, { initialMs: Number.NaN, maxMs: 10 }), /^Retry.exponential: initialMs must be .*, got NaN$/],
      [() => Retry.exponential(2, { initialMs: 1, maxMs: Infinity }), /maxMs must be .*, got Infinity/],
      [() => Retry.exponential(2, { initialMs: 1, maxMs: 10, factor: 0.5 }), /factor must be a finite number of 1 or more, got 0.5/],
      [() => Retry.exponential(2, undefined as never), /options must be \{ initialMs, maxMs, factor\? \}, got undefined/],
    ];
    for (const [make, message] of refusals) {
      expect(make).toThrow(ArgumentError);
      expect(make).toThrow(message);
    }
  });

  it('still accepts every documented retry policy', async () => {
    const runtime = Runtime.local({ retry: Retry.none() });
    for (const retry of [Retry.none(), Retry.immediate(1), Retry.fixed(1, 5), Retry.exponential(2, { initialMs: 1, maxMs: 5 })]) {
      expect(await runtime.fanout(Increment, [1], { retry, timeoutMs: 10_000, maxInFlight: 1 })).toEqual([2]);
    }
    await runtime.close();
  });
});
