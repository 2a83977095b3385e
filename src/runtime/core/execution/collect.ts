// What a directive makes of its outputs: all of them in input order, or
// their fold by neighbours. Outputs arrive in any order, each once.

import { RangeFold } from '../ranges.ts';
import type { Monoid } from '../registry.ts';

export interface Collector {
  /** Input `index` was admitted; its output will come. */
  admitted(index: number): void;
  /** The output of input `index`. May throw (a fold's `combine`). */
  add(index: number, output: unknown): void;
  /** What the directive resolves to, once every one of `length` outputs was added. */
  result(length: number): unknown;
  /** Outputs added but not yet taken by a consumer (a stream's): they count in the window. */
  readonly held: number;
}

export function collector(fold: Monoid | undefined): Collector {
  return fold === undefined ? new InOrder() : new Folded(fold);
}

class InOrder implements Collector {
  private readonly outputs: unknown[] = [];
  readonly held = 0;

  admitted(): void {
    // Room for the output now, so that outputs arriving out of order write
    // inside the array (far writes past its end make V8 give up on it).
    this.outputs.push(undefined);
  }

  add(index: number, output: unknown): void {
    this.outputs[index] = output;
  }

  result(): unknown[] {
    return this.outputs;
  }
}

class Folded implements Collector {
  private readonly fold: RangeFold<unknown>;
  readonly held = 0;

  constructor(monoid: Monoid) {
    this.fold = new RangeFold(monoid);
  }

  admitted(): void {}

  add(index: number, output: unknown): void {
    this.fold.add(index, output);
  }

  result(length: number): unknown {
    return this.fold.result(length);
  }
}
