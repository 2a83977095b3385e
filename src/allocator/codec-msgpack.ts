// The default codec, msgpack (msgpackr), and the value model it carries the
// same on every path: what it refuses, it refuses at send().

import { Packr } from 'msgpackr';
import type { Batcher, Codec } from './codec.ts';
import { CodecError } from '../errors.ts';

const MSGPACK_BATCH = 256;

// msgpackr refuses views of SharedArrayBuffer (it hands the buffer to a native
// string extractor), so shared payloads are first copied here. copyBuffers
// keeps decoded binary fields from pointing into this reused scratch.
let scratch = Buffer.allocUnsafe(1 << 16);
function unshared(bytes: Uint8Array): Uint8Array {
  if (!(bytes.buffer instanceof SharedArrayBuffer)) return bytes;
  if (scratch.length < bytes.length) scratch = Buffer.allocUnsafe(Math.max(bytes.length, scratch.length * 2));
  scratch.set(bytes);
  return scratch.subarray(0, bytes.length);
}

/** Nesting past this is checked for a cycle on the way down. */
const SHALLOW = 64;
const MAX_DEPTH = 1000;

// The value model of the default codec is the same on every path (to
// oneself, to another thread or process, task inputs and outputs): see
// "Messages: what arrives" in docs/semantics.md. msgpackr's moreTypes
// carries typed arrays, ArrayBuffer, DataView, Set, Map, Date, RegExp, Error
// and bigints of any size; without it a Float64Array arrived as the bytes of
// whatever its buffer held. Objects msgpack would turn silently into {}
// are refused here instead.
const REFUSED = new Map<unknown, string>([
  [Promise, 'a Promise (send what it resolves to)'],
  [WeakMap, 'a WeakMap'],
  [WeakSet, 'a WeakSet'],
  [WeakRef, 'a WeakRef'],
  [SharedArrayBuffer, 'a SharedArrayBuffer (its bytes would be copied, not shared)'],
  [Number, 'a Number object (send the number)'],
  [String, 'a String object (send the string)'],
  [Boolean, 'a Boolean object (send the boolean)'],
]);

/**
 * Refuses, at send, what msgpack would encode wrongly or fail on only when
 * the batch is encoded later: functions and symbols (turned into nothing),
 * the objects above, and cycles. A walk of plain types: about 10% of
 * encoding small objects. `path` holds the ancestors once deep enough to
 * suspect a cycle.
 */
function refuseUnencodable(value: unknown, depth: number, path?: Set<object>): void {
  switch (typeof value) {
    case 'number': case 'string': case 'boolean': case 'undefined': case 'bigint':
      return;
    case 'function':
      throw new CodecError(`msgpack cannot carry a function (${value.name || 'anonymous'})`);
    case 'symbol':
      throw new CodecError(`msgpack cannot carry a symbol (${value.toString()})`);
  }
  if (value === null || ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return;
  const o = value as object;
  const refused = REFUSED.get(o.constructor);
  if (refused !== undefined) throw new CodecError(`msgpack cannot carry ${refused}`);
  if (depth >= SHALLOW) {
    if (depth >= MAX_DEPTH) throw new CodecError(`msgpack carries values nested up to ${MAX_DEPTH} levels`);
    path ??= new Set();
    if (path.has(o)) throw new CodecError('msgpack cannot carry a circular structure (an object that contains itself)');
    path.add(o);
  }
  const next = depth + 1;
  if (Array.isArray(o)) {
    for (let i = 0; i < o.length; i++) refuseUnencodable(o[i], next, path);
  } else if (o instanceof Map) {
    for (const [k, v] of o) {
      refuseUnencodable(k, next, path);
      refuseUnencodable(v, next, path);
    }
  } else if (o instanceof Set) {
    for (const v of o) refuseUnencodable(v, next, path);
  } else {
    for (const k in o) refuseUnencodable((o as Record<string, unknown>)[k], next, path);
  }
  path?.delete(o);
}

/**
 * The CodecError the default codec raises for `value`, or undefined if it
 * carries it: for places that check a value before it is batched (a task's
 * input or output). Primitives cost one typeof.
 */
export function refusal(value: unknown): CodecError | undefined {
  try {
    refuseUnencodable(value, 0);
    return undefined;
  } catch (error) {
    return error as CodecError;
  }
}

class MsgpackBatcher<T> implements Batcher<T> {
  private readonly pending: T[] = [];
  constructor(private readonly packr: Packr) {}

  get count(): number {
    return this.pending.length;
  }

  add(message: T): boolean {
    refuseUnencodable(message, 0);
    return this.pending.push(message) >= MSGPACK_BATCH;
  }

  take(): Uint8Array {
    try {
      const bytes = this.packr.pack(this.pending);
      this.pending.length = 0;
      return bytes;
    } catch (error) {
      throw this.isolate(error);
    }
  }

  // A batch failed to encode: find the message at fault, drop only it, and
  // keep the others pending, so one bad value loses nothing else.
  private isolate(error: unknown): CodecError {
    for (let i = 0; i < this.pending.length; i++) {
      try {
        this.packr.pack(this.pending[i]);
      } catch (cause) {
        this.pending.splice(i, 1);
        return new CodecError(`msgpack cannot encode a message: ${(cause as Error).message}`, { cause });
      }
    }
    return new CodecError(`msgpack cannot encode the batch: ${(error as Error).message}`, { cause: error });
  }
}

/** The default codec: a batch is one msgpack array (records on, moreTypes on). */
export function msgpack<T>(): Codec<T> {
  const packr = new Packr({ useRecords: true, copyBuffers: true, moreTypes: true });
  return {
    id: 1,
    name: 'msgpack',
    batcher: () => new MsgpackBatcher<T>(packr),
    decode(bytes, count) {
      const batch = packr.unpack(unshared(bytes)) as T[];
      if (!Array.isArray(batch) || batch.length !== count) {
        throw new CodecError(`msgpack payload holds ${Array.isArray(batch) ? batch.length : 'no array of'} messages, header says ${count}`);
      }
      return batch;
    },
  };
}
