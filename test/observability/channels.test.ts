// weft's diagnostics channels, as an APM subscribes to them.

import diagnostics from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { IndexedStream, Runtime, defineMonoid, type DirectiveMessage, type RetryMessage, type TaskBatchMessage } from '../../src/index.ts';
import { Busy, FlakyOnce, Increment } from './fixtures/operations.ts';

const Sum = defineMonoid('obs.Sum', { empty: () => 0, combine: (a: number, b: number) => a + b });

type Event = [string, Record<string, unknown>];

/** Subscribes to every event of tracing channel `name` while `body` runs; returns them in order, each with a copy of its message. */
async function traced<T>(name: string, body: () => Promise<T>): Promise<Event[]> {
  const channel = diagnostics.tracingChannel(name);
  const events: Event[] = [];
  const record = (event: string) => (message: unknown) => events.push([event, { ...(message as Record<string, unknown>) }]);
  const handlers = { start: record('start'), end: record('end'), asyncStart: record('asyncStart'), asyncEnd: record('asyncEnd'), error: record('error') };
  channel.subscribe(handlers);
  try {
    await body().catch(() => {});
  } finally {
    channel.unsubscribe(handlers);
  }
  return events;
}

describe('diagnostics channels', () => {
  it('weft:directive traces a directive from run() to its outcome: operations, fold, backend, task count, result', async () => {
    const runtime = Runtime.local();
    const events = await traced('weft:directive', () => IndexedStream.from([1, 2, 3]).map(Increment).fold(Sum).run(runtime));
    expect(events.map(([event]) => event)).toEqual(['start', 'end', 'asyncStart', 'asyncEnd']);
    expect(events[0]![1]).toMatchObject({ operations: ['obs.Increment'], fold: 'obs.Sum', backend: 'local', tasks: 0 });
    expect(events[3]![1]).toMatchObject({ tasks: 3, result: 9 });
    await runtime.close();
  });

  it('weft:directive reports a failed directive on error, with its error', async () => {
    const runtime = Runtime.local({ retry: { retries: 0, delayMs: () => 0 } });
    const events = await traced('weft:directive', () => runtime.fanout(FlakyOnce, [1]));
    expect(events.map(([event]) => event)).toEqual(['start', 'end', 'error', 'asyncStart', 'asyncEnd']);
    expect((events[2]![1] as unknown as DirectiveMessage).error).toMatchObject({ name: 'RetriesExhaustedError' });
    await runtime.close();
  });

  it('weft:directive counts the tasks of a bare fold as none, and a chain stage by stage', async () => {
    const runtime = Runtime.local();
    const fold = await traced('weft:directive', () => IndexedStream.from([1, 2]).fold(Sum).run(runtime));
    expect(fold.at(-1)![1]).toMatchObject({ operations: [], fold: 'obs.Sum', tasks: 0, result: 3 });
    const chain = await traced('weft:directive', () => IndexedStream.from([1, 2]).map(Increment).map(Increment).run(runtime));
    expect(chain.at(-1)![1]).toMatchObject({ operations: ['obs.Increment', 'obs.Increment'], tasks: 4 });
    await runtime.close();
  });

  it('weft:directive traces a stream from the first next() that begins it to its end, its tasks counted', async () => {
    const runtime = Runtime.local();
    // Made, not begun: nothing.
    expect(await traced('weft:directive', async () => void IndexedStream.from([1]).map(Increment).stream(runtime))).toEqual([]);
    const outputs: number[] = [];
    const events = await traced('weft:directive', async () => {
      for await (const [, output] of IndexedStream.from([1, 2, 3]).map(Increment).stream(runtime)) outputs.push(output);
    });
    expect(outputs.sort()).toEqual([2, 3, 4]);
    expect(events.map(([event]) => event)).toEqual(['start', 'end', 'asyncStart', 'asyncEnd']);
    expect(events[0]![1]).toMatchObject({ operations: ['obs.Increment'], fold: undefined, backend: 'local', tasks: 0 });
    expect(events[3]![1]).toMatchObject({ tasks: 3 });
    expect(events[3]![1].error).toBeUndefined();
    await runtime.close();
  });

  it('weft:directive ends a stream whose consumer leaves early without an error, and reports a failed one on error', async () => {
    const runtime = Runtime.local({ retry: { retries: 0, delayMs: () => 0 } });
    const left = await traced('weft:directive', async () => {
      for await (const pair of IndexedStream.from([1, 2, 3, 4]).map(Busy).stream(runtime)) if (pair !== undefined) break;
    });
    expect(left.map(([event]) => event)).toEqual(['start', 'end', 'asyncStart', 'asyncEnd']);
    expect(left[3]![1].error).toBeUndefined();
    const failed = await traced('weft:directive', async () => {
      for await (const pair of IndexedStream.from([1]).map(FlakyOnce).stream(runtime)) void pair;
    });
    expect(failed.map(([event]) => event)).toEqual(['start', 'end', 'error', 'asyncStart', 'asyncEnd']);
    expect((failed[2]![1] as unknown as DirectiveMessage).error).toMatchObject({ name: 'RetriesExhaustedError' });
    await runtime.close();
  });

  it('weft:task traces the batches a worker runs, each of one operation of one directive', async () => {
    const runtime = Runtime.local();
    const events = await traced('weft:task', async () => {
      await runtime.fanout(Busy, [1, 1, 1]);
      await runtime.fanout(FlakyOnce, [1, 2]).catch(() => {});
    });
    const starts = events.filter(([event]) => event === 'start').map(([, message]) => message as unknown as TaskBatchMessage);
    const ends = events.filter(([event]) => event === 'end').map(([, message]) => message as unknown as TaskBatchMessage);
    expect(starts.length).toBe(ends.length);
    expect(starts.every((message) => message.worker === 0 && message.traceContext === undefined)).toBe(true);
    const count = (operation: string, field: 'tasks' | 'failed') => ends.filter((m) => m.operation === operation).reduce((sum, m) => sum + m[field], 0);
    expect(count('obs.Busy', 'tasks')).toBe(3);
    expect(count('obs.Busy', 'failed')).toBe(0);
    // The first attempts fail (transient), the retries succeed.
    expect(count('obs.FlakyOnce', 'tasks')).toBe(4);
    expect(count('obs.FlakyOnce', 'failed')).toBe(2);
    await runtime.close();
  });

  it('weft:retry tells of each retry: operation, input index, the attempt to come, the delay, the error', async () => {
    const runtime = Runtime.local({ retry: { retries: 2, delayMs: (attempt) => attempt } });
    const retries: RetryMessage[] = [];
    const listener = (message: unknown) => retries.push(message as RetryMessage);
    diagnostics.subscribe('weft:retry', listener);
    try {
      await runtime.fanout(FlakyOnce, [7]);
    } finally {
      diagnostics.unsubscribe('weft:retry', listener);
    }
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatchObject({ operation: 'obs.FlakyOnce', index: 0, attempt: 2, delayMs: 1 });
    expect(retries[0]!.error.message).toBe('first attempt at 7');
    await runtime.close();
  });

  it('publishes nothing to a channel nobody subscribes to', async () => {
    // A subscriber to the start channel alone: the tracing channel has
    // subscribers, the others do not, and their messages go nowhere.
    const runtime = Runtime.local();
    expect(diagnostics.tracingChannel('weft:directive').hasSubscribers).toBe(false);
    const seen: unknown[] = [];
    const listener = (message: unknown) => seen.push(message);
    diagnostics.subscribe('tracing:weft:directive:start', listener);
    expect(diagnostics.tracingChannel('weft:directive').hasSubscribers).toBe(true);
    await runtime.fanout(Increment, [1]);
    diagnostics.unsubscribe('tracing:weft:directive:start', listener);
    expect(seen).toHaveLength(1);
    expect(diagnostics.tracingChannel('weft:directive').hasSubscribers).toBe(false);
    await runtime.close();
  });
});
