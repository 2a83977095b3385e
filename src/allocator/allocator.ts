// What a worker's function receives: the Allocator interface, and the object
// behind it. That object holds the worker's Endpoint in a private field, so
// nothing a user can reach aborts the run, fakes a frame or rewires a ring.
// Layer-wise this is where typed channels meet byte frames.

import { codecProblem, codecs, type Codec } from './codec.ts';
import type { Pull } from './pull.ts';
import type { Push } from './push.ts';
import type { Endpoint, AllocatorStats } from './endpoint.ts';
import type { PeerLoss, PeerJoin } from './membership.ts';
import { ChannelError, ConfigError } from '../errors.ts';

export type { AllocatorStats } from './endpoint.ts';
export type { PeerLoss, PeerJoin } from './membership.ts';

const MAX_CHANNEL = 0xffffffff;

/**
 * A wait's timeout, checked: NaN (a deadline computed from undefined) made
 * Atomics.wait sleep for ever, and a string was read as a number. Below 0
 * it is 0, as for setTimeout: a deadline already passed waits no more.
 */
function timeout(call: string, timeoutMs: unknown): number | undefined {
  if (timeoutMs === undefined) return undefined;
  if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs)) {
    throw new ConfigError(`${call}'s timeoutMs must be a number of milliseconds (Infinity or none: no limit), got ${typeof timeoutMs === 'string' ? JSON.stringify(timeoutMs) : String(timeoutMs)}`);
  }
  return Math.max(0, timeoutMs);
}

/** One worker's view of the fabric: its channels to every worker, and the calls that move their messages. */
export interface Allocator {
  /** This worker's index, from 0 to peers - 1. */
  readonly index: number;
  /** How many workers the run has (in a cluster, across every process). */
  readonly peers: number;
  /**
   * Checks of the rings awaitEvents makes before it parks; undefined means
   * adaptive (spinning up to 100 us). 0 always parks: lowest CPU, ~30 us per wake.
   */
  spinLimit: number | undefined;
  /**
   * Allocates channel `channel`: one pusher per worker (indexed by worker)
   * and this worker's puller. Every worker that exchanges on a channel
   * allocates it with the same id and codec.
   */
  allocate<T>(channel: number, codec?: Codec<T>): [Push<T>[], Pull<T>];
  /**
   * Moves frames that have arrived into their channels' pullers: on each
   * channel, up to `ringBytes` of frames ahead of what recv() has read. The
   * rest waits in the rings, where its senders feel it as backpressure.
   */
  receive(): void;
  /** Hands every buffered message to the transport and publishes it. */
  release(): void;
  /**
   * Parks the thread until a frame arrives, ring space frees up for
   * overflow, another worker fails, or `timeoutMs` passes. Releases first,
   * so nothing this worker wrote is held back while it sleeps.
   */
  awaitEvents(timeoutMs?: number): void;
  /** awaitEvents for async code: the event loop keeps turning while parked. */
  awaitEventsAsync(timeoutMs?: number): Promise<void>;
  /** Channel ids that received messages since the last call. */
  events(): number[];
  stats(): AllocatorStats;
  /** Resolves once every overflowed frame is in a ring (or dropped: bound for a worker that returned). */
  drain(): Promise<void>;
  /**
   * drain() for a synchronous worker: parks the thread (as awaitEvents
   * does), receiving and releasing meanwhile, until every overflowed frame
   * is in a ring. True once drained; false if `timeoutMs` passed first.
   */
  awaitDrain(timeoutMs?: number): boolean;
  /**
   * Peer processes lost since the last call (Config.cluster with onPeerLoss
   * 'continue'; learnt in receive()). Their workers' channels are closed
   * towards this worker, and a send to them throws a PeerError.
   */
  peerLosses(): PeerLoss[];
  /**
   * Spare processes that joined since the last call (Config.cluster
   * `spares`; learnt in receive()). Their workers' channels are open towards
   * this worker from then on, and sends to them go through.
   */
  peerJoins(): PeerJoin[];
  /** Whether `worker`'s process is in the cluster now: false for a spare not joined yet and for a lost process. */
  present(worker: number): boolean;
}

/** The Allocator a worker's function receives, over its endpoint. */
export class WorkerAllocator implements Allocator {
  readonly #e: Endpoint;

  constructor(endpoint: Endpoint) {
    this.#e = endpoint;
  }

  get index(): number {
    return this.#e.index;
  }

  get peers(): number {
    return this.#e.peers;
  }

  get spinLimit(): number | undefined {
    return this.#e.spinLimit;
  }

  set spinLimit(limit: number | undefined) {
    // Infinity never parked, whatever the timeout; NaN, a string or -1 spun as 0 or as nothing at all, silently.
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) {
      throw new ConfigError(`spinLimit must be undefined (adaptive) or a whole number of checks from 0 to ${Number.MAX_SAFE_INTEGER}, got ${typeof limit === 'string' ? JSON.stringify(limit) : String(limit)}`);
    }
    this.#e.spinLimit = limit;
  }

  allocate<T>(channel: number, codec: Codec<T> = codecs.msgpack<T>()): [Push<T>[], Pull<T>] {
    const e = this.#e;
    e.live(`allocate(${channel})`);
    if (!Number.isInteger(channel) || channel < 0 || channel > MAX_CHANNEL) {
      throw new ChannelError(channel, `channel ids are integers from 0 to ${MAX_CHANNEL}`);
    }
    const problem = codecProblem(codec);
    if (problem !== undefined) throw new ChannelError(channel, problem);
    return e.allocate(channel, codec);
  }

  receive(): void {
    this.#e.receive();
  }

  release(): void {
    this.#e.release();
  }

  awaitEvents(timeoutMs?: number): void {
    this.#e.awaitEvents(timeout('awaitEvents()', timeoutMs));
  }

  awaitEventsAsync(timeoutMs?: number): Promise<void> {
    let ms;
    try {
      ms = timeout('awaitEventsAsync()', timeoutMs);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.#e.awaitEventsAsync(ms);
  }

  events(): number[] {
    return this.#e.events();
  }

  stats(): AllocatorStats {
    return this.#e.stats();
  }

  drain(): Promise<void> {
    return this.#e.drain();
  }

  awaitDrain(timeoutMs?: number): boolean {
    return this.#e.awaitDrain(timeout('awaitDrain()', timeoutMs));
  }

  peerLosses(): PeerLoss[] {
    return this.#e.peerLosses();
  }

  peerJoins(): PeerJoin[] {
    return this.#e.peerJoins();
  }

  present(worker: number): boolean {
    return this.#e.present(worker);
  }
}
