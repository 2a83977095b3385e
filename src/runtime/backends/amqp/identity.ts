// A task's identity within its lease, the one form every part of the AMQP
// backend keys tasks by (answers awaited, cancellations, progress held): the
// lease key is known from where the task is, so only index, stage and
// attempt remain.

/**
 * The index for a first stage's first attempt (a small integer, the cheapest
 * key a Map has, and the common case), a negative number for other stages
 * and attempts while it fits, a string beyond.
 */
export type LeaseTaskId = number | string;

export function taskId(index: number, stage: number, attempt: number): LeaseTaskId {
  return stage === 0 && attempt === 0
    ? index
    : index < 0x2_0000_0000 && stage < 1024 && attempt < 1024
      ? -((index * 1024 + stage) * 1024 + attempt) - 1
      : `${index}:${stage}:${attempt}`;
}
