// The task and result bodies: what a worker decodes is what the orchestrator
// encoded, whether a batch's indices run on by one (sent as the first alone)
// or not; and a body whose index column does not fit its batch is refused.

import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { MalformedMessageError } from '../../src/runtime/backends/amqp/shared/errors.ts';
import { decodeResults, decodeTasks, encodeResults, encodeTasks } from '../../src/runtime/backends/amqp/shared/messages.ts';
import type { Task, TaskResult } from '../../src/runtime/core/task.ts';

const KEY = 'abcdef012345.7';
const packr = new Packr({ useRecords: true });

/** Indices of a batch: consecutive from a start (the common case), or any. */
const indices = fc.oneof(
  fc.tuple(fc.nat({ max: 2 ** 40 }), fc.integer({ min: 0, max: 300 })).map(([start, count]) => Array.from({ length: count }, (_, i) => start + i)),
  fc.array(fc.nat({ max: 2 ** 40 }), { maxLength: 300 }),
);
const small = fc.nat({ max: 3 });

describe('AMQP message bodies', () => {
  it('decodes the tasks it encoded, indices consecutive or not', () => {
    fc.assert(
      fc.property(indices, small, small, fc.array(fc.oneof(fc.integer(), fc.string(), fc.array(fc.integer())), { minLength: 300, maxLength: 300 }), (index, stage, attempt, inputs) => {
        const tasks: Task[] = index.map((n, i) => ({ op: i % 3 === 0 ? 'test.a' : 'test.b', input: inputs[i], key: KEY, index: n, stage, attempt: attempt + (i % 2) }));
        expect(decodeTasks(encodeTasks(tasks), KEY)).toEqual(tasks);
      }),
    );
  });

  it('decodes the results it encoded, indices consecutive or not', () => {
    fc.assert(
      fc.property(indices, small, fc.array(fc.integer(), { minLength: 300, maxLength: 300 }), (index, stage, outputs) => {
        const results: TaskResult[] = index.map((n, i) =>
          i % 5 === 4
            ? { key: KEY, index: n, stage, attempt: 0, error: { name: 'Error', message: `task ${n}`, stack: undefined, transient: false } }
            : { key: KEY, index: n, stage, attempt: 0, output: outputs[i], us: i },
        );
        expect(decodeResults(encodeResults(results), KEY)).toEqual(results);
      }),
    );
  });

  it('sends the indices of a consecutive batch as the first alone: half the bytes of 256 tiny tasks', () => {
    const tasks: Task[] = Array.from({ length: 256 }, (_, i) => ({ op: 'test.a', input: 50_000 + i, key: KEY, index: 50_000 + i, stage: 0, attempt: 0 }));
    const shuffled = tasks.map((task, i) => ({ ...task, index: i % 2 === 0 ? task.index + 1 : task.index - 1 }));
    expect(encodeTasks(tasks).length).toBeLessThan(encodeTasks(shuffled).length / 1.8);
  });

  it('refuses a body whose index column does not fit its batch', () => {
    const bodies = [
      packr.pack([['test.a'], 0, [1, 2], 0, 0, [10, 20, 30]]),
      packr.pack([['test.a'], 0, -1, 0, 0, [10]]),
      packr.pack([['test.a'], 0, 'x', 0, 0, [10]]),
      packr.pack([['test.a'], 0, 2 ** 53, 0, 0, [10, 20]]),
    ];
    for (const body of bodies) expect(() => decodeTasks(body, KEY)).toThrow(MalformedMessageError);
    expect(() => decodeResults(packr.pack([[1], 0, 0, [10, 20], null, null]), KEY)).toThrow(/unequal index and output columns/);
    expect(() => decodeResults(packr.pack([1.5, 0, 0, [10], null, null]), KEY)).toThrow(MalformedMessageError);
  });
});
