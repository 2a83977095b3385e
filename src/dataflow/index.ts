// weft/dataflow: a data-parallel runtime on weft's channels. Every worker
// builds the same graph of operators; records move between workers in
// batches over allocator channels, with punctuation that tells each
// operator when a time is complete (docs/dataflow.md).

import type { Allocator } from '../allocator/index.ts';
import { Scope, type ScopeOptions } from './core.ts';

export { Scope, DataflowError, ITERATIONS, type Output, type Task, type ScopeOptions, type Time, type Emitter, type Sink } from './core.ts';
export { Stream, type UnaryLogic, type ReduceOptions } from './stream.ts';
export { type Columns, type ColumnArray } from './exchange.ts';
export { type ByteSums } from './bytes.ts';
export { owner } from './hash.ts';
export { iterate, iterationOf, epochOf, type LoopBody } from './loop.ts';
export { fromIterable, range, readFile, readLines, type FileOptions } from './sources.ts';

/**
 * Builds a dataflow on this worker with `build` (every worker builds the
 * same one), runs it until every source is exhausted and every time has
 * been delivered everywhere, and returns what `build` returned.
 */
export function dataflow<R>(allocator: Allocator, build: (scope: Scope) => R, options: ScopeOptions = {}): R {
  const scope = new Scope(allocator, options);
  const result = build(scope);
  scope.run();
  return result;
}
