// Tasks to a worker within the channels' frame bound (maxMessageBytes).
//
// A pusher encodes what it was sent since its last flush as one frame, and
// refuses a frame over the bound whole, by throwing: thrown from the
// dispatcher, that stopped the backend, and every directive with it, for
// inputs each well under the bound but too many of them in one batch. So a
// batch is flushed before a binary or string input whose bytes would take
// it past the bound (those sizes are known without encoding), and a batch
// still refused (inputs whose size shows only once encoded, as objects
// holding large arrays) is sent again one task per frame: a task refused on
// its own comes back to fail with an InputError, and the others go. A task
// of the refused batch that had already left in an earlier frame (the
// pusher flushes by itself every few hundred messages) runs twice, as a
// re-dispatched task may: its first result counts.

import type { Push } from '../../allocator/index.ts';
import { ChannelError } from '../../errors.ts';
import { InputError } from '../core/errors.ts';
import { failed, type Task, type TaskResult } from '../core/task.ts';
import type { HostMessage } from './messages.ts';

/** Bytes a task's fields take besides its input, counted generously. */
const TASK_ROOM = 256;

/** The bytes of an input that is binary or a string (a string's UTF-8 at most), 0 for anything else. */
function knownBytes(input: unknown): number {
  if (typeof input === 'string') return 3 * input.length;
  if (typeof input !== 'object' || input === null) return 0;
  if (ArrayBuffer.isView(input)) return input.byteLength;
  if (input instanceof ArrayBuffer || input instanceof SharedArrayBuffer) return input.byteLength;
  return 0;
}

/** The frame bound refused a batch: sent from when the pusher last flushed. */
function overBound(error: unknown): boolean {
  return error instanceof ChannelError && error.message.includes('exceeds maxMessageBytes');
}

/**
 * Sends `tasks` to one worker and publishes them, in frames within
 * `maxMessageBytes`. Returns failed results for the tasks too large to go
 * even alone (not sent); the caller settles them once the dispatcher has
 * returned (they are in its books as sent).
 */
export function sendTasks(push: Push<HostMessage>, tasks: readonly Task[], maxMessageBytes: number): TaskResult[] {
  const budget = maxMessageBytes - TASK_ROOM;
  try {
    let bytes = 0;
    for (const task of tasks) {
      const size = knownBytes(task.input) + TASK_ROOM;
      if (bytes > 0 && bytes + size > budget) {
        push.flush();
        bytes = 0;
      }
      push.send(task);
      bytes += size;
    }
    push.flush();
    return [];
  } catch (error) {
    if (!overBound(error)) throw error;
  }
  const refused: TaskResult[] = [];
  for (const task of tasks) {
    try {
      push.send(task);
      push.flush();
    } catch (error) {
      if (!overBound(error)) throw error;
      refused.push(failed(task, new InputError(`the input is over the channels' bound on one frame (maxMessageBytes ${maxMessageBytes}) once encoded: ${(error as Error).message}`, { cause: error })));
    }
  }
  return refused;
}
