// What weft's AMQP messages carry: bodies are msgpack (msgpackr), metadata is
// in AMQP properties and headers so that a consumer can route or drop a
// message without decoding it. docs/amqp.md describes the same fields.
//
// A task message holds a batch of tasks of one lease; the lease key is in a
// header, not in every task. A result message holds the results of one task
// message, published to the queue named by its `replyTo`.

import { Packr } from 'msgpackr';
import type { Task, TaskFailure, TaskResult } from '../task.ts';

/** Bumped when the body layout changes; a worker dead-letters a format it does not know. */
export const FORMAT = 1;

export const TYPE_TASKS = 'weft.tasks';
export const TYPE_RESULTS = 'weft.results';
export const TYPE_RELEASE = 'weft.release';
export const CONTENT_TYPE = 'application/x-msgpack';

export const HEADER_FORMAT = 'x-weft-format';
export const HEADER_KEY = 'x-weft-key';
export const HEADER_COUNT = 'x-weft-count';
/** On results: milliseconds the worker spent on the batch, to size later batches. */
export const HEADER_MS = 'x-weft-ms';
export const HEADER_WORKER = 'x-weft-worker';
/** On dead letters published by a worker: why. */
export const HEADER_REASON = 'x-weft-reason';

/** Dead-letter reasons a worker gives, as the first word of `x-weft-reason`. */
export const REASON_UNDECODABLE = 'undecodable';
export const REASON_UNKNOWN_OPERATION = 'unknown-operation';

// Records (msgpackr's structure extension) make arrays of like objects cheap;
// without shared structures each message carries its own definitions, so any
// process can decode any message.
const packr = new Packr({ useRecords: true, moreTypes: true });

/** A task without its key: the batch's key is in `x-weft-key`. */
type WireTask = Omit<Task, 'key'>;
type WireResult = Omit<TaskResult, 'key'>;

export class WireError extends Error {
  override name = 'WireError';
}

export function encodeTasks(tasks: readonly Task[]): Buffer {
  return packr.pack(tasks.map(({ op, input, index, stage, attempt }): WireTask => ({ op, input, index, stage, attempt })));
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** Decodes and checks a task batch; throws `WireError` on anything else. */
export function decodeTasks(content: Buffer, key: string): Task[] {
  let body: unknown;
  try {
    body = packr.unpack(content);
  } catch (error) {
    throw new WireError(`not msgpack: ${(error as Error).message}`);
  }
  if (!Array.isArray(body)) throw new WireError('the body is not an array of tasks');
  return body.map((task: unknown, position) => {
    const t = task as Partial<WireTask> | null;
    if (typeof t !== 'object' || t === null || typeof t.op !== 'string' || !isCount(t.index) || !isCount(t.stage) || !isCount(t.attempt)) {
      throw new WireError(`task ${position} of the batch lacks op, index, stage or attempt`);
    }
    return { op: t.op, input: t.input, key, index: t.index, stage: t.stage, attempt: t.attempt };
  });
}

export function encodeResults(results: readonly TaskResult[]): Buffer {
  return packr.pack(
    results.map(({ index, stage, attempt, output, error }): WireResult => (error === undefined ? { index, stage, attempt, output } : { index, stage, attempt, error })),
  );
}

/** Decodes a result batch; throws `WireError` on anything else. */
export function decodeResults(content: Buffer, key: string): TaskResult[] {
  let body: unknown;
  try {
    body = packr.unpack(content);
  } catch (error) {
    throw new WireError(`not msgpack: ${(error as Error).message}`);
  }
  if (!Array.isArray(body)) throw new WireError('the body is not an array of results');
  return body.map((result: unknown, position) => {
    const r = result as Partial<WireResult> | null;
    if (typeof r !== 'object' || r === null || !isCount(r.index) || !isCount(r.stage) || !isCount(r.attempt)) {
      throw new WireError(`result ${position} of the batch lacks index, stage or attempt`);
    }
    if (r.error !== undefined) {
      const e = r.error as Partial<TaskFailure>;
      const error: TaskFailure = { name: String(e.name), message: String(e.message), stack: e.stack, transient: e.transient === true };
      return { key, index: r.index, stage: r.stage, attempt: r.attempt, error };
    }
    return { key, index: r.index, stage: r.stage, attempt: r.attempt, output: r.output };
  });
}

/** A header value as a string, or undefined (AMQP headers may arrive as Buffers). */
export function headerString(headers: Record<string, unknown> | undefined, name: string): string | undefined {
  const value = headers?.[name];
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return undefined;
}

export function headerNumber(headers: Record<string, unknown> | undefined, name: string): number | undefined {
  const value = headers?.[name];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}
