// What the orchestrator knows of one lease (one directive): its result
// queue, on which session it is declared and consumed, the tasks waiting for
// that, and the tasks not answered yet; and what reaches it from the broker:
// result messages on that queue, and dead letters of its leases.
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
import type { LeaseHandlers } from '../../../core/backend.ts';
import { RuntimeClosedError, WorkerLostError } from '../../../core/errors.ts';
import { failed, type Task } from '../../../core/task.ts';
import type { TaskTime } from '../../../core/task-time.ts';
import type { Session } from '../shared/connection.ts';
import { DeadLetterError } from '../shared/errors.ts';
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
  taskId,
  TYPE_PROGRESS,
  type LeaseTaskId,
} from '../shared/messages.ts';
import type { Names } from '../shared/topology.ts';
import { deadLetterChannel, type DeadLetterMessage, type TraceCarrier } from '../../../observability/channels.ts';
import { Unanswered } from './unanswered.ts';
import type { WorkerNames } from './workers.ts';

export interface LeaseState {
  readonly key: string;
  readonly queue: string;
  /** Set when a directive takes the lease (a spare has none until then). */
  handlers: LeaseHandlers;
  /** The directive's `cancelGraceMs`, sent with its tasks; undefined: the workers' own. */
  graceMs: number | undefined;
  open: boolean;
  /** The session the result queue was (being) declared and consumed on. */
  openedOn: Session | undefined;
  /** The session whose channel consumes this lease's queue. */
  consuming: Session | undefined;
  consumerTag: string | undefined;
  /** Tasks dispatched before the result queue was ready. */
  backlog: Task[];
  /** The directive's trace context, from the one task that carries it (its first): every message of the lease's tasks carries it. */
  tc: TraceCarrier | undefined;
  /** Tasks without an answer yet. */
  readonly unanswered: Unanswered;
  /** Cancelled tasks without an answer yet, by `taskId`, with why. */
  readonly cancelling: Map<LeaseTaskId, { index: number; stage: number; attempt: number; why: string }>;
}

const NO_HANDLERS: LeaseHandlers = { results: () => {}, failed: () => {} };

export function newLease(key: string, queue: string): LeaseState {
  return {
    key,
    queue,
    handlers: NO_HANDLERS,
    graceMs: undefined,
    open: true,
    openedOn: undefined,
    consuming: undefined,
    consumerTag: undefined,
    backlog: [],
    tc: undefined,
    unanswered: new Unanswered(),
    cancelling: new Map(),
  };
}

/**
 * A message on the lease's result queue: its results (or progress details)
 * go to the directive, its timing to `taskTime`, and its results carry the
 * index `workers` gives the worker that named itself in its headers.
 */
export function onResults(state: LeaseState, session: Session, message: ConsumeMessage | null, taskTime: TaskTime, workers: WorkerNames): void {
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
    else results = decodeResults(message.content, state.key, workers.indexOf(headers));
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
  answered(state, results);
  if (state.open) state.handlers.results(results);
}

/**
 * A dead letter of one of our leases. From the broker (it carries
 * `x-first-death-reason`, usually `delivery_limit`) or from a worker that
 * counted the deaths itself (`killed-workers`): its tasks fail with
 * WorkerLostError, so the directive rejects naming the operation and index.
 * From a worker: unknown operations were already answered with an error
 * result; anything else fails the lease with the worker's reason. Returns
 * the lease if the dead letter answered its tasks (as failed).
 */
export function onDeadLetter(message: ConsumeMessage | null, leases: ReadonlyMap<string, LeaseState>, names: Names, deliveryLimit: number): LeaseState | undefined {
  if (message === null) return undefined;
  const key = message.fields.routingKey;
  const headers = message.properties.headers;
  const brokerReason = headerString(headers, 'x-first-death-reason');
  const reason = headerString(headers, HEADER_REASON) ?? 'no reason given';
  // Every letter routed here is one of this orchestrator's leases (its queue
  // is bound to its id's keys), also one whose directive has already ended:
  // an unknown operation's error result can overtake its dead letter.
  if (deadLetterChannel.hasSubscribers) deadLetterChannel.publish({ key, reason: brokerReason ?? reason } satisfies DeadLetterMessage);
  const state = leases.get(key);
  if (state === undefined) return undefined;
  if (brokerReason === undefined && !reason.startsWith(REASON_KILLED_WORKERS)) {
    if (!reason.startsWith(REASON_UNKNOWN_OPERATION)) state.handlers.failed(new DeadLetterError(reason, names.deadQueue));
    return undefined;
  }
  let tasks: Task[];
  try {
    checkFormat(headerNumber(headers, HEADER_FORMAT) ?? FORMAT);
    tasks = decodeTasks(message.content, state.key);
  } catch (error) {
    state.handlers.failed(new DeadLetterError(`a task message was dead-lettered (${brokerReason ?? reason})`, names.deadQueue, { cause: error }));
    return undefined;
  }
  const deaths = (headerNumber(headers, HEADER_DEATHS) ?? 0) + (headerNumber(headers, 'x-delivery-count') ?? 0);
  const lost = new WorkerLostError(
    brokerReason !== undefined
      ? `the broker dead-lettered this task (${brokerReason}) after ${deaths || deliveryLimit} redeliveries: ` +
          `its workers kept dying while running it; the message is in ${names.deadQueue}`
      : `a worker dead-lettered this task (${reason}); the message is in ${names.deadQueue}`,
  );
  // Answered, as by a result message: the publisher counts the tasks out from these.
  answered(state, tasks);
  state.handlers.results(tasks.map((task) => failed(task, lost)));
  return state;
}

function answered(state: LeaseState, tasks: readonly { index: number; stage: number; attempt: number }[]): void {
  const { unanswered, cancelling } = state;
  for (const task of tasks) {
    unanswered.delete(task.index, task.stage, task.attempt);
    if (cancelling.size > 0) cancelling.delete(taskId(task.index, task.stage, task.attempt));
  }
}
