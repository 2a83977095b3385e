// The frame header: one format for SharedArrayBuffer rings and for TCP, so a
// frame read from a ring can be forwarded to a socket byte for byte. Layout
// and field meanings are documented in docs/protocol.md; the names below are
// the names used there.

import { ProtocolError } from '../errors.ts';

/** Header bytes. 32 keeps payloads 8-aligned, so Float64Array views work in place. */
export const HEADER_BYTES = 32;

/** Byte offsets of the header fields (all little-endian). */
export const F_LENGTH = 0; //  u32 payload bytes after the header
export const F_CHANNEL = 4; // u32 channel id
export const F_SOURCE = 8; //  u32 sending worker
export const F_TARGET = 12; // u32 receiving worker
export const F_SEQ = 16; //    u32 per (source, target) frame counter, wraps at 2^32
export const F_KIND = 20; //   u8  Kind
export const F_CODEC = 21; //  u8  codec id of the payload
export const F_FLAGS = 22; //  u16 Flags
export const F_COUNT = 24; //  u32 messages carried (DATA, PART)
export const F_TOTAL = 28; //  u32 payload bytes of the whole batch (PART: across all parts)

export const enum Kind {
  /** A whole batch of `count` messages. */
  DATA = 1,
  /** One piece of a batch too large for one frame; pieces travel back to back. */
  PART = 2,
  /** The source closed its pusher on this channel. */
  CLOSE = 3,
  /** The source worker finished: every channel from it is closed. */
  FIN = 4,
  /** Liveness probe between processes (TCP only). */
  HEARTBEAT = 5,
  /** The process has finished cleanly and will close its socket (TCP only). */
  GOODBYE = 6,
  /** The process failed; the payload is the reason in UTF-8 (TCP only). */
  ABORT = 7,
}

export const enum Flags {
  /** On a PART frame: this is the last piece. */
  LAST = 1,
  /**
   * On a DATA frame between threads of one process: the payload is a slab
   * descriptor (slab.ts), `total` the batch's bytes in the sender's slab.
   * Never on TCP.
   */
  SLAB = 2,
}

export const MAX_KIND = Kind.ABORT;

/** Payload bytes of a DATA frame flagged SLAB (slab.ts's DESCRIPTOR_BYTES). */
export const SLAB_DESCRIPTOR_BYTES = 16;

/** Largest ABORT reason, in bytes. */
export const MAX_REASON_BYTES = 4096;

/** A frame header in fields, for code off the hot path (tests, TCP). */
export interface FrameHeader {
  length: number;
  channel: number;
  source: number;
  target: number;
  seq: number;
  kind: Kind;
  codec: number;
  flags: number;
  count: number;
  total: number;
}

/** Bytes a frame takes in a ring: header plus payload, rounded up to 8. */
export function frameBytes(length: number): number {
  return (HEADER_BYTES + length + 7) & ~7;
}

export function writeHeader(view: DataView, at: number, h: FrameHeader): void {
  view.setUint32(at + F_LENGTH, h.length, true);
  view.setUint32(at + F_CHANNEL, h.channel, true);
  view.setUint32(at + F_SOURCE, h.source, true);
  view.setUint32(at + F_TARGET, h.target, true);
  view.setUint32(at + F_SEQ, h.seq, true);
  view.setUint8(at + F_KIND, h.kind);
  view.setUint8(at + F_CODEC, h.codec);
  view.setUint16(at + F_FLAGS, h.flags, true);
  view.setUint32(at + F_COUNT, h.count, true);
  view.setUint32(at + F_TOTAL, h.total, true);
}

export function readHeader(view: DataView, at: number): FrameHeader {
  return {
    length: view.getUint32(at + F_LENGTH, true),
    channel: view.getUint32(at + F_CHANNEL, true),
    source: view.getUint32(at + F_SOURCE, true),
    target: view.getUint32(at + F_TARGET, true),
    seq: view.getUint32(at + F_SEQ, true),
    kind: view.getUint8(at + F_KIND) as Kind,
    codec: view.getUint8(at + F_CODEC),
    flags: view.getUint16(at + F_FLAGS, true),
    count: view.getUint32(at + F_COUNT, true),
    total: view.getUint32(at + F_TOTAL, true),
  };
}

/**
 * Checks what a header claims against what the receiver knows. Everything a
 * hostile or corrupted peer controls is checked here, before any length is
 * used to slice or allocate.
 */
export function validateHeader(h: FrameHeader, limits: { peers: number; maxFrame: number; maxBatch: number; slab?: boolean }): void {
  if (h.kind < Kind.DATA || h.kind > MAX_KIND) throw new ProtocolError(`frame kind ${h.kind} is not a weft frame kind`);
  if (h.length > limits.maxFrame) throw new ProtocolError(`frame length ${h.length} exceeds the limit of ${limits.maxFrame} bytes`);
  if (h.source >= limits.peers) throw new ProtocolError(`frame source ${h.source} is not a worker (peers: ${limits.peers})`);
  if (h.target >= limits.peers) throw new ProtocolError(`frame target ${h.target} is not a worker (peers: ${limits.peers})`);
  switch (h.kind) {
    case Kind.DATA:
      if (h.flags & Flags.SLAB) {
        if (limits.slab !== true) throw new ProtocolError('a DATA frame refers to a slab where there is none (slab frames stay between threads of one process)');
        if (h.length !== SLAB_DESCRIPTOR_BYTES) throw new ProtocolError(`slab DATA frame carries ${h.length} bytes, a descriptor is ${SLAB_DESCRIPTOR_BYTES}`);
        if (h.total > limits.maxBatch) throw new ProtocolError(`batch of ${h.total} bytes exceeds maxMessageBytes (${limits.maxBatch}) here`);
        if (h.count === 0 || h.count > h.total + 1) throw new ProtocolError(`DATA frame count ${h.count} is impossible for ${h.total} batch bytes`);
        break;
      }
      if (h.total !== h.length) throw new ProtocolError(`DATA frame total ${h.total} differs from its length ${h.length}`);
      if (h.count === 0 || h.count > h.length + 1) {
        // A batch of `count` messages needs at least... nothing per message for
        // some codecs, so bound count by bytes + 1 to refuse absurd counts only.
        throw new ProtocolError(`DATA frame count ${h.count} is impossible for ${h.length} payload bytes`);
      }
      break;
    case Kind.PART:
      if (h.total > limits.maxBatch) throw new ProtocolError(`batch of ${h.total} bytes exceeds maxMessageBytes (${limits.maxBatch}) here`);
      if (h.length > h.total) throw new ProtocolError(`PART frame length ${h.length} exceeds its batch total ${h.total}`);
      break;
    case Kind.ABORT:
      if (h.length > MAX_REASON_BYTES) throw new ProtocolError(`ABORT reason of ${h.length} bytes exceeds ${MAX_REASON_BYTES}`);
      break;
    default:
      if (h.length !== 0) throw new ProtocolError(`control frame of kind ${h.kind} carries ${h.length} payload bytes`);
  }
  const known = h.kind === Kind.DATA ? Flags.SLAB : h.kind === Kind.PART ? Flags.LAST : 0;
  if (h.flags & ~known) throw new ProtocolError(`frame flags 0x${h.flags.toString(16)} are not valid on a frame of kind ${h.kind}`);
}

/**
 * Checks that PART frame `h` continues the run that began as `run`, with
 * `filled` of its bytes in: the same channel, codec, count and total, and
 * no byte past the total. A run's first frame fixes what its receiver
 * allocates, so a later frame may not change it.
 */
export function checkContinues(run: { channel: number; codec: number; count: number; total: number }, filled: number, h: FrameHeader): void {
  if (h.channel !== run.channel || h.codec !== run.codec || h.count !== run.count || h.total !== run.total) {
    throw new ProtocolError(`PART frame from worker ${h.source} does not continue its run on channel ${run.channel}`);
  }
  if (filled + h.length > run.total) throw new ProtocolError(`PART run from worker ${h.source} overruns its total of ${run.total} bytes`);
}
