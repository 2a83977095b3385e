// What orchestrators and workers of the AMQP backend are given, and the
// checks that refuse a bad value before anything connects. Public types (the
// package's .d.ts names them), so this file names none of amqplib's types:
// those are not shipped.

import { ArgumentError } from '../../../core/errors.ts';
import { checkDuration, checkKnown, checkPositiveInteger, RUNTIME_OPTIONS } from '../../../core/options.ts';
import { namesOf } from './topology.ts';

/** How reconnection to the broker backs off. */
export interface BackoffOptions {
  /** First delay before reconnecting, in ms. Default 100. */
  initialMs?: number;
  /** Longest delay between attempts, in ms. Default 2000. */
  maxMs?: number;
}

/** Options shared by orchestrators and workers; both sides must agree on `prefix` and `deliveryLimit`. */
export interface AmqpConnectOptions {
  /** `amqp://user:password@host:port/vhost`. */
  url: string;
  /** Names every queue and exchange: `<prefix>.tasks`, `<prefix>.dead`, … Default `weft`. */
  prefix?: string;
  /** Deliveries of a task message before the broker dead-letters it (quorum `x-delivery-limit`). Default 3. */
  deliveryLimit?: number;
  /** AMQP heartbeat in seconds. Default 5. */
  heartbeatSeconds?: number;
  /** Reconnection delays: from `initialMs` (100), doubling, up to `maxMs` (2000). */
  backoff?: BackoffOptions;
  /** How long the first connection may take before giving up, in ms. Default 30 000. */
  connectTimeoutMs?: number;
}

export interface AmqpBackendOptions extends AmqpConnectOptions {
  /** Most tasks in one message. Default 256. */
  maxBatch?: number;
  /** How long directives wait for a lost broker before failing, in ms. Default 30 000. */
  reconnectTimeoutMs?: number;
}

export interface AmqpWorkerOptions extends AmqpConnectOptions {
  /** The module(s) whose `defineOperation` calls this worker serves, as URL or path. */
  operations: string | URL | readonly (string | URL)[];
  /** Worker threads that run the tasks. Default: `os.availableParallelism()`. */
  threads?: number;
  /** Task messages (batches) delivered and not yet answered. Default: 4 per thread, at least 8. */
  prefetch?: number;
  /**
   * How long a cancelled task may run on before its thread is terminated
   * and replaced, in ms, for tasks whose run set no `cancelGraceMs` of its
   * own (a run's travels with its tasks). Default 1000.
   */
  cancelGraceMs?: number;
  /** Where connection news goes. Default: nowhere. */
  log?: (line: string) => void;
}

// Task messages a worker holds, per thread and at the least: enough that a
// thread finds the next batch waiting while the last one's results travel
// back through the main thread (a thread hop each way).
export const PREFETCH_PER_THREAD = 4;
export const MIN_PREFETCH = 8;

export interface AmqpWorkerStats {
  /** Tasks run. */
  executed: number;
  /** Tasks dropped unread because their lease was released. */
  dropped: number;
  /** Messages published to the dead letters. */
  deadLettered: number;
}

const CONNECT_OPTIONS: readonly (keyof AmqpConnectOptions)[] = ['url', 'prefix', 'deliveryLimit', 'heartbeatSeconds', 'backoff', 'connectTimeoutMs'];
const WORKER_OPTIONS: readonly (keyof AmqpWorkerOptions)[] = [...CONNECT_OPTIONS, 'operations', 'threads', 'prefetch', 'cancelGraceMs', 'log'];
const BACKEND_OPTIONS: readonly string[] = [...RUNTIME_OPTIONS, ...CONNECT_OPTIONS, 'maxBatch', 'reconnectTimeoutMs'];

/**
 * Refuses (ArgumentError) a bad value of the options both sides share, and
 * a field the caller does not take (`known`): a misspelt `prefetch` or
 * `heartbeatSeconds` would otherwise be a silent default. `where` names the
 * caller.
 */
function checkConnectOptions(where: string, options: AmqpConnectOptions, known: readonly string[]): void {
  if (typeof options !== 'object' || options === null) throw new ArgumentError(`${where}s must be an object with a url, got ${String(options)}`);
  checkKnown(where, options, known);
  checkKnown(`${where} backoff`, options.backoff, ['initialMs', 'maxMs']);
  if (!isAmqpUrl(options.url)) {
    const got = typeof options.url === 'string' ? JSON.stringify(options.url) : String(options.url);
    throw new ArgumentError(`${where} url must be an amqp:// or amqps:// URL, got ${got}`);
  }
  namesOf(options.prefix);
  checkPositiveInteger(where, 'deliveryLimit', options.deliveryLimit);
  checkPositiveInteger(where, 'heartbeatSeconds', options.heartbeatSeconds);
  checkDuration(where, 'backoff.initialMs', options.backoff?.initialMs);
  checkDuration(where, 'backoff.maxMs', options.backoff?.maxMs);
  checkDuration(where, 'connectTimeoutMs', options.connectTimeoutMs);
}

/** Refuses a bad value of `WorkerRuntime.amqp`'s own options. */
export function checkWorkerOptions(options: AmqpWorkerOptions): void {
  const where = 'WorkerRuntime.amqp option';
  checkConnectOptions(where, options, WORKER_OPTIONS);
  checkPositiveInteger(where, 'threads', options.threads);
  checkPositiveInteger(where, 'prefetch', options.prefetch);
  checkDuration(where, 'cancelGraceMs', options.cancelGraceMs);
}

/** Refuses a bad value of `Runtime.amqp`'s own options. */
export function checkBackendOptions(options: AmqpBackendOptions): void {
  const where = 'Runtime.amqp option';
  checkConnectOptions(where, options, BACKEND_OPTIONS);
  checkPositiveInteger(where, 'maxBatch', options.maxBatch);
  checkDuration(where, 'reconnectTimeoutMs', options.reconnectTimeoutMs);
}

function isAmqpUrl(url: unknown): boolean {
  if (typeof url !== 'string') return false;
  try {
    const { protocol } = new URL(url);
    return protocol === 'amqp:' || protocol === 'amqps:';
  } catch {
    return false;
  }
}
