// Outputs on their way from a worker to its coordinator. An output that
// could fail to encode or be large (an object, a long string, a bigint) is
// encoded by the worker on its own, with the channel's codec: a value the
// codec refuses, or one over the channels' frame bound, becomes an
// OutputError result for its task, instead of an error inside a batch of
// results that would end the worker and lose the batch. The bytes travel as
// they are and are decoded once, by the coordinator, so nothing is encoded
// twice. Numbers, booleans, null and short strings travel as plain results.

import { codecs } from '../../allocator/index.ts';
import { OutputError } from '../core/errors.ts';
import { failed, fromFailure, type TaskProgress, type TaskResult } from '../core/task.ts';
import type { PackedResult, WorkerMessage } from './messages.ts';

const codec = codecs.msgpack<unknown>();

// Room a result needs beside its output (key, index, stage, attempt, framing).
export const RESULT_ROOM = 256;
// Strings up to this many characters are sent as they are.
const SHORT_STRING = 1024;

/** The message that carries `result` to the coordinator, within `maxMessageBytes`. */
export function packResult(result: TaskResult, maxMessageBytes: number): TaskResult | PackedResult {
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
  let bytes: Uint8Array;
  try {
    const batcher = codec.batcher();
    batcher.add(output);
    bytes = batcher.take();
  } catch (error) {
    return failed(result, new OutputError(`the output cannot be encoded: ${(error as Error).message}`, { cause: error }));
  }
  if (bytes.length + RESULT_ROOM > maxMessageBytes) {
    return failed(result, new OutputError(`the output is ${bytes.length} bytes encoded, over the bound of ${maxMessageBytes - RESULT_ROOM} (maxMessageBytes ${maxMessageBytes} less room for the result)`));
  }
  // The codec reuses its buffer on the next encode.
  return { key: result.key, index: result.index, stage: result.stage, attempt: result.attempt, packed: bytes.slice(), us: result.us, w: result.w };
}

/** About how many bytes `message` adds to a batch: what the worker flushes by. */
export function sizeOf(message: WorkerMessage): number {
  if ('progress' in message) return sizeOf(message.progress);
  if ('packed' in message) return message.packed.length + RESULT_ROOM;
  if ('error' in message && message.error !== undefined) return RESULT_ROOM + 3 * (message.error.message.length + (message.error.stack?.length ?? 0));
  if ('output' in message && typeof message.output === 'string') return RESULT_ROOM + 3 * message.output.length;
  return RESULT_ROOM;
}

/** The coordinator's side: the result with its output decoded. */
export function unpackResult(message: TaskResult | PackedResult): TaskResult {
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
export function unpackProgress(report: TaskResult | PackedResult): TaskProgress {
  const result = unpackResult(report);
  const detail = result.error === undefined ? result.output : fromFailure(result.error);
  return { key: result.key, index: result.index, stage: result.stage, attempt: result.attempt, detail };
}
