// The cluster options a user tunes at launch rather than in code
// (onPeerLoss, heartbeatTimeoutMs, connectTimeoutMs): each has a flag,
// read by Config.fromArgs and passed on by `weft launch`, and an
// environment variable Config.cluster reads when the option is not given.
// Every message about one names all three, since any of them may have set it.

import { ConfigError } from '../errors.ts';

/** The longest timeout Node's timers keep (a larger one fires at once). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
/**
 * Silence after which a peer is presumed dead. The heartbeats run on each
 * process's network thread, so user code never delays them; 10 s covers
 * what a loaded machine does to a thread's timers (a 3 s default tripped at
 * load ~23 on 2 cores, docs/cluster.md).
 */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 10_000;

/** A heartbeat timeout shorter than this would declare peers dead between two of their beats (every 50 ms at the fastest). */
export const MIN_HEARTBEAT_TIMEOUT_MS = 150;

/** The cluster options a user tunes at launch: their flag and environment variable. */
export const CLUSTER_FLAGS = {
  onPeerLoss: { flag: '--on-peer-loss', env: 'WEFT_ON_PEER_LOSS' },
  heartbeatTimeoutMs: { flag: '--heartbeat-timeout', env: 'WEFT_HEARTBEAT_TIMEOUT_MS' },
  connectTimeoutMs: { flag: '--connect-timeout', env: 'WEFT_CONNECT_TIMEOUT_MS' },
} as const;
export type Tuned = keyof typeof CLUSTER_FLAGS;

/** An option's value, or its environment variable's when it is not given ("" or unset: none). */
export function fromEnv(name: Tuned, given: unknown): unknown {
  if (given !== undefined) return given;
  const v = process.env[CLUSTER_FLAGS[name].env];
  if (v === undefined || v === '') return undefined;
  return /^\d+$/.test(v) ? Number(v) : v;
}

/** The option's names a user may have used: field, flag and environment variable. */
export const named = (name: Tuned): string => `${name} (${CLUSTER_FLAGS[name].flag}, ${CLUSTER_FLAGS[name].env})`;

export function duration(name: Tuned, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_TIMEOUT_MS) {
    throw new ConfigError(`${named(name)} must be an integer number of ms from ${min} to ${MAX_TIMEOUT_MS}, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function peerLossOf(value: unknown): 'abort' | 'continue' {
  if (value === undefined) return 'abort';
  if (value !== 'abort' && value !== 'continue') throw new ConfigError(`${named('onPeerLoss')} must be 'abort' or 'continue', got ${JSON.stringify(value)}`);
  return value;
}

/**
 * The flags that pass cluster options on to a launched process, checked
 * here so a wrong value is one error before anything starts.
 */
export function clusterFlags(o: { onPeerLoss?: string | undefined; heartbeatTimeoutMs?: string | undefined; connectTimeoutMs?: string | undefined }): string[] {
  const out: string[] = [];
  const ms = (v: string): number | string => (/^\d+$/.test(v) ? Number(v) : v);
  if (o.onPeerLoss !== undefined) out.push(CLUSTER_FLAGS.onPeerLoss.flag, peerLossOf(o.onPeerLoss));
  if (o.heartbeatTimeoutMs !== undefined) out.push(CLUSTER_FLAGS.heartbeatTimeoutMs.flag, String(duration('heartbeatTimeoutMs', ms(o.heartbeatTimeoutMs), MIN_HEARTBEAT_TIMEOUT_MS)));
  if (o.connectTimeoutMs !== undefined) out.push(CLUSTER_FLAGS.connectTimeoutMs.flag, String(duration('connectTimeoutMs', ms(o.connectTimeoutMs), 1)));
  return out;
}
