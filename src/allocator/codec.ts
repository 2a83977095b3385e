// Codecs turn a batch of messages into one frame payload and back. A pusher
// owns a Batcher, so `send` is a store into a buffer and encoding happens
// once per batch: that is where the per-message cost goes away.

import { Packr } from 'msgpackr';
import { CodecError } from '../errors.ts';

export interface Batcher<T> {
  /** Messages added since the last take(). */
  readonly count: number;
  /** Adds a message; returns true when the batch is full and should be taken. */
  add(message: T): boolean;
  /**
   * Encodes the pending messages and empties the batcher. The bytes may be
   * reused by the next take(): copy them before then if they must live on.
   */
  take(): Uint8Array;
}

export interface Codec<T> {
  /** On the wire in every DATA frame, so a receiver can refuse a mismatch. */
  readonly id: number;
  readonly name: string;
  batcher(): Batcher<T>;
  /**
   * Decodes a payload of `count` messages. `bytes` may view shared memory
   * (a ring), valid only during the call unless the codec `lends`; `owned`
   * says the bytes are fresh memory no one else holds, free to adopt.
   */
  decode(bytes: Uint8Array, count: number, owned: boolean): ArrayLike<T>;
  /**
   * The decoded messages are views of the ring itself (zero copy). They stay
   * valid until the receiver's next `receive()` or `awaitEvents()`, which is
   * when the ring takes their bytes back.
   */
  readonly lends?: boolean;
  /**
   * Optional: the puller has handed out every message of a decoded batch.
   * A codec whose batch containers never reach the user (numbers: recv
   * returns the values, not the array) may reuse the container.
   */
  recycle?(batch: ArrayLike<T>): void;
}

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

function msgpack<T>(): Codec<T> {
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

const NUMBER_BATCH = 4096;

class NumberBatcher implements Batcher<number> {
  private readonly staged = new Float64Array(NUMBER_BATCH);
  private readonly bytes = new Uint8Array(this.staged.buffer);
  count = 0;

  add(message: number): boolean {
    if (typeof message !== 'number') throw new CodecError(`the number codec carries numbers, got ${describe(message)}`);
    this.staged[this.count++] = message;
    return this.count === NUMBER_BATCH;
  }

  take(): Uint8Array {
    const n = this.count;
    this.count = 0;
    return this.bytes.subarray(0, n * 8);
  }
}

// Full number batches are reused once read (Codec.recycle): a fresh 32 KiB
// array per batch costs more than the copy into it. Per thread, since each
// worker thread has its own module instance.
const numberPool: Float64Array[] = [];
// Self-limiting: it never holds more arrays than were once read at the same
// time (at most a ring's worth of batches per receive()).
const NUMBER_POOL = 256;

const numbers: Codec<number> = {
  id: 2,
  name: 'number',
  batcher: () => new NumberBatcher(),
  decode(bytes, count) {
    if (bytes.length !== count * 8) throw new CodecError(`number payload of ${bytes.length} bytes cannot hold ${count} float64 values`);
    // One memcpy (set(), not slice(): slice copies element by element).
    // Payloads are 8-aligned in rings, so the source is viewed in place;
    // elsewhere the bytes are copied as bytes.
    const out = (count === NUMBER_BATCH ? numberPool.pop() : undefined) ?? new Float64Array(count);
    if (bytes.byteOffset % 8 === 0) out.set(new Float64Array(bytes.buffer, bytes.byteOffset, count));
    else new Uint8Array(out.buffer).set(bytes);
    return out;
  },
  recycle(batch) {
    if (batch.length === NUMBER_BATCH && numberPool.length < NUMBER_POOL) numberPool.push(batch as Float64Array);
  },
};

type TypedArray =
  | Uint8Array | Int8Array | Uint8ClampedArray | Uint16Array | Int16Array
  | Uint32Array | Int32Array | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

interface TypedArrayConstructor<A extends TypedArray> {
  new (buffer: ArrayBuffer, byteOffset?: number, length?: number): A;
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
}

const TYPED: TypedArrayConstructor<TypedArray>[] = [
  Uint8Array, Int8Array, Uint8ClampedArray, Uint16Array, Int16Array,
  Uint32Array, Int32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array,
];

// One typed array per frame, its bytes copied straight into the ring: no
// encoding, and no batching since such messages are usually large.
class TypedArrayBatcher<A extends TypedArray> implements Batcher<A> {
  private held: A | undefined;
  constructor(private readonly ctor: TypedArrayConstructor<A>) {}

  get count(): number {
    return this.held === undefined ? 0 : 1;
  }

  add(message: A): boolean {
    if (!(message instanceof this.ctor)) {
      throw new CodecError(`expected a ${this.ctor.name}, got ${describe(message)}`);
    }
    this.held = message;
    return true;
  }

  take(): Uint8Array {
    const a = this.held!;
    this.held = undefined;
    return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  }
}

export interface TypedArrayOptions {
  /**
   * Receive views of the ring instead of copies: no copy on the receiving
   * side at all, but a message is valid only until the receiver's next
   * `receive()` or `awaitEvents()` (copy it to keep it), and it views a
   * SharedArrayBuffer. Only the receiver's choice: the wire is the same.
   */
  borrow?: boolean;
}

function typedArray<A extends TypedArray>(ctor: TypedArrayConstructor<A>, options: TypedArrayOptions = {}): Codec<A> {
  const index = TYPED.indexOf(ctor as unknown as TypedArrayConstructor<TypedArray>);
  if (index < 0) throw new CodecError(`${String((ctor as { name?: string }).name)} is not a typed array constructor`);
  const borrow = options.borrow === true;
  return {
    id: 16 + index,
    name: borrow ? `${ctor.name} (borrowed)` : ctor.name,
    lends: borrow,
    batcher: () => new TypedArrayBatcher(ctor),
    decode(bytes, count, owned) {
      if (count !== 1 || bytes.length % ctor.BYTES_PER_ELEMENT !== 0) {
        throw new CodecError(`${ctor.name} payload of ${bytes.length} bytes for ${count} messages is malformed`);
      }
      // Payloads are 8-aligned in rings and in reassembly buffers, so a view
      // of any element type fits where the bytes already are.
      if (borrow || (owned && bytes.byteOffset % ctor.BYTES_PER_ELEMENT === 0)) {
        return [new ctor(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.length / ctor.BYTES_PER_ELEMENT)];
      }
      // allocUnsafeSlow: an ArrayBuffer of its own, not zero-filled first,
      // since every byte is overwritten at once (a 1 MiB memset is a
      // quarter of the receiver's work otherwise).
      const copy = Buffer.allocUnsafeSlow(bytes.length);
      copy.set(bytes);
      return [new ctor(copy.buffer as ArrayBuffer, copy.byteOffset, bytes.length / ctor.BYTES_PER_ELEMENT)];
    },
  };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}

/** The codecs weft ships. msgpack is the default for `allocate`. */
export const codecs = {
  msgpack,
  /** Float64 numbers, 8 bytes each, batched, no encoding. */
  number: numbers,
  /** One typed array per message, its bytes copied as they are (or lent: `{ borrow: true }`). */
  typedArray,
};
