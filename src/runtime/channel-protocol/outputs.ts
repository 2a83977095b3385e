// Outputs on their way from a worker to its coordinator. An output that
// could fail to encode or be large (an object, a long string, a bigint) is
// encoded by the worker on its own, with the channel's codec: a value the
// codec refuses, or one over the channels' frame bound, becomes an
// OutputError result for its task, instead of an error inside a batch of
// results that would end the worker and lose the batch. The bytes travel as
// they are and are decoded once, by the coordinator, so nothing is encoded
// twice. Numbers, booleans, null and short strings travel as plain results.
// A binary output of RAW_MIN_BYTES or more (typed array, Buffer, DataView,
// ArrayBuffer) is not encoded at all: its bytes travel detached from the
// batch (to a thread of this process: copied once into the slab and once
// out). One of PIECED_MIN_BYTES or more travels in pieces instead (see
// Pieces), so that it is held about twice at once, not three times.

import { codecs, Detached } from '../../allocator/index.ts';
import { OutputError } from '../core/errors.ts';
import { failed, fromFailure, type TaskProgress, type TaskResult } from '../core/task.ts';
import { PIECE_CHANNEL_BASE, type PackedResult, type RawResult, type WorkerMessage } from './messages.ts';
import type { Codec, Pull, Push } from '../../allocator/index.ts';

const codec = codecs.msgpack<unknown>();

// Room a result needs beside its output (key, index, stage, attempt, framing).
export const RESULT_ROOM = 256;
// Strings up to this many characters are sent as they are.
const SHORT_STRING = 1024;

/** The message that carries `result` to the coordinator, within `maxMessageBytes`. */
export function packResult(result: TaskResult, maxMessageBytes: number): TaskResult | PackedResult | RawResult {
  if (result.error !== undefined) return result;
  const output = result.output;
  switch (typeof output) {
    case 'function':
    case 'symbol':
      return failed(result, new OutputError(`the output is a ${typeof output}, which cannot leave its thread`));
    case 'object':
      if (output === null) return result;
      break;
    case 'string':
      if (output.length <= SHORT_STRING) return result;
      break;
    case 'bigint':
      break;
    default:
      return result;
  }
  const raw = rawOf(output);
  if (raw !== undefined) {
    if (raw.bytes.length + RESULT_ROOM > maxMessageBytes) return tooLarge(result, raw.bytes.length, maxMessageBytes);
    return { key: result.key, index: result.index, stage: result.stage, attempt: result.attempt, raw: new Detached(raw.bytes), kind: raw.kind };
  }
  let bytes: Uint8Array;
  try {
    const batcher = codec.batcher();
    batcher.add(output);
    bytes = batcher.take();
  } catch (error) {
    return failed(result, new OutputError(`the output cannot be encoded: ${(error as Error).message}`, { cause: error }));
  }
  if (bytes.length + RESULT_ROOM > maxMessageBytes) return tooLarge(result, bytes.length, maxMessageBytes);
  // The codec reuses its buffer on the next encode.
  return { key: result.key, index: result.index, stage: result.stage, attempt: result.attempt, packed: bytes.slice(), us: result.us, w: result.w };
}

function tooLarge(result: TaskResult, bytes: number, maxMessageBytes: number): TaskResult {
  return failed(result, new OutputError(`the output is ${bytes} bytes encoded, over the bound of ${maxMessageBytes - RESULT_ROOM} (maxMessageBytes ${maxMessageBytes} less room for the result)`));
}

/** Binary outputs at least this large travel detached (RawResult). */
const RAW_MIN_BYTES = 64 << 10;
type TypedCtor = new (buffer: ArrayBuffer, byteOffset: number, length: number) => ArrayBufferView;
const TYPED = new Map<unknown, { name: string; ctor: TypedCtor; size: number }>(
  [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array]
    .map((c) => [c, { name: c.name, ctor: c as unknown as TypedCtor, size: c.BYTES_PER_ELEMENT }]),
);
const TYPED_BY_NAME = new Map([...TYPED.values()].map((t) => [t.name, t]));

/** A large binary output's bytes and what to rebuild from them; undefined for anything else. */
function rawOf(output: object | bigint | string): { bytes: Uint8Array; kind: string } | undefined {
  let kind: string;
  if (output instanceof ArrayBuffer) kind = 'ArrayBuffer';
  else if (Buffer.isBuffer(output)) kind = 'Buffer';
  else if (output instanceof DataView) kind = 'DataView';
  else {
    // Exactly a built-in typed array: a subclass goes the encoded way, as msgpack carries it.
    const typed = TYPED.get((output as object).constructor);
    if (typed === undefined) return undefined;
    kind = typed.name;
  }
  const view = output as ArrayBuffer | ArrayBufferView;
  const bytes = view instanceof ArrayBuffer ? new Uint8Array(view) : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  return bytes.length >= RAW_MIN_BYTES ? { bytes, kind } : undefined;
}

/** A RawResult's output, rebuilt over the bytes that arrived (an ArrayBuffer of their own). */
function rebuild(bytes: Uint8Array, kind: string): unknown {
  const buffer = bytes.buffer as ArrayBuffer;
  switch (kind) {
    case 'ArrayBuffer':
      return buffer;
    case 'Buffer':
      return Buffer.from(buffer, 0, bytes.length);
    case 'DataView':
      return new DataView(buffer, 0, bytes.length);
    default: {
      const typed = TYPED_BY_NAME.get(kind);
      if (typed === undefined || bytes.length % typed.size !== 0) throw new Error(`${bytes.length} bytes do not make a ${kind}`);
      return new typed.ctor(buffer, 0, bytes.length / typed.size);
    }
  }
}

/**
 * Binary outputs at least this large travel in pieces (Pieces below): the
 * result first, with no bytes, then the bytes on the worker's piece channel,
 * PIECE_BYTES at a time. The worker waits for the coordinator to take each
 * piece before it sends past the channels' high-water mark, so between
 * threads the pieces go through a few slab chunks used again and again
 * (memory touched before, where a whole-output chunk is fresh memory as
 * large as the output), and the coordinator copies each piece straight
 * into the output's own buffer: the output is held by the worker and by
 * the coordinator, and a few pieces in between.
 */
export const PIECED_MIN_BYTES = 4 << 20;
/**
 * A piece: no more than the default ring, so that with the default
 * high-water mark the worker fills a piece while the coordinator copies the
 * one before.
 */
export const PIECE_BYTES = 1 << 20;

/** True for a packed result whose bytes go in pieces. */
export function pieced(message: TaskResult | PackedResult | RawResult): message is RawResult & { raw: Detached } {
  return 'raw' in message && message.raw instanceof Detached && message.raw.bytes.length >= PIECED_MIN_BYTES;
}

/** An output coming in pieces: the result that announced it, its buffer, and how much has come. */
interface Assembly {
  result: RawResult;
  bytes: Uint8Array;
  at: number;
}

/**
 * The coordinator's side of outputs sent in pieces, one per worker at a
 * time (a worker sends one output's pieces back to back). A pieced result
 * opens the output's buffer; the pieces that follow on the worker's piece
 * channel (borrowed views, valid until the next receive) are copied into
 * it; the last one completes the result.
 */
export class Pieces {
  private readonly open: (Assembly | undefined)[] = [];

  /** `pulls[w]`: worker w's piece channel, with a borrowing typed-array codec. */
  constructor(private readonly pulls: readonly (Pull<Uint8Array> | undefined)[]) {}

  /** The pieces of `workers` workers, each on its piece channel of `host`, read as borrowed views. */
  static on(host: { allocate(channel: number, codec: Codec<Uint8Array>): [Push<Uint8Array>[], Pull<Uint8Array>] }, workers: number): Pieces {
    const lend = codecs.typedArray(Uint8Array, { borrow: true });
    return new Pieces(Array.from({ length: workers }, (_, w) => host.allocate(PIECE_CHANNEL_BASE + w, lend)[1]));
  }

  /**
   * A result from worker `w`: the result to settle now (unpacked), or
   * undefined when it announces pieces still to come.
   */
  result(w: number, message: TaskResult | PackedResult | RawResult, done: TaskResult[]): void {
    if (!('raw' in message) || message.pieces === undefined) {
      done.push(unpackResult(message));
      return;
    }
    // The pieces of the output before it were sent before this result: all there already.
    this.take(w, done);
    if (this.open[w] !== undefined) throw new Error(`worker ${w} announced an output before the ${this.open[w].bytes.length - this.open[w].at} last bytes of the one before it`);
    // allocUnsafeSlow: every byte is written by a piece before anyone reads it.
    const bytes = new Uint8Array(Buffer.allocUnsafeSlow(message.pieces).buffer as ArrayBuffer, 0, message.pieces);
    this.open[w] = { result: message, bytes, at: 0 };
    this.take(w, done);
  }

  /**
   * Copies the pieces that arrived from worker `w` into its open output (a
   * completed output's result joins `done`); true if any had arrived.
   * Pieces that arrived in the same receive as their result wait for it.
   */
  take(w: number, done: TaskResult[]): boolean {
    const pull = this.pulls[w];
    let any = false;
    for (let a = this.open[w]; a !== undefined && pull !== undefined; ) {
      const piece = pull.recv();
      if (piece === undefined) break;
      any = true;
      if (a.at + piece.length > a.bytes.length) throw new Error(`worker ${w} sent ${a.at + piece.length} bytes for an output of ${a.bytes.length}`);
      a.bytes.set(piece, a.at);
      a.at += piece.length;
      if (a.at === a.bytes.length) {
        this.open[w] = undefined;
        done.push(unpackResult({ ...a.result, raw: a.bytes, pieces: undefined }));
        a = undefined;
      }
    }
    return any;
  }

  /** Worker `w` is gone (died, lost, replaced): its unfinished output goes, and the pieces it sent for it. */
  drop(w: number): void {
    this.open[w] = undefined;
    const pull = this.pulls[w];
    if (pull !== undefined) while (pull.recv() !== undefined);
  }
}

/** About how many bytes `message` adds to a batch: what the worker flushes by. */
export function sizeOf(message: WorkerMessage): number {
  if ('progress' in message) return sizeOf(message.progress);
  if ('packed' in message) return message.packed.length + RESULT_ROOM;
  if ('raw' in message) return (message.raw instanceof Detached ? message.raw.bytes : message.raw).length + RESULT_ROOM;
  if ('error' in message && message.error !== undefined) return RESULT_ROOM + 3 * (message.error.message.length + (message.error.stack?.length ?? 0));
  if ('output' in message && typeof message.output === 'string') return RESULT_ROOM + 3 * message.output.length;
  return RESULT_ROOM;
}

/** The coordinator's side: the result with its output decoded. */
export function unpackResult(message: TaskResult | PackedResult | RawResult): TaskResult {
  if ('raw' in message) {
    try {
      // Decoded, raw is the bytes that arrived, in a buffer of their own.
      const output = rebuild(message.raw instanceof Detached ? message.raw.bytes.slice() : message.raw, message.kind);
      return { key: message.key, index: message.index, stage: message.stage, attempt: message.attempt, output };
    } catch (error) {
      return failed(message, new OutputError(`the output cannot be decoded: ${(error as Error).message}`, { cause: error }));
    }
  }
  if (!('packed' in message)) return message;
  try {
    const output = codec.decode(message.packed, 1, true)[0];
    return { key: message.key, index: message.index, stage: message.stage, attempt: message.attempt, output, us: message.us, w: message.w };
  } catch (error) {
    return failed(message, new OutputError(`the output cannot be decoded: ${(error as Error).message}`, { cause: error }));
  }
}

/**
 * The coordinator's side of a progress report (a result whose output is the
 * detail): a detail that could not travel arrives as the OutputError that
 * says why, in its place.
 */
export function unpackProgress(report: TaskResult | PackedResult | RawResult): TaskProgress {
  const result = unpackResult(report);
  const detail = result.error === undefined ? result.output : fromFailure(result.error);
  return { key: result.key, index: result.index, stage: result.stage, attempt: result.attempt, detail };
}
