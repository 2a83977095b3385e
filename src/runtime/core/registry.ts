// Operations and monoids, found by a stable name. A task names its operation;
// the worker looks that name up here. No code ever travels: a worker can only
// run what the modules it imported defined.

import type { TaskContext } from './context.ts';
import { ArgumentError, DuplicateDefinitionError } from './errors.ts';

/**
 * What an operation runs: the input, and the task's context (its cancel
 * signal, index, attempt, progress). A one-argument function is one too.
 */
export type OperationFn<I, O> = (input: I, ctx: TaskContext) => O | Promise<O>;

/** A named function from `I` to `O`, run on workers. May be async. */
export interface Operation<I = any, O = any> {
  readonly kind: 'operation';
  readonly name: string;
  readonly fn: OperationFn<I, O>;
}

/** A named associative combine with its identity. Commutativity is never assumed. */
export interface Monoid<T = any> {
  readonly kind: 'monoid';
  readonly name: string;
  readonly empty: () => T;
  readonly combine: (left: T, right: T) => T;
}

type Definition = Operation | Monoid;

/**
 * Internal operations whose every task is a batch of tasks of its own (the
 * AMQP worker's task message, run whole on a thread). The worker loop
 * publishes no `weft:task` batch for them (they publish their own tasks'),
 * and sends each one's result as soon as it returns rather than with the
 * results of the tasks run after it: a batch's results are a whole broker
 * message, which a pipeline waits for.
 */
export const batchOperations = new Set<string>();

// Held on globalThis so that two copies of this module (say `dist` imported by
// a user's operations file and `src` by a test) still share one registry.
const REGISTRY_KEY = Symbol.for('weft.runtime.registry');
const registry: Map<string, Definition> = ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] ??= new Map()) as Map<
  string,
  Definition
>;

// A module evaluated twice (test isolation, hot reload) defines the same
// source again under the same name: that is the same definition, and the
// newer one replaces the older. Different source under one name is refused.
function sourceOf(definition: Definition): string {
  return definition.kind === 'operation'
    ? `operation:${definition.fn.toString()}`
    : `monoid:${definition.empty.toString()}\n${definition.combine.toString()}`;
}

function checkName(what: string, name: unknown): void {
  if (typeof name !== 'string' || name === '') {
    throw new ArgumentError(`${what} needs a name (a non-empty string, stable across processes), got ${typeof name === 'string' ? '""' : String(name)}`);
  }
}

function checkFunction(what: string, name: string, part: string, fn: unknown): void {
  if (typeof fn !== 'function') throw new ArgumentError(`${what} '${name}': ${part} must be a function, got ${fn === null ? 'null' : typeof fn}`);
}

function register<D extends Definition>(definition: D): D {
  const existing = registry.get(definition.name);
  if (existing !== undefined && sourceOf(existing) !== sourceOf(definition)) {
    throw new DuplicateDefinitionError(definition.name);
  }
  registry.set(definition.name, definition);
  return definition;
}

/**
 * Defines and registers an operation under `name`, which must be stable
 * across processes. `fn(input, ctx)` may ignore `ctx` (see TaskContext).
 */
export function defineOperation<I, O>(name: string, fn: OperationFn<I, O>): Operation<I, Awaited<O>> {
  checkName('defineOperation', name);
  checkFunction('defineOperation', name, 'the operation', fn);
  return register({ kind: 'operation', name, fn } as Operation<I, Awaited<O>>);
}

/** Defines and registers a monoid: `combine` must be associative and `empty()` its identity. */
export function defineMonoid<T>(name: string, monoid: { empty: () => T; combine: (left: T, right: T) => T }): Monoid<T> {
  checkName('defineMonoid', name);
  checkFunction('defineMonoid', name, 'empty', monoid?.empty);
  checkFunction('defineMonoid', name, 'combine', monoid?.combine);
  return register({ kind: 'monoid', name, empty: monoid.empty, combine: monoid.combine });
}

export function lookupOperation(name: string): Operation | undefined {
  const definition = registry.get(name);
  return definition?.kind === 'operation' ? definition : undefined;
}
