// Folding by neighbours: results arrive in any order, and each one is
// combined with the completed ranges on either side of it as soon as they
// exist. Only associativity is used: a range's value is always
// combine(left part, right part) in index order, never the other way round.
// Memory holds one value per gap-separated range, so it is bounded by the
// in-flight window, not by the input length.

import { FoldError } from './errors.ts';
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

  /** Adds the value of input `index`. Throws `FoldError` if `combine` throws. */
  add(index: number, value: T): void {
    let range: Range<T> = { start: index, end: index + 1, value };
    const left = this.byEnd.get(index);
    if (left !== undefined) {
      this.remove(left);
      range = { start: left.start, end: range.end, value: this.combine(left, range) };
    }
    const right = this.byStart.get(range.end);
    if (right !== undefined) {
      this.remove(right);
      range = { start: range.start, end: right.end, value: this.combine(range, right) };
    }
    this.byStart.set(range.start, range);
    this.byEnd.set(range.end, range);
  }

  /** The fold of [0, length): every index must have been added. */
  result(length: number): T {
    if (length === 0) return this.monoid.empty();
    const whole = this.byStart.get(0);
    if (whole === undefined || whole.end !== length) {
      throw new Error(`fold is incomplete: ${this.byStart.size} ranges for ${length} inputs`);
    }
    return whole.value;
  }

  private combine(left: Range<T>, right: Range<T>): T {
    try {
      return this.monoid.combine(left.value, right.value);
    } catch (error) {
      throw new FoldError(this.monoid.name, left.start, left.end, right.end, error);
    }
  }

  private remove(range: Range<T>): void {
    this.byStart.delete(range.start);
    this.byEnd.delete(range.end);
  }
}
