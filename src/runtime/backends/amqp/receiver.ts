// What reaches the orchestrator from the broker: result messages on a
// lease's result queue, and dead letters of its leases.
//
// Design notes
// - A result message is acked before its results are handed to the
//   directive, in the same synchronous step. Acking after would save
//   nothing: the directive lives only in this process, so if the process
//   dies the results have nobody to go to either way, and while it lives
//   the handing cannot fail half-way in a way a redelivery would mend (a
//   redelivery only comes once the channel closes, and the orchestrator
//   counts each result once).

import type { ConsumeMessage } from 'amqplib';
import { RuntimeClosedError, WorkerLostError } from '../../core/errors.ts';
import { failed, type Task } from '../../core/task.ts';
import type { TaskTime } from '../../core/task-time.ts';
import type { Session } from './connection.ts';
import { DeadLetterError } from './errors.ts';
import { idOf, type LeaseState } from './lease-state.ts';
import {
  checkFormat,
  decodeProgress,
  decodeResults,
  decodeTasks,
  FORMAT,
  HEADER_DEATHS,
  HEADER_FORMAT,
  HEADER_MS,
  HEADER_REASON,
  headerNumber,
  headerString,
  REASON_KILLED_WORKERS,
  REASON_UNKNOWN_OPERATION,
  TYPE_PROGRESS,
} from './messages.ts';
import type { Names } from './topology.ts';
import { deadLetterChannel, type DeadLetterMessage } from '../../observability/channels.ts';

/** A message on the lease's result queue: its results (or progress details) go to the directive, its timing to `taskTime`. */
export function onResults(state: LeaseState, session: Session, message: ConsumeMessage | null, taskTime: TaskTime): void {
  if (message === null) {
    // The broker cancelled the consumer: the queue was deleted under us.
    if (state.open) state.handlers.failed(new RuntimeClosedError(`the result queue ${state.queue} was deleted`));
    return;
  }
  const headers = message.properties.headers;
  const progress = message.properties.type === TYPE_PROGRESS;
  let results;
  let updates;
  try {
    // A message without the header is read as the current format.
    checkFormat(headerNumber(headers, HEADER_FORMAT) ?? FORMAT);
    if (progress) updates = decodeProgress(message.content, state.key);
    else results = decodeResults(message.content, state.key);
  } catch (error) {
    session.channel.ack(message);
    const reason = `a ${progress ? 'progress' : 'result'} message could not be decoded: ${(error as Error).message}`;
    if (state.open) state.handlers.failed(new DeadLetterError(reason, state.queue, { cause: error }));
    return;
  }
  session.channel.ack(message);
  if (updates !== undefined) {
    if (state.open) state.handlers.progress?.(updates);
    return;
  }
  results = results!;
  const ms = headerNumber(headers, HEADER_MS);
  if (ms !== undefined && results.length > 0) taskTime.observe(ms, results.length);
  for (const result of results) {
    const id = idOf(result.index, result.stage, result.attempt);
    state.unanswered.delete(id);
    state.cancelling.delete(id);
  }
  if (state.open) state.handlers.results(results);
}

/**
 * A dead letter of one of our leases. From the broker (it carries
 * `x-first-death-reason`, usually `delivery_limit`) or from a worker that
 * counted the deaths itself (`killed-workers`): its tasks fail with
 * WorkerLostError, so the directive rejects naming the operation and index.
 * From a worker: unknown operations were already answered with an error
 * result; anything else fails the lease with the worker's reason.
 */
export function onDeadLetter(message: ConsumeMessage | null, leases: ReadonlyMap<string, LeaseState>, names: Names, deliveryLimit: number): void {
  if (message === null) return;
  const state = leases.get(message.fields.routingKey);
  if (state === undefined) return;
  const headers = message.properties.headers;
  const brokerReason = headerString(headers, 'x-first-death-reason');
  const reason = headerString(headers, HEADER_REASON) ?? 'no reason given';
  if (deadLetterChannel.hasSubscribers) deadLetterChannel.publish({ key: state.key, reason: brokerReason ?? reason } satisfies DeadLetterMessage);
  if (brokerReason === undefined && !reason.startsWith(REASON_KILLED_WORKERS)) {
    if (!reason.startsWith(REASON_UNKNOWN_OPERATION)) state.handlers.failed(new DeadLetterError(reason, names.deadQueue));
    return;
  }
  let tasks: Task[];
  try {
    checkFormat(headerNumber(headers, HEADER_FORMAT) ?? FORMAT);
    tasks = decodeTasks(message.content, state.key);
  } catch (error) {
    state.handlers.failed(new DeadLetterError(`a task message was dead-lettered (${brokerReason ?? reason})`, names.deadQueue, { cause: error }));
    return;
  }
  const deaths = (headerNumber(headers, HEADER_DEATHS) ?? 0) + (headerNumber(headers, 'x-delivery-count') ?? 0);
  const lost = new WorkerLostError(
    brokerReason !== undefined
      ? `the broker dead-lettered this task (${brokerReason}) after ${deaths || deliveryLimit} redeliveries: ` +
          `its workers kept dying while running it; the message is in ${names.deadQueue}`
      : `a worker dead-lettered this task (${reason}); the message is in ${names.deadQueue}`,
  );
  state.handlers.results(tasks.map((task) => failed(task, lost)));
}
