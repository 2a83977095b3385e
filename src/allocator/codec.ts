// Codecs turn a batch of messages into one frame payload and back. A pusher
// owns a Batcher, so `send` is a store into a buffer and encoding happens
// once per batch: that is where the per-message cost goes away.

import { msgpack } from './codec-msgpack.ts';
import { numbers, typedArray } from './codec-raw.ts';

export { msgpackr, refusal } from './codec-msgpack.ts';
export type { TypedArray, TypedArrayConstructor, TypedArrayOptions } from './codec-raw.ts';

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
  /**
   * Optional: take() as parts to be laid end to end, so a payload whose
   * large parts are the messages' own bytes (msgpack's detached bytes) is
   * copied once, into the ring or slab, instead of first into one buffer.
   */
  takeParts?(): Uint8Array[];
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
   * Bytes per element, on a codec whose message is its bytes as they are
   * (`codecs.typedArray`): such a channel's pushers lend memory (`loan()`).
   */
  readonly elementBytes?: number;
  /**
   * Optional: the puller has handed out every message of a decoded batch.
   * A codec whose batch containers never reach the user (numbers: recv
   * returns the values, not the array) may reuse the container.
   */
  recycle?(batch: ArrayLike<T>): void;
}

/**
 * Why `codec` cannot serve `allocate`, or undefined when it can. Checked at
 * allocate so a wrong codec (`codecs.msgpack` not called, a codec's name)
 * fails there, naming the channel, not at the first send as a TypeError.
 */
export function codecProblem(codec: unknown): string | undefined {
  const expected = 'a codec (codecs.msgpack(), codecs.number, codecs.typedArray(Float64Array), or an object with a u8 id, a name, batcher() and decode())';
  if (typeof codec === 'function') return `the codec is the function ${codec.name || '(anonymous)'}, not a codec: call it (codecs.msgpack(), codecs.typedArray(Float64Array))`;
  if (codec === null || typeof codec !== 'object') return `the codec must be ${expected}, got ${typeof codec === 'string' ? JSON.stringify(codec) : String(codec)}`;
  const c = codec as Partial<Codec<unknown>>;
  const missing = [
    ...(Number.isInteger(c.id) && c.id! >= 0 && c.id! <= 255 ? [] : ['a u8 id']),
    ...(typeof c.name === 'string' ? [] : ['a name']),
    ...(typeof c.batcher === 'function' ? [] : ['batcher()']),
    ...(typeof c.decode === 'function' ? [] : ['decode()']),
  ];
  return missing.length === 0 ? undefined : `the codec must be ${expected}, got an object without ${missing.join(', ')}`;
}

/** The codecs weft ships. msgpack is the default for `allocate`. */
export const codecs = {
  msgpack,
  /** Float64 numbers, 8 bytes each, batched, no encoding. */
  number: numbers,
  /** One typed array per message, its bytes copied as they are (or lent: `{ borrow: true }`). */
  typedArray,
};
