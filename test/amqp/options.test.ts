// Bad options to Runtime.amqp and WorkerRuntime.amqp: each is refused with an
// ArgumentError naming the option and the value, before anything connects
// (no broker is needed: the URL below has nothing listening, and a check
// that let a value through would hang on it until connectTimeoutMs).

import { describe, expect, it } from 'vitest';
import { ArgumentError, Runtime, WorkerRuntime, type AmqpRuntimeOptions, type AmqpWorkerOptions } from '../../src/runtime/index.ts';

const url = 'amqp://127.0.0.1:1';
const OPERATIONS = new URL('./fixtures/operations.ts', import.meta.url);

const badRuntimeOptions: [Partial<AmqpRuntimeOptions>, RegExp][] = [
  [{ url: undefined }, /Runtime\.amqp option url must be an amqp:\/\/ or amqps:\/\/ URL, got undefined/],
  [{ url: 'http://localhost' }, /url must be an amqp:\/\/ or amqps:\/\/ URL, got "http:\/\/localhost"/],
  [{ url: 'not a url' }, /url must be .*, got "not a url"/],
  [{ prefix: 'has space' }, /AMQP option prefix must be letters, digits and _.:- \(at least one\), got "has space"/],
  [{ prefix: '' }, /prefix must be .*, got ""/],
  [{ maxBatch: 0 }, /Runtime\.amqp option maxBatch must be a positive integer, got 0/],
  [{ deliveryLimit: 1.5 }, /deliveryLimit must be a positive integer, got 1.5/],
  [{ heartbeatSeconds: -1 }, /heartbeatSeconds must be a positive integer, got -1/],
  [{ reconnectTimeoutMs: Number.NaN }, /reconnectTimeoutMs must be a positive number of milliseconds up to 2147483647 .*, got NaN/],
  [{ connectTimeoutMs: 0 }, /connectTimeoutMs must be .*, got 0/],
  [{ backoff: { initialMs: -1 } }, /backoff\.initialMs must be .*, got -1/],
  [{ maxInFlight: 0 }, /runtime option maxInFlight must be a positive integer, got 0/],
  // Misspelt or misplaced: ignored, the runtime would run on a default without a word.
  [{ maxbatch: 16 } as never, /^Runtime\.amqp option "maxbatch" is unknown \(known: retry, .*, url, prefix, .*, maxBatch, reconnectTimeoutMs\)$/],
  [{ prefetch: 4 } as never, /^Runtime\.amqp option "prefetch" is unknown/],
  [{ backoff: { initialMS: 10 } } as never, /^Runtime\.amqp option backoff "initialMS" is unknown \(known: initialMs, maxMs\)$/],
];

const badWorkerOptions: [Partial<AmqpWorkerOptions>, RegExp][] = [
  [{ url: 'amqp//missing-colon' }, /WorkerRuntime\.amqp option url must be an amqp:\/\/ or amqps:\/\/ URL/],
  [{ prefix: 'a/b' }, /AMQP option prefix must be .*, got "a\/b"/],
  [{ prefetch: 0 }, /WorkerRuntime\.amqp option prefetch must be a positive integer, got 0/],
  [{ deliveryLimit: 0 }, /deliveryLimit must be a positive integer, got 0/],
  [{ thread: 2 } as never, /^WorkerRuntime\.amqp option "thread" is unknown \(known: url, .*, operations, threads, prefetch, cancelGraceMs, log\)$/],
  [{ maxBatch: 16 } as never, /^WorkerRuntime\.amqp option "maxBatch" is unknown/],
];

describe('AMQP options', () => {
  it.each(badRuntimeOptions)('Runtime.amqp refuses %o before connecting', async (bad, message) => {
    const attempt = Runtime.amqp({ url, connectTimeoutMs: 60_000, ...bad } as AmqpRuntimeOptions);
    await expect(attempt).rejects.toThrow(ArgumentError);
    await expect(attempt).rejects.toThrow(message);
  });

  it.each(badWorkerOptions)('WorkerRuntime.amqp refuses %o before connecting', async (bad, message) => {
    const attempt = WorkerRuntime.amqp({ url, operations: OPERATIONS, connectTimeoutMs: 60_000, ...bad });
    await expect(attempt).rejects.toThrow(ArgumentError);
    await expect(attempt).rejects.toThrow(message);
  });

  it('WorkerRuntime.amqp names an operations module its threads cannot import, before connecting', async () => {
    const attempt = WorkerRuntime.amqp({ url, operations: '/nonexistent/operations.ts', threads: 1, connectTimeoutMs: 60_000 });
    await expect(attempt).rejects.toThrow(/failed to start: cannot import operations module file:\/\/\/nonexistent\/operations\.ts/);
  });
});
