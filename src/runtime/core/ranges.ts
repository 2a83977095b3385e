// Folding by neighbours: results arrive in any order, and each one is
// combined with the completed ranges on either side of it as soon as they
// exist. Only associativity is used: a range's value is always
// combine(left part, right part) in index order, never the other way round.
// Memory holds one value per gap-separated range, so it is bounded by the
// in-flight window, not by the input length.

import { ArgumentError, FoldError } from './errors.ts';
import type { Monoid } from './registry.ts';

interface Range<T> {
  start: number;
  end: number;
  value: T;
}

export class RangeFold<T> {
  private readonly byStart = new Map<number, Range<T>>();
  private readonly byEnd = new Map<number, Range<T>>();

  constructor(private readonly monoid: Monoid<T>) {}

  /**
   * Adds the value of input `index`. Throws `FoldError` if `combine` throws.
   * A neighbouring range grows in place (one map entry moves), so results
   * arriving in order cost no new range.
   */
  add(index: number, value: T): void {
    const left = this.byEnd.get(index);
    const right = this.byStart.get(index + 1);
    if (left !== undefined) {
      let merged = this.combine(left.value, value, left.start, index, index + 1);
      let end = index + 1;
      if (right !== undefined) {
        merged = this.combine(merged, right.value, left.start, end, right.end);
        end = right.end;
        this.byStart.delete(right.start);
      }
      this.byEnd.delete(index);
      left.end = end;
      left.value = merged;
      this.byEnd.set(end, left);
      return;
    }
    if (right !== undefined) {
      const merged = this.combine(value, right.value, index, index + 1, right.end);
      this.byStart.delete(right.start);
      right.start = index;
      right.value = merged;
      this.byStart.set(index, right);
      return;
    }
    const range: Range<T> = { start: index, end: index + 1, value };
    this.byStart.set(index, range);
    this.byEnd.set(index + 1, range);
  }

  /** The fold of [0, length): every index must have been added. */
  result(length: number): T {
    if (length === 0) return this.monoid.empty();
    const whole = this.byStart.get(0);
    if (whole === undefined || whole.end !== length) {
      throw new ArgumentError(`fold of ${length} inputs asked while ${this.byStart.size} separate ranges are held: not every index was added`);
    }
    return whole.value;
  }

  private combine(left: T, right: T, start: number, middle: number, end: number): T {
    try {
      return this.monoid.combine(left, right);
    } catch (error) {
      throw new FoldError(this.monoid.name, start, middle, end, error);
    }
  }
}
