// Which worker owns a key, and when two keys are the same key. Integers go
// by value (consecutive ids spread evenly and cheaply); anything else by a
// 32-bit FNV-1a hash of its string form, so equal keys meet on one worker on
// every platform. An array or object key has its JSON text as its form, and
// two such keys are the same key when their forms are: a composite key
// (`[user, day]`) is made afresh for each record and arrives decoded on its
// owner, so it is never the same object twice.

import { DataflowError } from './core.ts';

/** The form an array or object key is routed and compared by: its JSON text. */
export function keyForm(key: object): string {
  let form: string | undefined;
  try {
    form = JSON.stringify(key);
  } catch (error) {
    throw new DataflowError(`a key must have a JSON form when it is an array or object (${(error as Error).message}); got ${describe(key)}`, { cause: error });
  }
  // A function (or an object whose toJSON returns undefined) has none.
  if (form === undefined) throw new DataflowError(`a key must have a JSON form when it is an array or object; got ${describe(key)}`);
  return form;
}

function describe(key: unknown): string {
  if (typeof key === 'function') return `a function (${key.name || 'anonymous'})`;
  return (key as object).constructor?.name ?? 'an object';
}

/** The worker (0 .. peers - 1) that owns `key`. */
export function owner(key: unknown, peers: number): number {
  if (typeof key === 'number' && Number.isInteger(key) && key >= 0 && key < 2 ** 53) return key % peers;
  // undefined and symbols have no JSON form; any string will do to route them (a string equal to it lands with it, and stays a different key).
  const s = typeof key === 'string' ? key : (typeof key === 'object' && key !== null) || typeof key === 'function' ? keyForm(key) : String(key);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % peers;
}

/**
 * A map from keys to values under the dataflow's key equality: primitives
 * by value (as a Map compares them), arrays and objects by their JSON form,
 * in a map of their own so that no string key can stand for one.
 */
export class KeyMap<K, V> {
  private readonly byValue = new Map<K, V>();
  private readonly byForm = new Map<string, [K, V]>();

  get(key: K): V | undefined {
    return typeof key === 'object' && key !== null ? this.byForm.get(keyForm(key))?.[1] : this.byValue.get(key);
  }

  /** The value of `key`, made by `make` if it has none yet. */
  at(key: K, make: () => V): V {
    if (typeof key !== 'object' || key === null) {
      let v = this.byValue.get(key);
      if (v === undefined && !this.byValue.has(key)) this.byValue.set(key, (v = make()));
      return v as V;
    }
    const form = keyForm(key);
    let entry = this.byForm.get(form);
    if (entry === undefined) this.byForm.set(form, (entry = [key, make()]));
    return entry[1];
  }

  /** Sets `key` to `value`, or to `combine(had, value)` when it has one. */
  merge(key: K, value: V, combine: (a: V, b: V) => V): void {
    if (typeof key !== 'object' || key === null) {
      const had = this.byValue.get(key);
      this.byValue.set(key, had === undefined && !this.byValue.has(key) ? value : combine(had as V, value));
      return;
    }
    const form = keyForm(key);
    const entry = this.byForm.get(form);
    if (entry === undefined) this.byForm.set(form, [key, value]);
    else entry[1] = combine(entry[1], value);
  }

  /** Every [key, value], each key as first given. */
  *entries(): Generator<[K, V]> {
    yield* this.byValue;
    yield* this.byForm.values();
  }
}
