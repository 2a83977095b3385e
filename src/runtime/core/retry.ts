// How often, and after how long, a task that failed transiently is tried again.

import { ArgumentError } from './errors.ts';
import { shown } from './options.ts';

export interface RetryPolicy {
  /** Retries after the first attempt; 0 disables retrying. */
  readonly retries: number;
  /** Milliseconds to wait before retry number `retry` (1-based). */
  delayMs(retry: number): number;
}

function checkRetries(call: string, retries: number): void {
  if (!Number.isSafeInteger(retries) || retries < 0) throw new ArgumentError(`${call}: retries must be a non-negative integer, got ${shown(retries)}`);
}

function checkDelay(call: string, name: string, ms: unknown, least = 0): void {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < least) {
    throw new ArgumentError(`${call}: ${name} must be a finite number ${least === 0 ? 'of milliseconds, 0 or more' : `of ${least} or more`}, got ${shown(ms)}`);
  }
}

export const Retry = {
  /** No retry: a transient error is as fatal as any other. */
  none(): RetryPolicy {
    return { retries: 0, delayMs: () => 0 };
  },

  /** Retry at once, up to `retries` times. */
  immediate(retries: number): RetryPolicy {
    checkRetries('Retry.immediate', retries);
    return { retries, delayMs: () => 0 };
  },

  /** Retry after the same delay each time. */
  fixed(retries: number, delayMs: number): RetryPolicy {
    checkRetries('Retry.fixed', retries);
    checkDelay('Retry.fixed', 'delayMs', delayMs);
    return { retries, delayMs: () => delayMs };
  },

  /** Retry after `initialMs`, then `factor` times longer each time, never longer than `maxMs`. */
  exponential(retries: number, options: { initialMs: number; maxMs: number; factor?: number }): RetryPolicy {
    const call = 'Retry.exponential';
    checkRetries(call, retries);
    if (typeof options !== 'object' || options === null) throw new ArgumentError(`${call}: options must be { initialMs, maxMs, factor? }, got ${shown(options)}`);
    checkDelay(call, 'initialMs', options.initialMs);
    checkDelay(call, 'maxMs', options.maxMs);
    checkDelay(call, 'factor', options.factor ?? 2, 1);
    const factor = options.factor ?? 2;
    return { retries, delayMs: (retry) => Math.min(options.maxMs, options.initialMs * factor ** (retry - 1)) };
  },
} as const;

/** Three retries, 10 ms apart at first, doubling up to one second. */
export const DEFAULT_RETRY: RetryPolicy = Retry.exponential(3, { initialMs: 10, maxMs: 1000 });
