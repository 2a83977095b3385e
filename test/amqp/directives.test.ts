// Runtime.amqp with two `weft worker --amqp` processes: the seed example,
// map order over 5 000 items, and every directive form, unchanged.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IndexedStream, Literal } from '../../src/runtime/index.ts';
import { FibAt, Increment, Logged, ReturnsFunction, Sum } from './fixtures/operations.ts';
import { brokerAvailable, logLines, range, servingCluster } from './helpers.ts';

const available = brokerAvailable('test/amqp/directives.test.ts');

describe.runIf(available)('Runtime.amqp with 2 worker processes', () => {
  const cluster = servingCluster('directives');

  it('sums fib of 1..10 to 143 (the seed example)', async () => {
    expect(await IndexedStream.from(range(1, 10)).map(FibAt).fold(Sum).run(cluster.runtime)).toBe(143);
  });

  it('maps 5 000 items to outputs in input order', async () => {
    const inputs = range(0, 4_999);
    expect(await IndexedStream.from(inputs).map(Increment).run(cluster.runtime)).toEqual(inputs.map((n) => n + 1));
  });

  it('runs a chain, a Literal, call and fanout', async () => {
    const fibs = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144];
    expect(await IndexedStream.from(range(0, 10)).map(Increment).map(FibAt).run(cluster.runtime)).toEqual(range(1, 11).map((n) => fibs[n]));
    expect(await new Literal(FibAt, 20).run(cluster.runtime)).toBe(6765);
    expect(await cluster.runtime.call(Increment, 41)).toBe(42);
    expect(await cluster.runtime.fanout(FibAt, [5, 6, 7])).toEqual([5, 8, 13]);
  });

  it('fails a task whose output the codec refuses with an OutputError, as the other backends do', async () => {
    const e = await cluster.runtime.call(ReturnsFunction, 1).catch((error: unknown) => error);
    expect((e as Error).name).toBe('OperationError');
    expect((e as Error).message).toMatch(/OutputError: the output cannot be encoded: msgpack cannot carry a function/);
  });

  it('shares the work between both worker processes', async () => {
    const log = join(mkdtempSync(join(tmpdir(), 'weft-amqp-')), 'pids');
    const inputs = range(0, 39).map((value) => ({ value, ms: 20, log }));
    expect(await cluster.runtime.fanout(Logged, inputs)).toEqual(range(0, 39));
    const pids = new Set(logLines(log));
    expect(pids).toEqual(new Set(cluster.workers.map((worker) => String(worker.child.pid))));
  });
});
