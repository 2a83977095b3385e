// Turns a TCP byte stream into frames: a state machine over chunks, in the
// manner of nats.js's parser. Bytes from the network are hostile: the header
// is validated as soon as its 32 bytes are in, before its length is used to
// allocate anything, so a peer can make us hold at most one frame of
// `maxFrame` bytes. Any violation is a ProtocolError and the decoder stops.

import { HEADER_BYTES, readHeader, validateHeader, type FrameHeader } from './frame.ts';
import { ProtocolError } from '../errors.ts';

export interface DecoderLimits {
  /** Workers in the cluster: sources and targets must be below. */
  peers: number;
  /** Largest payload of one frame. */
  maxFrame: number;
  /** Largest batch a PART run may announce. */
  maxBatch: number;
}

/**
 * Called with each frame: `placed` when its payload was read straight into
 * the buffer a FramePlacer gave for it (then `payload` is that buffer).
 */
export type FrameHandler = (header: FrameHeader, payload: Uint8Array, placed: boolean) => void;

/**
 * Where a frame whose payload spans socket chunks should be read to: its
 * final buffer (a ring slot), or undefined to have the decoder put it
 * together in its own buffer. Called once the header is validated.
 */
export type FramePlacer = (header: FrameHeader) => Uint8Array | undefined;

export class FrameDecoder {
  private readonly head = Buffer.alloc(HEADER_BYTES);
  private headFill = 0;
  private header: FrameHeader | undefined;
  private body: Uint8Array | undefined;
  private bodyFill = 0;
  /** The body is being read into the placer's buffer, not the assembly buffer. */
  private placed = false;
  /**
   * Where frames that span chunks are put together, reused frame after
   * frame: memory touched before costs a fraction of fresh memory, whose
   * page faults cost more than the copy itself for a 1 MiB frame.
   */
  private assembly: ArrayBuffer | undefined;
  private failed: ProtocolError | undefined;

  constructor(
    private readonly limits: DecoderLimits,
    private readonly onFrame: FrameHandler,
    private readonly place?: FramePlacer,
  ) {}

  /**
   * Feeds bytes; calls the handler for each complete frame, in order. The
   * payload is valid only during the call: a view of `chunk` when it lies
   * whole in it, the placer's buffer when it gave one, otherwise the
   * decoder's assembly buffer, which the next frame reuses. A handler that
   * keeps a payload copies it.
   */
  push(chunk: Uint8Array): void {
    this.guarded(() => this.consume(chunk));
  }

  /**
   * Where the stream's next bytes may be read straight to, by a socket that
   * reads into buffers it is given (reads.ts): the rest of the frame body
   * in progress (its final buffer, or the assembly buffer) when at least
   * `min` bytes of it are still to come. Undefined otherwise: those bytes
   * go through push().
   */
  into(min: number): Uint8Array | undefined {
    const body = this.body;
    if (body === undefined || this.failed || body.length - this.bodyFill < min) return undefined;
    return body.subarray(this.bodyFill);
  }

  /** `n` bytes were read into the buffer into() gave last (and nothing was pushed since). */
  filled(n: number): void {
    this.guarded(() => {
      const body = this.body!;
      this.bodyFill += n;
      if (this.bodyFill === body.length) this.completeBody();
    });
  }

  private guarded(run: () => void): void {
    if (this.failed) throw this.failed;
    try {
      run();
    } catch (error) {
      this.failed = error instanceof ProtocolError ? error : new ProtocolError(`frame handler failed: ${(error as Error).message}`, { cause: error });
      throw this.failed;
    }
  }

  private consume(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.header === undefined) {
        if (this.headFill === 0 && chunk.length - at >= HEADER_BYTES) {
          // Fast path: the header is whole in this chunk.
          const view = new DataView(chunk.buffer, chunk.byteOffset + at, HEADER_BYTES);
          this.header = this.accept(readHeader(view, 0));
          at += HEADER_BYTES;
        } else {
          const n = Math.min(HEADER_BYTES - this.headFill, chunk.length - at);
          this.head.set(chunk.subarray(at, at + n), this.headFill);
          this.headFill += n;
          at += n;
          if (this.headFill < HEADER_BYTES) return;
          this.headFill = 0;
          this.header = this.accept(readHeader(new DataView(this.head.buffer, this.head.byteOffset, HEADER_BYTES), 0));
        }
        if (this.header.length === 0) {
          this.emit(new Uint8Array(0));
          continue;
        }
      }
      const h = this.header;
      if (this.body === undefined && chunk.length - at >= h.length) {
        const payload = chunk.subarray(at, at + h.length);
        at += h.length;
        this.emit(payload);
        continue;
      }
      // Not zero-filled: every byte is written before the frame is emitted,
      // and a memset of a 1 MiB frame costs a third of its copy. The length
      // was validated against maxFrame when the header came in, so the
      // assembly buffer never grows past it.
      if (this.body === undefined) {
        // Its final buffer, when the placer has one: no copy from here to there later.
        const into = this.place?.(h);
        this.placed = into !== undefined;
        if (into !== undefined) this.body = into;
        else {
          if (this.assembly === undefined || this.assembly.byteLength < h.length) this.assembly = Buffer.allocUnsafeSlow(h.length).buffer as ArrayBuffer;
          this.body = new Uint8Array(this.assembly, 0, h.length);
        }
      }
      const n = Math.min(h.length - this.bodyFill, chunk.length - at);
      this.body.set(chunk.subarray(at, at + n), this.bodyFill);
      this.bodyFill += n;
      at += n;
      if (this.bodyFill === h.length) this.completeBody();
    }
  }

  private completeBody(): void {
    const body = this.body!;
    this.body = undefined;
    this.bodyFill = 0;
    this.emit(body, this.placed);
  }

  private accept(h: FrameHeader): FrameHeader {
    validateHeader(h, this.limits);
    return h;
  }

  private emit(payload: Uint8Array, placed = false): void {
    const h = this.header!;
    this.header = undefined;
    this.onFrame(h, payload, placed);
  }

  /** A frame is half read into the placer's buffer. */
  get placing(): boolean {
    return this.placed && this.body !== undefined;
  }

  /** Bytes of a frame still being assembled in the decoder's own memory (for tests of the memory bound). */
  get buffered(): number {
    return this.headFill + (this.placed ? 0 : (this.body?.length ?? 0));
  }
}
