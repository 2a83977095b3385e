// Exchanging messages between workers: the examples a user starts from.
// Worker code lives in fixtures/workers.ts and runs in the module form.

import { describe, expect, it } from 'vitest';
import { Config, initialize } from '../../src/index.ts';
import { ALL_TO_ALL, BATCHED, FLOOD, MAYBE, PARKED_PINGS, PINGS, TWO_WAITS_EPISODES } from './fixtures/workers.ts';
import { STALLED_A } from './fixtures/waits.ts';

const workers = new URL('./fixtures/workers.ts', import.meta.url);
const waits = new URL('./fixtures/waits.ts', import.meta.url);

describe('exchange', () => {
  it('timely hello: two workers each say hello to both', async () => {
    const guards = await initialize<number>(Config.process(2), { module: workers, export: 'hello' });
    expect(await guards.join()).toEqual([0, 1]);
  });

  it('one worker: Config.thread() says hello to itself', async () => {
    const guards = await initialize<number>(Config.thread(), { module: workers, export: 'hello' });
    expect(await guards.join()).toEqual([0]);
  });

  it('all-to-all among 4 workers: exact counts and per-sender sequences, iteration ends when every sender closed', async () => {
    const guards = await initialize<number[]>(Config.process(4), { module: workers, export: 'allToAll' });
    expect(await guards.join()).toEqual(Array.from({ length: 4 }, () => [ALL_TO_ALL, ALL_TO_ALL, ALL_TO_ALL, ALL_TO_ALL]));
  });

  it('async iteration ends once every sender closed, including one that returned without closing', async () => {
    const guards = await initialize<number[]>(Config.process(2), { module: workers, export: 'implicitClose' });
    expect(await guards.join()).toEqual([[], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
  });

  it('for await ends in a worker that only receives and never closed its own pushers', async () => {
    const guards = await initialize<unknown>(Config.process(2), { module: workers, export: 'receiveOnly' });
    const [, receiver] = (await guards.join()) as [number, { got: number[]; late?: string }];
    expect(receiver.got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(receiver.late).toBe('channel 50: send to worker 1 (itself) after close()');
  });

  it('pull.available tells a message that is undefined from none arrived, from a peer and from oneself', async () => {
    const guards = await initialize<{ got: unknown[]; emptyAvailable: boolean }>(Config.process(2), { module: workers, export: 'undefinedMessages' });
    expect(await guards.join()).toEqual([
      { got: MAYBE, emptyAvailable: false },
      { got: MAYBE, emptyAvailable: false },
    ]);
  });

  it('batches() yields arrays (Float64Arrays for numbers) in order, each intact until the next iteration', async () => {
    const guards = await initialize<{ objects: number; numbers: number; own: number[]; kinds: string[] }>(Config.process(2), { module: workers, export: 'batched' });
    const [sender, receiver] = await guards.join();
    expect(receiver).toEqual({ objects: BATCHED, numbers: BATCHED, own: [], kinds: ['Array', 'Float64Array'] });
    expect(sender).toEqual({ objects: 0, numbers: 0, own: [0, 1, 2], kinds: [] });
  });

  it('async ping-pong: await next(), awaitEventsAsync() and for await answer every round trip, spinning or parked', async () => {
    for (const [name, rounds] of [['pingPongAsync', PINGS], ['pingPongAsyncParked', PARKED_PINGS]] as const) {
      const guards = await initialize<number>(Config.process(2), { module: workers, export: name });
      expect(await guards.join()).toEqual([rounds, rounds]);
    }
  });

  // Both loops park on the one doorbell of their worker; the test's timeout
  // is the failure signal: a lost wake-up leaves a loop parked for ever.
  it('two concurrent async waits in one parked worker are each woken for their own data', { timeout: 60_000 }, async () => {
    const guards = await initialize<number>(Config.process(3), { module: workers, export: 'twoWaits' });
    const pings = (worker: number): number => Array.from({ length: TWO_WAITS_EPISODES }, (_, e) => [0, (e * 7) % 13, (e * 5) % 11][worker]!).reduce((x, y) => x + y, 0);
    expect(await guards.join()).toEqual([pings(1) + pings(2), pings(1), pings(2)]);
  });

  it('a message an async worker sends itself wakes another of its tasks parked in for await on that channel', async () => {
    const guards = await initialize<number[]>(Config.process(2), { module: waits, export: 'selfSendWakesOtherTask' });
    expect(await guards.join()).toEqual([[1, 2], []]);
  });

  it('an async worker closing its pusher to itself ends another of its tasks parked in for await on that channel', async () => {
    const guards = await initialize<number[]>(Config.process(2), { module: waits, export: 'selfCloseEndsOtherTask' });
    expect(await guards.join()).toEqual([[1], []]);
  });

  it('reading a stalled channel under its bound wakes another task of the worker parked on a channel whose frame was behind it', async () => {
    const guards = await initialize<number[]>(Config.process(2, { ringBytes: 1 << 16 }), { module: waits, export: 'stalledChannelWakesOtherTask' });
    expect(await guards.join()).toEqual([[STALLED_A, 42], []]);
  });

  it('an async receiver that waits long past its spin, with nothing else keeping its thread alive, gets every message', async () => {
    const guards = await initialize<number[]>(Config.process(2), { module: workers, export: 'lateMessages' });
    expect(await guards.join()).toEqual([[], [1, 2, 3, 4, 5]]);
  });

  it('two workers flooding each other before receiving do not deadlock, overflow, and deliver in order', async () => {
    // A 64 KiB ring holds a small part of the ~1.3 MB each worker sends.
    const guards = await initialize<{ overflow: number; received: number }>(Config.process(2, { ringBytes: 1 << 16 }), { module: workers, export: 'flood' });
    const results = await guards.join();
    expect(Math.max(...results.map((r) => r.overflow))).toBeGreaterThan(0);
    for (const r of results) expect(r.received).toBe(FLOOD);
  });

  it('an async worker can wait for its overflow to drain', async () => {
    const guards = await initialize<{ overflow: number; afterDrain: number; received: number }>(Config.process(2, { ringBytes: 1 << 16 }), { module: workers, export: 'floodAsync' });
    const results = await guards.join();
    expect(Math.max(...results.map((r) => r.overflow))).toBeGreaterThan(0);
    for (const r of results) {
      expect(r.afterDrain).toBe(0);
      expect(r.received).toBe(FLOOD);
    }
  });

  it('number and typed-array codecs round-trip; a message to oneself arrives as a copy', async () => {
    const guards = await initialize<Awaited<ReturnType<typeof import('./fixtures/workers.ts').codecRoundTrip>>>(Config.process(2), { module: workers, export: 'codecRoundTrip' });
    const expectedNumbers = [...Array.from({ length: 5000 }, (_, i) => i / 7), NaN, -0, Infinity, -Infinity, Number.MAX_VALUE, Number.MIN_VALUE];
    for (const r of await guards.join()) {
      expect(r.numbers.length).toBe(expectedNumbers.length);
      // Object.is tells -0 from 0 and matches NaN.
      expect(r.numbers.every((x, i) => Object.is(x, expectedNumbers[i]))).toBe(true);
      expect(r.floats).toEqual([new Float64Array([1.5, -2.25, Math.PI])]);
      expect(r.ints).toEqual([new Int32Array([-1, 2 ** 31 - 1, -(2 ** 31)])]);
      expect(r.bigs).toEqual([new BigInt64Array([2n ** 63n - 1n, -(2n ** 63n), 0n])]);
      expect(r.selfIsCopy).toBe(true);
    }
  });

  it('events() names each channel that received messages, and is empty once read', async () => {
    const guards = await initialize<number[][]>(Config.process(2), { module: workers, export: 'events' });
    for (const [seen, after] of await guards.join()) {
      // Channels 40 and 41 received data; 42 never did. Closes are not events.
      expect(new Set(seen)).toEqual(new Set([40, 41]));
      expect(after).toEqual([]);
    }
  });
});
