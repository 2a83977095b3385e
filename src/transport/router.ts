// The main thread of a cluster process is its router: it moves frames
// between the local workers' rings and one TCP socket per peer process.
//
// Why a router on the main thread, not sockets in every worker: a worker
// blocked in awaitEvents cannot run socket callbacks, and P x T sockets per
// process would multiply handshakes and heartbeats. The main thread is idle
// in a weft program (it waits on join()), so it forwards. Workers write a
// remote frame into their one ring to the router, exactly as to a local
// peer; the frame header already names its target, so the router forwards
// bytes without decoding payloads.
//
// Backpressure: when a socket's write buffer passes HIGH_WATER the router
// stops reading the rings whose next frame goes there; those rings fill and
// the workers' sends wait in their own overflow (their memory, visible in
// stats). Inbound, when a worker's ring is full, frames wait in a per-worker
// queue; past HIGH_WATER queued bytes the router pauses the sockets, and TCP
// pushes back on the senders. Memory in the router stays bounded either way.

import type { Socket } from 'node:net';
import { Doorbell } from './doorbell.ts';
import { FrameDecoder, type DecoderLimits } from './decoder.ts';
import { HEADER_BYTES, Kind, F_LENGTH, F_TARGET, writeHeader, type FrameHeader } from './frame.ts';
import type { RingReader, RingWriter } from './ring.ts';
import { ProtocolError, WeftError } from '../errors.ts';

const HIGH_WATER = 8 << 20;

/** A peer process failed or broke the protocol. */
export class PeerError extends WeftError {
  override name = 'PeerError';
  constructor(readonly process: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface RouterOptions {
  process: number;
  processes: number;
  threads: number;
  addresses: string[];
  links: ({ socket: Socket; rest: Buffer; error?: Error } | undefined)[];
  bell: Doorbell;
  /** Per local worker: the ring it writes remote frames into. */
  fromWorkers: RingReader[];
  /** Per local worker: the ring the router writes its remote frames into. */
  toWorkers: RingWriter[];
  limits: DecoderLimits;
  heartbeatTimeoutMs: number;
  onFailure: (error: PeerError) => void;
  /**
   * Given (onPeerLoss 'continue'), a lost peer is reported here instead of
   * failing the run: its connection is dropped, with whatever of its
   * frames is still partial or queued, and frames for it are dropped.
   */
  onLoss?: (error: PeerError) => void;
}

interface Peer {
  index: number;
  socket: Socket;
  decoder: FrameDecoder;
  lastHeard: number;
  lastSent: number;
  goodbye: boolean;
  /** Lost, and dropped (onLoss): nothing more is read from or written to it. */
  gone: boolean;
  blocked: boolean;
}

interface Waiting {
  header: FrameHeader;
  payload: Uint8Array;
}

/** A frame handed to a socket straight from a ring: its space returns once written. */
interface InFlight {
  /** The ring's read position just past the frame. */
  end: number;
  written: boolean;
}

export class Router {
  private readonly peers: (Peer | undefined)[];
  private readonly waiting: Waiting[][];
  private waitingBytes = 0;
  private readonly exited: boolean[];
  private failure: PeerError | undefined;
  private stopped = false;
  private finishing: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private readonly timer: NodeJS.Timeout;
  private paused = false;
  /** Per worker ring: frames given to sockets as views of the ring, oldest first. */
  private readonly inFlight: InFlight[][];
  readonly stats = { framesOut: 0, bytesOut: 0, framesIn: 0, bytesIn: 0, dropped: 0 };

  constructor(private readonly o: RouterOptions) {
    this.exited = o.toWorkers.map(() => false);
    this.waiting = o.toWorkers.map(() => []);
    this.inFlight = o.fromWorkers.map(() => []);
    this.peers = o.links.map((link, index) => (link === undefined ? undefined : this.attach(index, link.socket, link.rest, link.error)));
    const beat = Math.max(50, Math.floor(o.heartbeatTimeoutMs / 3));
    this.timer = setInterval(() => this.heartbeat(), beat);
    this.timer.unref();
    void this.loop();
  }

  private attach(index: number, socket: Socket, rest: Buffer, early: Error | undefined): Peer {
    const peer: Peer = {
      index, socket, lastHeard: Date.now(), lastSent: Date.now(), goodbye: false, gone: false, blocked: false,
      decoder: new FrameDecoder(this.o.limits, (h, p) => this.inbound(peer, h, p)),
    };
    const where = `process ${index} (${this.o.addresses[index]})`;
    socket.on('data', (chunk: Buffer) => {
      peer.lastHeard = Date.now();
      try {
        peer.decoder.push(chunk);
      } catch (e) {
        this.peerFailed(peer, new PeerError(index, `${where} broke the protocol: ${(e as Error).message}`, { cause: e }));
        return;
      }
      this.publishInbound();
    });
    socket.on('drain', () => {
      peer.blocked = false;
      this.o.bell.force();
    });
    socket.on('error', (e) => this.lost(peer, `connection to ${where} failed: ${e.message}: the process died or the network failed`));
    socket.on('close', () => this.lost(peer, `connection to ${where} closed without a goodbye: the process died or was killed`));
    if (rest.length > 0) queueMicrotask(() => socket.emit('data', rest));
    if (early !== undefined || socket.destroyed) {
      // Lost between the handshake and now: its 'close' has already fired.
      const why = early ? `failed: ${early.message}` : 'closed';
      queueMicrotask(() => this.lost(peer, `connection to ${where} ${why} before the cluster started: the process died or was killed`));
    }
    socket.resume();
    return peer;
  }

  private lost(peer: Peer, why: string): void {
    if (peer.goodbye || this.stopped) return;
    this.peerFailed(peer, new PeerError(peer.index, why));
  }

  private peerFailed(peer: Peer, error: PeerError): void {
    if (this.o.onLoss === undefined) return this.fail(error);
    if (peer.gone || this.stopped) return;
    peer.gone = true;
    peer.goodbye = true;
    peer.blocked = false;
    peer.socket.destroy();
    // Its whole frames already in the rings are published before the loss
    // is recorded (workers read them first); those still queued are dropped.
    const { threads } = this.o;
    this.waiting.forEach((queue, local) => {
      const kept = queue.filter((w) => Math.floor(w.header.source / threads) !== peer.index);
      for (const w of queue) if (!kept.includes(w)) this.waitingBytes -= w.payload.length;
      this.stats.dropped += queue.length - kept.length;
      this.waiting[local] = kept;
    });
    this.publishInbound();
    this.o.onLoss(error);
    this.checkFinished();
  }

  /** A frame from a peer: forward it to the worker it names. */
  private inbound(peer: Peer, h: FrameHeader, payload: Uint8Array): void {
    const { threads, process } = this.o;
    switch (h.kind) {
      case Kind.HEARTBEAT:
        return;
      case Kind.GOODBYE:
        peer.goodbye = true;
        this.checkFinished();
        return;
      case Kind.ABORT:
        if (this.o.onLoss === undefined) peer.goodbye = true;
        this.peerFailed(peer, new PeerError(peer.index, `process ${peer.index} (${this.o.addresses[peer.index]}) failed: ${Buffer.from(payload).toString('utf8')}`));
        return;
    }
    if (Math.floor(h.source / threads) !== peer.index) {
      throw new ProtocolError(`frame from worker ${h.source} arrived on the connection of process ${peer.index}`);
    }
    if (Math.floor(h.target / threads) !== process) {
      throw new ProtocolError(`frame for worker ${h.target} arrived at process ${process}`);
    }
    this.stats.framesIn++;
    this.stats.bytesIn += h.length;
    const local = h.target - process * threads;
    // A worker that has returned reads nothing more; its frames are dropped
    // here rather than left to fill its ring and stall the socket.
    if (this.exited[local]) {
      this.stats.dropped++;
      return;
    }
    const queue = this.waiting[local]!;
    if (queue.length === 0 && this.place(local, h, payload)) return;
    queue.push({ header: h, payload: payload.slice() });
    this.waitingBytes += payload.length;
    if (this.waitingBytes > HIGH_WATER && !this.paused) {
      this.paused = true;
      for (const p of this.peers) p?.socket.pause();
    }
  }

  private place(local: number, h: FrameHeader, payload: Uint8Array): boolean {
    const ring = this.o.toWorkers[local]!;
    const at = ring.reserve(h.length);
    if (at < 0) {
      ring.wantSpace(h.length);
      return false;
    }
    writeHeader(ring.view, at, h);
    if (h.length > 0) ring.bytes.set(payload, at + HEADER_BYTES);
    return true;
  }

  private publishInbound(): void {
    for (const ring of this.o.toWorkers) ring.publish();
  }

  /** Moves queued inbound frames into rings that have room again. */
  private drainWaiting(): number {
    let moved = 0;
    this.waiting.forEach((queue, local) => {
      let i = 0;
      while (i < queue.length && (this.exited[local] || this.place(local, queue[i]!.header, queue[i]!.payload))) {
        this.waitingBytes -= queue[i]!.payload.length;
        i++;
      }
      if (i > 0) {
        queue.splice(0, i);
        moved += i;
      }
    });
    if (moved > 0) this.publishInbound();
    if (this.paused && this.waitingBytes < HIGH_WATER / 2) {
      this.paused = false;
      for (const p of this.peers) p?.socket.resume();
    }
    return moved;
  }

  /** Moves frames the workers wrote into the sockets of their target processes. */
  private pumpOut(): number {
    // Corked, the frames of one pass leave as one writev per socket rather
    // than one write(2) each.
    for (const p of this.peers) p?.socket.cork();
    try {
      return this.forward();
    } finally {
      for (const p of this.peers) p?.socket.uncork();
    }
  }

  // Frames leave as views of the worker's ring, not copies: the socket
  // writes straight from shared memory, and the ring space is given back to
  // the worker only once the socket has written the frame (in ring order,
  // though frames to different peers may finish out of order).
  private forward(): number {
    const { threads } = this.o;
    let moved = 0;
    this.o.fromWorkers.forEach((reader, k) => {
      const flight = this.inFlight[k]!;
      let at: number;
      while ((at = reader.next()) >= 0) {
        const length = reader.view.getUint32(at + F_LENGTH, true);
        const target = reader.view.getUint32(at + F_TARGET, true);
        const peer = this.peers[Math.floor(target / threads)];
        if (peer === undefined) {
          this.fail(new PeerError(-1, `a local worker wrote a frame for worker ${target}, which no connected process hosts`));
          return;
        }
        if (peer.gone) {
          // Lost: nobody reads it. The space goes back to the worker at once.
          reader.advance(length);
          flight.push({ end: reader.position, written: true });
          this.giveBack(k);
          this.stats.dropped++;
          continue;
        }
        if (peer.blocked) break;
        const frame = Buffer.from(reader.bytes.buffer, reader.bytes.byteOffset + at, HEADER_BYTES + length);
        reader.advance(length);
        const entry: InFlight = { end: reader.position, written: false };
        flight.push(entry);
        this.send(peer, frame, () => {
          entry.written = true;
          this.giveBack(k);
        });
        this.stats.framesOut++;
        this.stats.bytesOut += length;
        moved++;
      }
    });
    return moved;
  }

  private giveBack(k: number): void {
    const flight = this.inFlight[k]!;
    let n = 0;
    while (n < flight.length && flight[n]!.written) n++;
    if (n === 0) return;
    const end = flight[n - 1]!.end;
    flight.splice(0, n);
    this.o.fromWorkers[k]!.release(end);
  }

  /** Whether `reader` holds a frame whose socket can take it now. */
  private movable(reader: RingReader): boolean {
    const at = reader.next();
    if (at < 0) return false;
    const peer = this.peers[Math.floor(reader.view.getUint32(at + F_TARGET, true) / this.o.threads)];
    return peer === undefined || !peer.blocked;
  }

  private send(peer: Peer, bytes: Uint8Array, written?: () => void): void {
    if (peer.gone) return;
    peer.lastSent = Date.now();
    if (!peer.socket.write(bytes, written) && peer.socket.writableLength > HIGH_WATER) peer.blocked = true;
  }

  private control(peer: Peer, kind: Kind, payload: Uint8Array = new Uint8Array(0)): void {
    const b = Buffer.alloc(HEADER_BYTES + payload.length);
    writeHeader(new DataView(b.buffer, b.byteOffset, b.length), 0, {
      length: payload.length, channel: 0, source: 0, target: 0, seq: 0, kind, codec: 0, flags: 0, count: 0, total: 0,
    });
    b.set(payload, HEADER_BYTES);
    this.send(peer, b);
  }

  private async loop(): Promise<void> {
    const bell = this.o.bell;
    while (!this.stopped) {
      const epoch = bell.epoch();
      const moved = this.pumpOut() + this.drainWaiting();
      if (moved > 0) {
        // Let socket callbacks and timers run between bursts.
        await new Promise((r) => setImmediate(r));
        continue;
      }
      bell.announce();
      // Only frames the router can move now count as work: a frame for a
      // peer whose socket is over its high-water mark waits for 'drain',
      // which rings the bell. Counting it would spin this loop without ever
      // yielding, so 'drain', heartbeats and reads would never run.
      if (this.o.fromWorkers.some((r) => this.movable(r))) {
        bell.settle();
        continue;
      }
      await bell.waitAsync(epoch, 1000);
      bell.settle();
    }
  }

  private heartbeat(): void {
    const now = Date.now();
    for (const peer of this.peers) {
      if (peer === undefined || peer.goodbye) continue;
      if (now - peer.lastHeard > this.o.heartbeatTimeoutMs) {
        this.peerFailed(peer, new PeerError(peer.index, `process ${peer.index} (${this.o.addresses[peer.index]}) sent nothing for ${now - peer.lastHeard} ms: it is presumed dead`));
        if (this.stopped) return;
        continue;
      }
      if (now - peer.lastSent >= this.o.heartbeatTimeoutMs / 3) this.control(peer, Kind.HEARTBEAT);
    }
  }

  /** A local worker has ended: frames for it are dropped from now on. */
  workerExited(local: number): void {
    this.exited[local] = true;
    this.waitingBytes -= this.waiting[local]!.reduce((n, w) => n + w.payload.length, 0);
    this.waiting[local] = [];
  }

  /**
   * Every local worker returned: forward what they left in the rings, say
   * goodbye, and resolve once every peer has said goodbye too.
   */
  finish(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    while (this.pumpOut() > 0);
    for (const p of this.peers) if (p) this.control(p, Kind.GOODBYE);
    return new Promise<void>((resolve, reject) => {
      this.finishing = { resolve, reject };
      this.checkFinished();
    });
  }

  private checkFinished(): void {
    if (this.finishing === undefined || !this.peers.every((p) => p === undefined || p.goodbye)) return;
    this.stop();
    for (const p of this.peers) p?.socket.end();
    this.finishing.resolve();
  }

  /** A local failure: tell every peer why, then drop the connections. */
  abort(reason: string): void {
    if (this.stopped) return;
    const payload = Buffer.from(reason.slice(0, 2000), 'utf8');
    for (const p of this.peers) {
      if (p === undefined || p.goodbye) continue;
      this.control(p, Kind.ABORT, payload);
      p.socket.end();
    }
    this.stop();
  }

  private fail(error: PeerError): void {
    if (this.failure || this.stopped) return;
    this.failure = error;
    this.abort(error.message);
    // Give the ABORT frames a moment to leave, then make sure nothing lingers.
    setTimeout(() => this.peers.forEach((p) => p?.socket.destroy()), 500).unref();
    this.o.onFailure(error);
    this.finishing?.reject(error);
  }

  private stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.o.bell.force();
  }
}
