// The substrate's counters of one worker, per channel and peer: plain
// numbers in one Float64Array per channel, bumped once per batch (never per
// message, never allocating), so they stay on always. A Float64Array
// rather than an Int32Array: byte totals pass 2^32 in a long run, and a
// double counts exactly up to 2^53.

import type { LinkStats } from '../transport/index.ts';

/** Counters per peer, in this order. */
const SENT_MESSAGES = 0;
const SENT_BYTES = 1;
const SENT_FRAMES = 2;
const RECEIVED_MESSAGES = 3;
const RECEIVED_BYTES = 4;
const RECEIVED_FRAMES = 5;
const FIELDS = 6;

/**
 * One channel's traffic with one peer, as this worker saw it. Bytes are
 * the batches' encoded bytes (frame headers not counted), so what a worker
 * sent to a peer on a channel is what that peer received from it once it
 * has all arrived. A frame is one batch (a loan's message is a batch of one).
 */
export interface ChannelStats {
  channel: number;
  /** The worker at the other end (this worker's own index for messages to itself). */
  peer: number;
  sentMessages: number;
  sentBytes: number;
  sentFrames: number;
  receivedMessages: number;
  receivedBytes: number;
  receivedFrames: number;
  /**
   * Bytes waiting on this worker's side for ring space towards `peer`
   * (`push.backlog`): shared by every channel to that peer, since they
   * share its ring.
   */
  backlogBytes: number;
}

/** What `allocator.stats()` reports: this worker's counters since it started. */
export interface AllocatorStats {
  /** Frames this worker wrote into its rings, and their payload bytes (headers not counted). */
  sentFrames: number;
  sentBytes: number;
  /** Frames this worker read from its rings. */
  receivedFrames: number;
  /** Frames and bytes waiting on this worker's side for ring space: its backlog. */
  overflowFrames: number;
  overflowBytes: number;
  /** How many times this worker parked (awaitEvents found nothing to do after spinning and slept on its doorbell). */
  parks: number;
  /** Per allocated channel and peer with traffic or a backlog: see ChannelStats. */
  channels: ChannelStats[];
  /** In a cluster, this process's links to every other process (shared by its workers); empty otherwise. */
  links: LinkStats[];
}

/** A channel's counters: FIELDS per peer. */
export function channelCounters(peers: number): Float64Array {
  return new Float64Array(peers * FIELDS);
}

/** A batch of `messages` (`bytes` encoded) went to `peer`. */
export function countSent(c: Float64Array, peer: number, messages: number, bytes: number): void {
  const i = peer * FIELDS;
  c[i + SENT_MESSAGES]! += messages;
  c[i + SENT_BYTES]! += bytes;
  c[i + SENT_FRAMES]!++;
}

/** A batch of `messages` (`bytes` encoded) arrived from `peer`. */
export function countReceived(c: Float64Array, peer: number, messages: number, bytes: number): void {
  const i = peer * FIELDS;
  c[i + RECEIVED_MESSAGES]! += messages;
  c[i + RECEIVED_BYTES]! += bytes;
  c[i + RECEIVED_FRAMES]!++;
}

/** The entries of `channel` with traffic either way, or a backlog. */
export function channelStats(channel: number, c: Float64Array, backlog: (peer: number) => number, into: ChannelStats[]): void {
  for (let peer = 0, i = 0; i < c.length; peer++, i += FIELDS) {
    const backlogBytes = backlog(peer);
    if (c[i + SENT_FRAMES] === 0 && c[i + RECEIVED_FRAMES] === 0 && backlogBytes === 0) continue;
    into.push({
      channel, peer,
      sentMessages: c[i + SENT_MESSAGES]!, sentBytes: c[i + SENT_BYTES]!, sentFrames: c[i + SENT_FRAMES]!,
      receivedMessages: c[i + RECEIVED_MESSAGES]!, receivedBytes: c[i + RECEIVED_BYTES]!, receivedFrames: c[i + RECEIVED_FRAMES]!,
      backlogBytes,
    });
  }
}
