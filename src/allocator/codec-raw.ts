// The raw codecs: numbers and typed arrays travel as their bytes, with no
// encoding.

import type { Batcher, Codec } from './codec.ts';
import { CodecError } from '../errors.ts';

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

/** Float64 numbers, 8 bytes each, batched, no encoding. */
export const numbers: Codec<number> = {
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

/** The typed arrays the typedArray codec carries. */
export type TypedArray =
  | Uint8Array | Int8Array | Uint8ClampedArray | Uint16Array | Int16Array
  | Uint32Array | Int32Array | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

/** A typed array's constructor, as codecs.typedArray takes it. */
export interface TypedArrayConstructor<A extends TypedArray> {
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
    // Its bytes were transferred away (postMessage): reading them would throw a TypeError later, at flush.
    if ((message.buffer as ArrayBuffer).detached === true) throw new CodecError(`the ${this.ctor.name} views a detached ArrayBuffer (transferred away): it has no bytes to send`);
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
   * `receive()` or wait (`awaitEvents()`, the next step of a `for await`,
   * any other task's wait in an async worker; copy it to keep it), and it views a
   * SharedArrayBuffer. Only the receiver's choice: the wire is the same.
   */
  borrow?: boolean;
}

/** One typed array per message, its bytes copied as they are (or lent: `{ borrow: true }`). */
export function typedArray<A extends TypedArray>(ctor: TypedArrayConstructor<A>, options: TypedArrayOptions = {}): Codec<A> {
  checkOptions(options);
  const index = TYPED.indexOf(ctor as unknown as TypedArrayConstructor<TypedArray>);
  if (index < 0) {
    const what = typeof ctor === 'function' ? ctor.name || 'an anonymous function' : typeof ctor === 'string' ? JSON.stringify(ctor) : String(ctor);
    throw new CodecError(`codecs.typedArray needs a typed array constructor (Float64Array, Uint8Array, ...), got ${what}`);
  }
  const borrow = options.borrow === true;
  return {
    id: 16 + index,
    name: borrow ? `${ctor.name} (borrowed)` : ctor.name,
    lends: borrow,
    elementBytes: ctor.BYTES_PER_ELEMENT,
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

/**
 * `{ borrow }`, checked: a misspelt field or a borrow of another type was
 * read as no borrow, and the receiver copied every message without a word.
 */
function checkOptions(options: unknown): void {
  if (options === null || typeof options !== 'object') throw new CodecError(`codecs.typedArray's options must be an object, got ${shown(options)}`);
  for (const [key, value] of Object.entries(options)) {
    if (key !== 'borrow') throw new CodecError(`codecs.typedArray's options have no field "${key}"; its one field is borrow`);
    if (value !== undefined && typeof value !== 'boolean') throw new CodecError(`codecs.typedArray's borrow must be true or false, got ${shown(value)}`);
  }
}

/** A value as an error message names it: primitives as themselves, objects by their class. */
function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  return typeof value === 'object' && value !== null ? describe(value) : String(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return typeof value;
}
