// The orchestrator's record of a lease's unanswered tasks (a window of bits
// over first attempts' indices, a Set for the rest) answers every question
// as a plain Set of task identities would, whatever order tasks are sent and
// answered in: indices in order and answered a window behind (the common
// case), scattered, far apart, retried, or sent and answered twice.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Unanswered } from '../../src/runtime/backends/amqp/orchestrator/unanswered.ts';

type Op = { add: boolean; index: number; stage: number; attempt: number };

/** Indices near one another (most tasks), some far out (beyond the window, and past 2^32, where 32-bit arithmetic would wrap), a few no lease holds (not safe integers). */
const index = fc.oneof(
  { weight: 8, arbitrary: fc.nat({ max: 5_000 }) },
  { weight: 1, arbitrary: fc.nat({ max: 2 ** 40 }) },
  { weight: 1, arbitrary: fc.constantFrom(2 ** 32, 2 ** 32 + 5, 2 ** 40) },
  { weight: 1, arbitrary: fc.constantFrom(2 ** 53, 0.5) },
);
const op = fc.record({ add: fc.boolean(), index, stage: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 2 }) }), attempt: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat({ max: 2 }) }) });

/** Sends indices `from`..`to` in order and answers each `lag` later: a directive's window sliding over them. */
const sliding = fc.tuple(fc.nat({ max: 100_000 }), fc.integer({ min: 1, max: 20_000 }), fc.integer({ min: 1, max: 5_000 })).map(([from, count, lag]) => {
  const ops: Op[] = [];
  for (let i = 0; i < count + lag; i++) {
    if (i < count) ops.push({ add: true, index: from + i, stage: 0, attempt: 0 });
    if (i >= lag) ops.push({ add: false, index: from + i - lag, stage: 0, attempt: 0 });
  }
  return ops;
});

/** Runs `ops` on an Unanswered and on a Set; the first answer in which they differ, or undefined. */
function mismatch(ops: readonly Op[]): string | undefined {
  const unanswered = new Unanswered();
  const model = new Set<string>();
  for (const [n, { add, index, stage, attempt }] of ops.entries()) {
    const id = `${index}:${stage}:${attempt}`;
    if (add) {
      unanswered.add(index, stage, attempt);
      model.add(id);
    } else if (unanswered.delete(index, stage, attempt) !== model.delete(id)) {
      return `op ${n}: delete ${id}`;
    }
    if (unanswered.size !== model.size) return `op ${n}: size ${unanswered.size}, not ${model.size}`;
  }
  for (const { index, stage, attempt } of ops) {
    const id = `${index}:${stage}:${attempt}`;
    if (unanswered.has(index, stage, attempt) !== model.has(id)) return `has ${id}`;
  }
  return undefined;
}

describe('AMQP orchestrator: unanswered tasks', () => {
  it('answers as a Set would, for tasks sent and answered in any order', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        expect(mismatch(ops)).toBeUndefined();
      }),
    );
  });

  it('answers as a Set would while a window of in-order tasks slides far past its first size', () => {
    fc.assert(
      fc.property(sliding, fc.array(op, { maxLength: 50 }), (slide, scattered) => {
        expect(mismatch([...scattered, ...slide, ...scattered])).toBeUndefined();
      }),
      { numRuns: 30 },
    );
  });
});
