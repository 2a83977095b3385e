// Folding by neighbours gives the in-order fold whatever order results arrive in.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defineMonoid } from '../../src/runtime/index.ts';
import { RangeFold } from '../../src/runtime/core/ranges.ts';

// Concatenation is associative but not commutative: any swap shows.
const Concat = defineMonoid('test.ranges.Concat', { empty: () => '', combine: (a: string, b: string) => a + b });

describe('RangeFold', () => {
  it('folds values arriving in any order to their in-order concatenation', () => {
    const permutations = fc
      .integer({ min: 0, max: 60 })
      .chain((length) => fc.shuffledSubarray([...Array(length).keys()], { minLength: length, maxLength: length }));
    fc.assert(
      fc.property(permutations, (order) => {
        const fold = new RangeFold(Concat);
        for (const index of order) fold.add(index, `${index},`);
        const expected = [...Array(order.length).keys()].map((index) => `${index},`).join('');
        expect(fold.result(order.length)).toBe(expected);
      }),
    );
  });
});
