// Checks of what users pass to the runtime: run options, runtime options,
// directive sources. Done before anything is leased or started, so a bad
// value costs nothing but its error, which names the option and the value.

import { ArgumentError } from './errors.ts';
import type { RetryPolicy } from './retry.ts';

/** `value` as an error message names it. */
export function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : `an object (${Object.prototype.toString.call(value).slice(8, -1)})`;
}

function refuse(where: string, option: string, expected: string, value: unknown): never {
  throw new ArgumentError(`${where} ${option} must be ${expected}, got ${shown(value)}`);
}

export function checkPositiveInteger(where: string, option: string, value: unknown): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && (value as number) > 0)) refuse(where, option, 'a positive integer', value);
}

export function checkBoolean(where: string, option: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') refuse(where, option, 'a boolean', value);
}

/**
 * The longest timer Node keeps: a longer delay fires after 1 ms (with a
 * TimeoutOverflowWarning), so "wait 30 days" would mean "do not wait".
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** Whether `value` is a delay weft can wait for: positive, at most MAX_DURATION_MS. */
export function isDuration(value: unknown): value is number {
  return typeof value === 'number' && value > 0 && value <= MAX_DURATION_MS;
}

export function checkDuration(where: string, option: string, value: unknown): void {
  if (value !== undefined && !isDuration(value)) {
    refuse(where, option, `a positive number of milliseconds up to ${MAX_DURATION_MS} (about 24.8 days)`, value);
  }
}

function checkRetry(where: string, value: unknown): void {
  if (value === undefined) return;
  const policy = value as Partial<RetryPolicy> | null;
  const retries = policy?.retries;
  if (typeof policy !== 'object' || policy === null || typeof policy.delayMs !== 'function' || !(Number.isSafeInteger(retries) && retries! >= 0)) {
    refuse(where, 'retry', 'a RetryPolicy (Retry.none(), Retry.immediate(n), Retry.fixed(n, ms), Retry.exponential(n, …))', value);
  }
}

/** `retry`, `timeoutMs`, `maxInFlight`, `cancelGraceMs`: the options a runtime and a run share. */
export function checkSharedOptions(where: string, options: unknown): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) refuse(where, 'options', 'an object', options);
  const o = options as Record<string, unknown>;
  checkRetry(where, o.retry);
  checkDuration(where, 'timeoutMs', o.timeoutMs);
  checkPositiveInteger(where, 'maxInFlight', o.maxInFlight);
  checkDuration(where, 'cancelGraceMs', o.cancelGraceMs);
}

/** The options of `run`, `call`, `fanout`. */
export function checkRunOptions(options: unknown, where = 'run option'): void {
  checkSharedOptions(where, options);
  if (options === undefined) return;
  const o = options as Record<string, unknown>;
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) refuse(where, 'signal', 'an AbortSignal', o.signal);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') refuse(where, 'onProgress', 'a function', o.onProgress);
}

/** The options of `stream`: those of `run`, and `ordered`. */
export function checkStreamOptions(options: unknown): void {
  const where = 'stream option';
  checkRunOptions(options, where);
  const ordered = (options as Record<string, unknown> | undefined)?.ordered;
  if (ordered !== undefined && typeof ordered !== 'boolean') refuse(where, 'ordered', 'a boolean', ordered);
}

/** A directive's input: anything `for` or `for await` can walk. */
export function checkSource(source: unknown): void {
  const s = source as Record<symbol, unknown> | null | undefined;
  if (s == null || (typeof s[Symbol.iterator] !== 'function' && typeof s[Symbol.asyncIterator] !== 'function')) {
    refuse('IndexedStream.from:', 'the source', 'an iterable or an async iterable (an array, a generator, a stream…)', source);
  }
}
