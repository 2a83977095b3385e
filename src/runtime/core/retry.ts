// How often, and after how long, a task that failed transiently is tried again.

import { WeftError } from '../../errors.ts';

export interface RetryPolicy {
  /** Retries after the first attempt; 0 disables retrying. */
  readonly retries: number;
  /** Milliseconds to wait before retry number `retry` (1-based). */
  delayMs(retry: number): number;
}

function checkRetries(retries: number): number {
  if (!Number.isInteger(retries) || retries < 0) throw new WeftError(`retries must be a non-negative integer, got ${retries}`);
  return retries;
}

export const Retry = {
  /** No retry: a transient error is as fatal as any other. */
  none(): RetryPolicy {
    return { retries: 0, delayMs: () => 0 };
  },

  /** Retry at once, up to `retries` times. */
  immediate(retries: number): RetryPolicy {
    checkRetries(retries);
    return { retries, delayMs: () => 0 };
  },

  /** Retry after the same delay each time. */
  fixed(retries: number, delayMs: number): RetryPolicy {
    checkRetries(retries);
    return { retries, delayMs: () => delayMs };
  },

  /** Retry after `initialMs`, then `factor` times longer each time, never longer than `maxMs`. */
  exponential(retries: number, options: { initialMs: number; maxMs: number; factor?: number }): RetryPolicy {
    checkRetries(retries);
    const factor = options.factor ?? 2;
    return { retries, delayMs: (retry) => Math.min(options.maxMs, options.initialMs * factor ** (retry - 1)) };
  },
} as const;

/** Three retries, 10 ms apart at first, doubling up to one second. */
export const DEFAULT_RETRY: RetryPolicy = Retry.exponential(3, { initialMs: 10, maxMs: 1000 });
