// The default codec, msgpack (msgpackr), and the value model it carries the
// same on every path: what it refuses, it refuses at send().

import type { Packr } from 'msgpackr';
import type { Batcher, Codec } from './codec.ts';
import { concat } from '../transport/index.ts';
import { CodecError } from '../errors.ts';
import { requireFrom } from '../optional.ts';

const MSGPACK_BATCH = 256;

// msgpackr refuses views of SharedArrayBuffer (it hands the buffer to a native
// string extractor), so shared payloads are first copied here. copyBuffers
// keeps decoded binary fields from pointing into this reused scratch.
let scratch = Buffer.allocUnsafe(1 << 16);
// A Buffer either way: msgpackr slices a bin (a Buffer sent) out of its
// source, so from a plain Uint8Array a Buffer would arrive as one.
function unshared(bytes: Uint8Array): Uint8Array {
  if (!(bytes.buffer instanceof SharedArrayBuffer)) return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
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

/**
 * Bytes a message carries beside its msgpack body rather than inside it: in
 * a batch they follow the body as they are (to a thread of this process,
 * into the slab chunk with one copy and no encoding), and arrive as an
 * owned Uint8Array of their own. For large binary payloads weft builds
 * itself (a task's output); not part of the public value model.
 */
export class Detached {
  constructor(readonly bytes: Uint8Array) {}
}

const DETACHED_TYPE = 0x57;
/** First byte of a batch with detached bytes: 0xc1 is never a msgpack value. */
const FRAMED = 0xc1;
const ZEROS = new Uint8Array(8);
/** Detached bytes of the batch being packed (undefined outside a batch's pack). */
let packing: Uint8Array[] | undefined;
/** Detached bytes of the batch being decoded. */
let unpacking: Uint8Array[] | undefined;

function copy(bytes: Uint8Array): Uint8Array {
  // A buffer of just these bytes, not from Node's pool: the receiver owns it.
  const out = Buffer.allocUnsafeSlow(bytes.length);
  out.set(bytes);
  return new Uint8Array(out.buffer, 0, bytes.length);
}

type Msgpackr = typeof import('msgpackr');
let loaded: Msgpackr | undefined;

/**
 * msgpackr, loaded when a msgpack codec first encodes or decodes: a thread
 * that never sends msgpack (typed arrays, raw bytes, nothing) does not pay
 * for loading it and its native string extractor, a few milliseconds of
 * every thread's start-up. Required, not imported: the first use is
 * synchronous (a send), and its CommonJS build is one file.
 */
export function msgpackr(): Msgpackr {
  if (loaded !== undefined) return loaded;
  loaded = requireFrom(import.meta.url)('msgpackr') as Msgpackr;
  registerDetached(loaded);
  registerDetachedViews(loaded);
  return loaded;
}

// Registered once for every Packr, but only Detached values use it. Inside
// a batch, the extension holds the index of bytes that follow the body;
// packed on its own (outside a batch), the bytes themselves.
function registerDetached({ addExtension }: Msgpackr): void {
  addExtension({
    Class: Detached,
    type: DETACHED_TYPE,
    pack(d: Detached): Uint8Array {
      if (packing !== undefined) {
        const ref = new Uint8Array(5);
        ref[0] = 1;
        new DataView(ref.buffer).setUint32(1, packing.push(d.bytes) - 1, true);
        return ref;
      }
      const inline = new Uint8Array(1 + d.bytes.length);
      inline.set(d.bytes, 1);
      return inline;
    },
    unpack(data: Uint8Array): Uint8Array {
      if (data[0] !== 1) return copy(data.subarray(1));
      const index = data.length === 5 ? new DataView(data.buffer, data.byteOffset, 5).getUint32(1, true) : -1;
      const bytes = unpacking?.[index];
      if (bytes === undefined) throw new CodecError(`a batch refers to detached bytes #${index} it does not carry`);
      return copy(bytes);
    },
  });
}

/**
 * Typed arrays (and Buffers) of this many bytes or more inside a message
 * are detached from its batch like Detached bytes (to a thread of this
 * process they go through the slab, copied once in and once out, and the
 * receiver copies nothing else of them): `{ id, pixels }` costs what
 * `pixels` alone would on a typed-array channel, not three copies through
 * the encoder, the batch and the decoder. The slab's threshold.
 */
const DETACH_MIN_BYTES = 64 << 10;
const DETACHED_VIEW_TYPE = 0x58;
/** What a detached view is rebuilt as, by the code its reference carries. */
interface ViewKind {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): ArrayBufferView;
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
}
// Buffer is rebuilt with Buffer.from (its constructor is deprecated); it inherits BYTES_PER_ELEMENT.
const VIEW_KINDS: ViewKind[] = [
  Buffer as unknown as ViewKind, Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array,
];
/** msgpackr's codes for its own typed-array extension ('t'), in its order. */
const MSGPACKR_TYPED = ['Int8', 'Uint8', 'Uint8Clamped', 'Int16', 'Uint16', 'Int32', 'Uint32', 'Float32', 'Float64', 'BigInt64', 'BigUint64'].map((t) => `${t}Array`);
const TypedArray = Object.getPrototypeOf(Uint8Array) as abstract new () => ArrayBufferView;

type Allocate = (size: number) => { target: Uint8Array; targetView: DataView; position: number };

/**
 * A typed array as msgpackr itself writes it (bin for a Buffer, or without
 * moreTypes; its 't' extension otherwise): this extension stands in front
 * of msgpackr's for every typed array, but changes the bytes only for a
 * large one inside a batch.
 */
function writeAsMsgpackr(view: ArrayBufferView, moreTypes: boolean, allocateForWrite: Allocate): void {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const n = bytes.length;
  if (view.constructor === Buffer || !moreTypes) {
    const head = n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
    const { target, targetView, position } = allocateForWrite(head + n);
    if (head === 2) target.set([0xc4, n], position);
    else if (head === 3) target.set([0xc5, n >> 8, n & 0xff], position);
    else {
      target[position] = 0xc6;
      targetView.setUint32(position + 1, n);
    }
    target.set(bytes, position + head);
    return;
  }
  const head = n + 1 < 0x100 ? 2 : n + 1 < 0x10000 ? 3 : 5;
  const { target, targetView, position } = allocateForWrite(head + 2 + n);
  if (head === 2) target.set([0xc7, n + 1], position);
  else if (head === 3) target.set([0xc8, (n + 1) >> 8, (n + 1) & 0xff], position);
  else {
    target[position] = 0xc9;
    targetView.setUint32(position + 1, n + 1);
  }
  target[position + head] = 0x74;
  target[position + head + 1] = MSGPACKR_TYPED.indexOf(view.constructor.name);
  target.set(bytes, position + head + 2);
}

function packView(this: { moreTypes?: boolean }, view: ArrayBufferView, allocateForWrite: Allocate): Uint8Array | undefined {
  const kind = packing !== undefined && view.byteLength >= DETACH_MIN_BYTES ? VIEW_KINDS.indexOf(view.constructor as ViewKind) : -1;
  if (kind < 0) {
    writeAsMsgpackr(view, this.moreTypes === true, allocateForWrite);
    return undefined;
  }
  const ref = new Uint8Array(5);
  ref[0] = kind;
  new DataView(ref.buffer).setUint32(1, packing!.push(new Uint8Array(view.buffer, view.byteOffset, view.byteLength)) - 1, true);
  return ref;
}

// Registered with Detached's when msgpackr loads: it stands in front of
// msgpackr's own typed-array extension, for every Packr.
function registerDetachedViews({ addExtension }: Msgpackr): void {
  addExtension({
    Class: TypedArray,
    type: DETACHED_VIEW_TYPE,
    pack: packView as unknown as (value: unknown) => Uint8Array,
    unpack(data: Uint8Array): ArrayBufferView {
      const kind = VIEW_KINDS[data[0]!];
      const index = data.length === 5 ? new DataView(data.buffer, data.byteOffset, 5).getUint32(1, true) : -1;
      const bytes = unpacking?.[index];
      if (kind === undefined || bytes === undefined) throw new CodecError(`a batch refers to detached bytes #${index} of kind ${data[0]} it does not carry`);
      if (bytes.length % kind.BYTES_PER_ELEMENT !== 0) throw new CodecError(`${bytes.length} detached bytes do not make a ${kind.name}`);
      const own = copy(bytes);
      return data[0] === 0 ? Buffer.from(own.buffer, 0, own.length) : new kind(own.buffer as ArrayBuffer, 0, own.length / kind.BYTES_PER_ELEMENT);
    },
  });
}

/**
 * A batch with detached bytes: FRAMED, 3 bytes of padding, u32 body length,
 * u32 count n, then n u32 lengths, padded to 8; the msgpack body, padded to
 * 8; each detached part, padded to 8 (so typed views fit in place).
 */
function frame(body: Uint8Array, parts: Uint8Array[]): Uint8Array[] {
  const headBytes = (12 + 4 * parts.length + 7) & ~7;
  const head = new Uint8Array(headBytes + ((body.length + 7) & ~7));
  const v = new DataView(head.buffer);
  head[0] = FRAMED;
  v.setUint32(4, body.length, true);
  v.setUint32(8, parts.length, true);
  parts.forEach((p, i) => v.setUint32(12 + 4 * i, p.length, true));
  head.set(body, headBytes);
  const out: Uint8Array[] = [head];
  for (const p of parts) {
    out.push(p);
    if (p.length % 8 !== 0) out.push(ZEROS.subarray(0, 8 - (p.length % 8)));
  }
  return out;
}

/** The body of a framed batch, its detached parts set aside for the extension. */
function unframe(bytes: Uint8Array): Uint8Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const fail = (): never => {
    throw new CodecError(`a batch of ${bytes.length} bytes with detached parts is malformed`);
  };
  if (bytes.length < 12) fail();
  const bodyLength = v.getUint32(4, true);
  const n = v.getUint32(8, true);
  const headBytes = (12 + 4 * n + 7) & ~7;
  if (headBytes > bytes.length) fail();
  let at = headBytes + ((bodyLength + 7) & ~7);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const length = v.getUint32(12 + 4 * i, true);
    if (at + length > bytes.length) fail();
    parts.push(bytes.subarray(at, at + length));
    at += (length + 7) & ~7;
  }
  if (headBytes + bodyLength > bytes.length) fail();
  unpacking = parts;
  return bytes.subarray(headBytes, headBytes + bodyLength);
}

class MsgpackBatcher<T> implements Batcher<T> {
  private readonly pending: T[] = [];
  constructor(private readonly packr: () => Packr) {}

  get count(): number {
    return this.pending.length;
  }

  add(message: T): boolean {
    refuseUnencodable(message, 0);
    return this.pending.push(message) >= MSGPACK_BATCH;
  }

  take(): Uint8Array {
    return concat(this.takeParts());
  }

  takeParts(): Uint8Array[] {
    const parts: Uint8Array[] = [];
    packing = parts;
    try {
      const bytes = this.packr().pack(this.pending);
      this.pending.length = 0;
      return parts.length === 0 ? [bytes] : frame(bytes, parts);
    } catch (error) {
      throw this.isolate(error);
    } finally {
      packing = undefined;
    }
  }

  // A batch failed to encode: find the message at fault, drop only it, and
  // keep the others pending, so one bad value loses nothing else.
  private isolate(error: unknown): CodecError {
    for (let i = 0; i < this.pending.length; i++) {
      try {
        this.packr().pack(this.pending[i]);
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
  let made: Packr | undefined;
  const packr = (): Packr => (made ??= new (msgpackr().Packr)({ useRecords: true, copyBuffers: true, moreTypes: true }));
  return {
    id: 1,
    name: 'msgpack',
    batcher: () => new MsgpackBatcher<T>(packr),
    decode(bytes, count) {
      let batch: T[];
      if (bytes[0] === FRAMED) {
        try {
          // Only the body is copied out of shared memory; the detached parts are copied once, by the extension.
          batch = packr().unpack(unshared(unframe(bytes))) as T[];
        } finally {
          unpacking = undefined;
        }
      } else batch = packr().unpack(unshared(bytes)) as T[];
      if (!Array.isArray(batch) || batch.length !== count) {
        throw new CodecError(`msgpack payload holds ${Array.isArray(batch) ? batch.length : 'no array of'} messages, header says ${count}`);
      }
      return batch;
    },
  };
}
