// What weft's AMQP messages carry: bodies are msgpack (msgpackr), metadata is
// in AMQP properties and headers so that a consumer can route or drop a
// message without decoding it. docs/amqp.md describes the same fields.
//
// A task message holds a batch of tasks of one lease; the lease key is in a
// header, not in every task. A result message holds the results of one task
// message, published to the queue named by its `replyTo`; progress messages
// travel the same way. Releases and cancellations go to every worker through
// the control fanout.
//
// Format 2 stores a batch by columns: the operation name once per distinct
// name, stage and attempt once when every task shares them (they almost
// always do), then the indices and the inputs (or outputs) as plain arrays.
// Per task that is the index and the value, nothing else: a batch of 256
// small tasks is about 1.5 kB instead of 7.5 kB as an object per task
// repeating the operation name, and costs a fraction of the time to encode
// and decode. (Format 1, objects per task, never left the unreleased 0.1.0.)

import { msgpackr } from '../../../../allocator/internal.ts';
import type { Task, TaskFailure, TaskProgress, TaskResult } from '../../../core/task.ts';
import { isDuration, MAX_DURATION_MS } from '../../../core/options.ts';
import { MalformedMessageError } from './errors.ts';
import type { TraceCarrier } from '../../../observability/channels.ts';

/** Bumped when the body layout changes; a worker dead-letters a format it does not know. */
export const FORMAT = 2;

export const TYPE_TASKS = 'weft.tasks';
export const TYPE_RESULTS = 'weft.results';
export const TYPE_RELEASE = 'weft.release';
export const TYPE_CANCEL = 'weft.cancel';
export const TYPE_PROGRESS = 'weft.progress';
export const CONTENT_TYPE = 'application/x-msgpack';

export const HEADER_FORMAT = 'x-weft-format';
export const HEADER_KEY = 'x-weft-key';
export const HEADER_COUNT = 'x-weft-count';
/** On results: milliseconds the worker spent on the batch, to size later batches. */
export const HEADER_MS = 'x-weft-ms';
export const HEADER_WORKER = 'x-weft-worker';
/** On dead letters published by a worker: why. */
export const HEADER_REASON = 'x-weft-reason';
/**
 * On task messages of a run that sets `cancelGraceMs`: how long a cancelled
 * task of theirs may run on before its thread is terminated. Without it, the
 * worker's own `cancelGraceMs` holds.
 */
export const HEADER_GRACE_MS = 'x-weft-grace-ms';
/** On releases and cancellations: why, the message of the tasks' `TaskCancelledError`. */
export const HEADER_WHY = 'x-weft-why';
/**
 * On task messages a worker published again (see worker/consumer.ts, "suspects"):
 * the worker deaths the tasks were present at before, since the broker's
 * own count starts again for the new message.
 */
export const HEADER_DEATHS = 'x-weft-deaths';

/** Dead-letter reasons a worker gives, as the first word of `x-weft-reason`. */
export const REASON_UNDECODABLE = 'undecodable';
export const REASON_UNKNOWN_OPERATION = 'unknown-operation';
/** A task whose workers kept dying while it ran alone, past the delivery limit. */
export const REASON_KILLED_WORKERS = 'killed-workers';

// Records (msgpackr's structure extension) make arrays of like objects cheap;
// without shared structures each message carries its own definitions, so any
// process can decode any message. The same msgpackr as the channels' codec
// (one copy loaded, and its extensions).
const packr = new (msgpackr().Packr)({ useRecords: true, moreTypes: true });

// A task's identity within its lease, the one form every part of the
// backend keys tasks by (answers awaited, cancellations, progress held): the
// lease key is known from where the task is, so index, stage and attempt
// remain.

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

/** A column of per-item numbers, or the one value they all share. */
type Column = number | number[];

function columnOf(count: number, valueAt: (i: number) => number): Column {
  const first = count === 0 ? 0 : valueAt(0);
  for (let i = 1; i < count; i++) {
    if (valueAt(i) !== first) {
      const column = new Array<number>(count);
      for (let j = 0; j < count; j++) column[j] = valueAt(j);
      return column;
    }
  }
  return first;
}

/**
 * An index column: the first index alone when the indices run on by one
 * (a dispatch's tasks are cut in order, so nearly every message's do), else
 * one per item. Indices are most of a tiny task's bytes: a message of 256
 * of them went from 1.8 kB to 1 kB, under amqplib's 2 kB single-write
 * threshold (a publish over it costs two socket writes).
 */
function indexColumnOf(count: number, indexAt: (i: number) => number): Column {
  const first = count === 0 ? 0 : indexAt(0);
  for (let i = 1; i < count; i++) {
    if (indexAt(i) !== first + i) {
      const column = new Array<number>(count);
      for (let j = 0; j < count; j++) column[j] = indexAt(j);
      return column;
    }
  }
  return first;
}

/** Reads item `i` of an index column; undefined if it is not a count. */
function indexAt(column: unknown, i: number): number | undefined {
  const value = Array.isArray(column) ? column[i] : isCount(column) ? column + i : undefined;
  return isCount(value) ? value : undefined;
}

/** An index column's length, when it has one of its own (a run's is its batch's). */
function isIndexColumn(column: unknown, count: number): boolean {
  return Array.isArray(column) ? column.length === count : isCount(column);
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** Reads item `i` of a column; undefined if it is not a count. */
function cell(column: unknown, i: number): number | undefined {
  const value = Array.isArray(column) ? column[i] : column;
  return isCount(value) ? value : undefined;
}

function unpack(content: Uint8Array): unknown {
  try {
    return packr.unpack(content);
  } catch (error) {
    throw new MalformedMessageError(`not msgpack: ${(error as Error).message}`);
  }
}

/** Encodes a task batch: `[ops, op, index, stage, attempt, input]`, where `op`, `stage` and `attempt` are a column or a shared value (`op` indexes `ops`), and `index` a column or the first of consecutive indices. */
export function encodeTasks(tasks: readonly Task[]): Buffer {
  const count = tasks.length;
  const ops: string[] = [];
  const opIndex = new Map<string, number>();
  const op = columnOf(count, (i) => {
    const name = tasks[i]!.op;
    let at = opIndex.get(name);
    if (at === undefined) {
      at = ops.push(name) - 1;
      opIndex.set(name, at);
    }
    return at;
  });
  const input = new Array<unknown>(count);
  for (let i = 0; i < count; i++) input[i] = tasks[i]!.input;
  const index = indexColumnOf(count, (i) => tasks[i]!.index);
  const stage = columnOf(count, (i) => tasks[i]!.stage);
  const attempt = columnOf(count, (i) => tasks[i]!.attempt);
  return packr.pack([ops, op, index, stage, attempt, input]);
}

/** Throws MalformedMessageError unless `format` (a message's `x-weft-format`) is the one this code reads. */
export function checkFormat(format: number | undefined): void {
  if (format !== FORMAT) throw new MalformedMessageError(`message format ${format ?? 'missing'}, this code reads format ${FORMAT}`);
}

/** Decodes and checks a task batch; throws MalformedMessageError on anything else. */
export function decodeTasks(content: Uint8Array, key: string): Task[] {
  const body = unpack(content);
  if (!Array.isArray(body) || body.length !== 6 || !Array.isArray(body[0]) || !Array.isArray(body[5])) {
    throw new MalformedMessageError('the body is not a task batch');
  }
  const [ops, op, index, stage, attempt, input] = body as [unknown[], unknown, unknown, unknown, unknown, unknown[]];
  if (!isIndexColumn(index, input.length)) throw new MalformedMessageError('the task batch has unequal index and input columns');
  const tasks = new Array<Task>(input.length);
  for (let i = 0; i < input.length; i++) {
    const at = cell(op, i);
    const name = at === undefined ? undefined : ops[at];
    const n = indexAt(index, i);
    const s = cell(stage, i);
    const a = cell(attempt, i);
    if (typeof name !== 'string' || n === undefined || s === undefined || a === undefined) {
      throw new MalformedMessageError(`task ${i} of the batch lacks op, index, stage or attempt`);
    }
    tasks[i] = { op: name, input: input[i], key, index: n, stage: s, attempt: a };
  }
  return tasks;
}

/**
 * Encodes a result batch: `[index, stage, attempt, output, errors, us]`,
 * `index` a column or the first of consecutive indices, `stage` and
 * `attempt` a column or a shared value, `output` null where the
 * task failed, `errors` null or `[position, error, …]` pairs, `us` each
 * task's run time in µs where its thread timed it (a column; null where
 * none did). A batch of five elements (no `us`) is read too.
 */
export function encodeResults(results: readonly TaskResult[]): Buffer {
  const count = results.length;
  const output = new Array<unknown>(count);
  let errors: unknown[] | null = null;
  for (let i = 0; i < count; i++) {
    const result = results[i]!;
    if (result.error === undefined) {
      output[i] = result.output;
    } else {
      output[i] = null;
      (errors ??= []).push(i, result.error);
    }
  }
  const index = indexColumnOf(count, (i) => results[i]!.index);
  const stage = columnOf(count, (i) => results[i]!.stage);
  const attempt = columnOf(count, (i) => results[i]!.attempt);
  const us = results.some((result) => result.us !== undefined) ? results.map((result) => result.us ?? null) : null;
  return packr.pack([index, stage, attempt, output, errors, us]);
}

function failureOf(value: unknown): TaskFailure {
  const e = (typeof value === 'object' && value !== null ? value : {}) as Partial<TaskFailure>;
  return { name: String(e.name), message: String(e.message), stack: e.stack, transient: e.transient === true };
}

/**
 * Decodes and checks a result batch; throws MalformedMessageError on
 * anything else. `w`: the index of the worker that sent it, on every
 * result. Every result has the shape `succeeded` gives one (`error` added
 * where it failed), so the code that reads them sees one kind of object.
 */
export function decodeResults(content: Buffer, key: string, w?: number): TaskResult[] {
  const body = unpack(content);
  if (!Array.isArray(body) || (body.length !== 5 && body.length !== 6) || !Array.isArray(body[3])) {
    throw new MalformedMessageError('the body is not a result batch');
  }
  const [index, stage, attempt, output, errors, us] = body as [unknown, unknown, unknown, unknown[], unknown, unknown];
  if (!isIndexColumn(index, output.length)) throw new MalformedMessageError('the result batch has unequal index and output columns');
  let failures: Map<number, unknown> | undefined;
  if (Array.isArray(errors)) {
    failures = new Map();
    for (let i = 0; i + 1 < errors.length; i += 2) failures.set(errors[i] as number, errors[i + 1]);
  } else if (errors !== null && errors !== undefined) throw new MalformedMessageError('the result batch has a malformed error list');
  const runs = Array.isArray(us) ? (us as unknown[]) : undefined;
  const results = new Array<TaskResult>(output.length);
  for (let i = 0; i < output.length; i++) {
    const n = indexAt(index, i);
    const s = cell(stage, i);
    const a = cell(attempt, i);
    if (n === undefined || s === undefined || a === undefined) throw new MalformedMessageError(`result ${i} of the batch lacks index, stage or attempt`);
    if (failures !== undefined && failures.has(i)) {
      results[i] = { key, index: n, stage: s, attempt: a, output: undefined, us: undefined, w, error: failureOf(failures.get(i)) };
      continue;
    }
    const ran = runs?.[i];
    results[i] = { key, index: n, stage: s, attempt: a, output: output[i], us: isCount(ran) ? ran : undefined, w };
  }
  return results;
}

/** A cancellation's body: the task it names, `[index, stage, attempt]` (its key is in `x-weft-key`). */
export function encodeCancel(index: number, stage: number, attempt: number): Buffer {
  return packr.pack([index, stage, attempt]);
}

export function decodeCancel(content: Buffer): [index: number, stage: number, attempt: number] {
  const body = unpack(content);
  if (!Array.isArray(body) || body.length !== 3 || !body.every(isCount)) throw new MalformedMessageError('the body is not a task to cancel');
  return body as [number, number, number];
}

/** A progress message's body: `[index, stage, attempt, detail, …]`, four items per detail. */
export function encodeProgress(updates: readonly TaskProgress[]): Buffer {
  const flat: unknown[] = [];
  for (const { index, stage, attempt, detail } of updates) flat.push(index, stage, attempt, detail);
  return packr.pack(flat);
}

export function decodeProgress(content: Buffer, key: string): TaskProgress[] {
  const body = unpack(content);
  if (!Array.isArray(body) || body.length % 4 !== 0) throw new MalformedMessageError('the body is not a list of progress details');
  const updates: TaskProgress[] = [];
  for (let i = 0; i < body.length; i += 4) {
    const [index, stage, attempt, detail] = body.slice(i, i + 4) as [unknown, unknown, unknown, unknown];
    if (!isCount(index) || !isCount(stage) || !isCount(attempt)) throw new MalformedMessageError(`progress detail ${i / 4} lacks index, stage or attempt`);
    updates.push({ key, index, stage, attempt, detail });
  }
  return updates;
}

/** A header value as a string, or undefined (AMQP headers may arrive as Buffers). */
export function headerString(headers: Record<string, unknown> | undefined, name: string): string | undefined {
  const value = headers?.[name];
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return undefined;
}

/**
 * A task message's `x-weft-grace-ms`: undefined when absent. A value that
 * no orchestrator sends (see checkDuration) is malformed.
 */
export function graceOf(headers: Record<string, unknown> | undefined): number | undefined {
  const value = headers?.[HEADER_GRACE_MS];
  if (value === undefined) return undefined;
  if (!isDuration(value)) throw new MalformedMessageError(`${HEADER_GRACE_MS} is not a positive number of milliseconds up to ${MAX_DURATION_MS}`);
  return value;
}

export function headerNumber(headers: Record<string, unknown> | undefined, name: string): number | undefined {
  const value = headers?.[name];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** The W3C trace context a task message's headers carry (`weft/otel` on the orchestrator), for `weft:task` on the thread that runs it. */
export function traceContextOf(headers: Record<string, unknown> | undefined): TraceCarrier | undefined {
  const traceparent = headerString(headers, 'traceparent');
  if (traceparent === undefined) return undefined;
  const tc: TraceCarrier = { traceparent };
  const tracestate = headerString(headers, 'tracestate');
  if (tracestate !== undefined) tc.tracestate = tracestate;
  return tc;
}
