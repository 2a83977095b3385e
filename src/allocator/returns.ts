// What a worker thread tells the main thread (its Report), and how its
// return value and errors travel: the worker side (worker.ts) and the main
// thread's guards share this, and neither half loads the other for it.

import { codecs } from './codec.ts';

/** Messages from a worker thread to the main thread. */
export type Report =
  | { type: 'ready' }
  /** The return value, encoded by the default codec (see encodeReturn), or as it is where cloning it is the same (see Plain). */
  | { type: 'result'; value: Uint8Array | Plain }
  | { type: 'error'; error: SerializedError; aborted: boolean };

export interface SerializedError {
  name: string;
  message: string;
  stack: string | undefined;
}

// A worker's return value travels by the default codec, like every message:
// join() resolves to the values a channel would deliver, and a value the
// codec refuses fails the worker with a CodecError, not a clone error.
const returns = codecs.msgpack<unknown>();

/** A return value that arrives the same cloned as through msgpack: it skips the codec, so a worker returning nothing never loads msgpackr. */
export type Plain = { plain: undefined | null | boolean | number };

export function encodeReturn(value: unknown): Uint8Array | Plain {
  // Not -0: msgpack carries it as 0, and a clone would not.
  if (value === undefined || value === null || typeof value === 'boolean' || (typeof value === 'number' && !Object.is(value, -0))) return { plain: value };
  const batcher = returns.batcher();
  batcher.add(value);
  return batcher.take().slice();
}

/** The main thread's side of encodeReturn. */
export function decodeReturn(bytes: Uint8Array | Plain): unknown {
  if (!(bytes instanceof Uint8Array)) return bytes.plain;
  return returns.decode(bytes, 1, true)[0];
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) return { name: error.name, message: error.message, stack: error.stack };
  return { name: 'Error', message: `non-Error thrown: ${String(error)}`, stack: undefined };
}
