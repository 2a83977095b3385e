// A cluster process's router, on its network thread (network.ts): it
// moves frames between the local workers' rings and one TCP socket per
// peer process.
//
// Why one router, not sockets in every worker: a worker blocked in
// awaitEvents cannot run socket callbacks, and P x T sockets per process
// would multiply handshakes and heartbeats. Why not on the main thread:
// the program's own code runs there and would hold frames and heartbeats
// back. Workers write a remote frame into their one ring to the router,
// exactly as to a local peer; the frame header already names its target,
// so the router forwards bytes without decoding payloads.
//
// Backpressure: when a socket's write buffer passes HIGH_WATER the router
// stops reading the rings whose next frame goes there; those rings fill and
// the workers' sends wait in their own overflow (their memory, visible in
// stats). Inbound, when a worker's ring is full, frames wait in a per-worker
// queue; past HIGH_WATER queued bytes the router pauses the sockets, and TCP
// pushes back on the senders. Memory in the router stays bounded either way.
//
// This file holds the peers (connections, heartbeats, loss, goodbye) and the
// loop; router-outbound.ts and router-inbound.ts move the frames.

import { Doorbell } from './doorbell.ts';
import { FrameDecoder, type DecoderLimits } from './decoder.ts';
import { Kind, type FrameHeader } from './frame.ts';
import type { RingReader, RingWriter } from './ring.ts';
import type { SlabReader, SlabWriter } from './slab.ts';
import { Inbound } from './router-inbound.ts';
import { Outbound } from './router-outbound.ts';
import { sendControl, type Peer } from './router-peer.ts';
import { PeerError, ProtocolError } from '../errors.ts';
import type { LinkCounters } from './link-counters.ts';
import type { Link } from './mesh.ts';
import { READ_BYTES } from './reads.ts';

export interface RouterOptions {
  process: number;
  processes: number;
  threads: number;
  addresses: string[];
  links: (Link | undefined)[];
  bell: Doorbell;
  /** Per local worker: the ring it writes remote frames into. */
  fromWorkers: RingReader[];
  /** Per local worker: the ring the router writes its remote frames into. */
  toWorkers: RingWriter[];
  /** The router's slab: large PART runs from peers are read into its chunks (router-inbound.ts). */
  slab?: SlabWriter;
  /** Per local worker: its slab, where its large batches for peers are (router-outbound.ts). */
  workerSlabs?: (SlabReader | undefined)[];
  limits: DecoderLimits;
  heartbeatTimeoutMs: number;
  onFailure: (error: PeerError) => void;
  /**
   * Given (onPeerLoss 'continue'), a lost peer is reported here instead of
   * failing the run: its connection is dropped, with whatever of its
   * frames is still partial or queued, and frames for it are dropped.
   */
  onLoss?: (error: PeerError) => void;
  /** Processes that may join later (spares); until one does, frames for it are dropped. */
  spares?: readonly number[];
  /** A spare joined, or a lost process came back: called before the first of its frames is read. */
  onJoin?: (process: number) => void;
  /** Whether local worker `local` has applied every loss recorded (a lost process comes back only then). */
  lossesApplied?: (local: number) => boolean;
  /** Per link: bytes, heartbeat round trip, reconnects (link-counters.ts). */
  counters: LinkCounters;
}

/** How often a lost process that reconnected checks whether the local workers have applied its loss. */
const REJOIN_POLL_MS = 10;

export class Router {
  private readonly peers: (Peer | undefined)[];
  private readonly inbound: Inbound;
  private readonly outbound: Outbound;
  private failure: PeerError | undefined;
  private stopped = false;
  private finishing: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private readonly timer: NodeJS.Timeout;
  /** The heartbeat timer's period, when it last ran, and whether that tick put off its verdict. */
  private readonly beat: number;
  private lastTick = Date.now();
  private deferred = false;
  /** Reading from the sockets is paused: the inbound queue is over its high-water mark. */
  private readPaused = false;
  /** Lost processes that reconnected, waiting for the local workers to apply their loss. */
  private readonly rejoining = new Map<number, Link>();
  private rejoinTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: RouterOptions) {
    this.inbound = new Inbound(o.toWorkers, o.processes * o.threads, (paused) => {
      this.readPaused = paused;
      for (const p of this.peers) {
        // A peer half way through a frame read into a ring reads on to its
        // end (then the 'data' handler pauses it): the ring holds back every
        // frame behind that one, so pausing it could wait forever.
        if (paused) {
          if (p !== undefined && this.mayPause(p)) p.socket.pause();
        } else p?.socket.resume();
      }
    }, o.slab);
    this.peers = o.links.map((link, index) => (link === undefined ? undefined : this.attach(index, link)));
    const spares = o.spares ?? [];
    this.outbound = new Outbound(o.fromWorkers, this.peers, o.threads, (target) => {
      const process = Math.floor(target / o.threads);
      // A spare not joined yet reads nothing (its workers' pushers refuse sends; this is a FIN).
      if (spares.includes(process) && this.peers[process] === undefined) return true;
      this.fail(new PeerError(-1, `a local worker wrote a frame for worker ${target}, which no connected process hosts`));
      return false;
    }, o.limits.maxFrame, o.workerSlabs);
    this.beat = Math.max(50, Math.floor(o.heartbeatTimeoutMs / 3));
    this.timer = setInterval(() => this.heartbeat(), this.beat);
    this.timer.unref();
    // A throw in the loop (a frame it cannot forward) fails the run rather than stopping the router unseen.
    this.loop().catch((e: unknown) => this.fail(new PeerError(-1, `the router failed: ${(e as Error).message}`, { cause: e })));
  }

  private attach(index: number, { socket, rest, error: early, reads }: Link): Peer {
    const peer: Peer = {
      index, socket, lastHeard: Date.now(), lastSent: Date.now(), goodbye: false, gone: false, blocked: false,
      counters: this.o.counters, probeSeq: 0, probeAt: -1,
      decoder: new FrameDecoder(this.o.limits, (h, p, placed) => this.received(peer, h, p, placed), (h) => this.place(peer, h)),
    };
    const where = `process ${index} (${this.o.addresses[index]})`;
    const decoder = peer.decoder;
    // Each read is a sign of life, then its frames are decoded; then the
    // socket pauses if the router asked for it, and what reached the rings
    // is published.
    const heard = (n: number): void => {
      peer.lastHeard = Date.now();
      this.o.counters.received(index, n);
    };
    const broke = (e: unknown): void => this.peerFailed(peer, new PeerError(index, `${where} broke the protocol: ${(e as Error).message}`, { cause: e }));
    const read = (): void => {
      if (this.readPaused && this.mayPause(peer)) socket.pause();
      this.inbound.publish();
    };
    const bytes = (chunk: Uint8Array): void => {
      heard(chunk.length);
      try {
        decoder.push(chunk);
      } catch (e) {
        return broke(e);
      }
      read();
    };
    // What the handshake read past its end comes first, then the rest.
    if (rest.length > 0) queueMicrotask(() => bytes(rest));
    if (reads === undefined) socket.on('data', bytes);
    else {
      reads.attach({
        bytes,
        into: () => decoder.into(READ_BYTES),
        filled: (n) => {
          heard(n);
          try {
            decoder.filled(n);
          } catch (e) {
            return broke(e);
          }
          read();
        },
      });
    }
    socket.on('drain', () => {
      peer.blocked = false;
      this.o.bell.force();
    });
    socket.on('error', (e) => this.lost(peer, `connection to ${where} failed: ${e.message}: the process died or the network failed`));
    socket.on('close', () => this.lost(peer, `connection to ${where} closed without a goodbye: the process died or was killed`));
    if (early !== undefined || socket.destroyed) {
      // Lost between the handshake and now: its 'close' has already fired.
      const why = early ? `failed: ${early.message}` : 'closed';
      queueMicrotask(() => this.lost(peer, `connection to ${where} ${why} before the cluster started: the process died or was killed`));
    }
    socket.resume();
    return peer;
  }

  /**
   * A peer half way through a frame read in place reads on to its end. One
   * part way through a run read into a chunk is paused like any other: the
   * run holds nothing back but its own worker's batch, and its peer's other
   * workers could otherwise stream frames into a full ring without limit.
   */
  private mayPause(peer: Peer): boolean {
    return !peer.decoder.placing;
  }

  /**
   * Spare `index` connected, or lost process `index` reconnected: it is
   * recorded as joined (onJoin) before its first frame is read, then served
   * like every peer. Once this process is finishing it is turned away (its
   * workers would find ours gone).
   *
   * A lost process's workers come back under their old indices, so its
   * join waits until every local worker has applied its loss: before that,
   * a worker could take the new process's frames for the old one's. Then
   * the frames the workers wrote for the old process leave the rings (they
   * are dropped), and the sequences are rebased (router-inbound.ts,
   * router-outbound.ts).
   */
  join(index: number, link: Link): void {
    const old = this.peers[index];
    if (this.stopped || this.finishing !== undefined || (old !== undefined && !old.gone) || this.rejoining.has(index)) {
      link.socket.destroy();
      return;
    }
    if (old !== undefined) {
      this.rejoining.set(index, link);
      this.rejoinTimer ??= setInterval(() => this.rejoin(), REJOIN_POLL_MS);
      this.rejoin();
      return;
    }
    this.admit(index, link);
  }

  private rejoin(): void {
    const { threads } = this.o;
    const applied = this.o.toWorkers.every((_, local) => this.inbound.hasExited(local) || (this.o.lossesApplied?.(local) ?? true));
    if (!applied) return;
    while (this.outbound.pump() > 0);
    for (const [index, link] of this.rejoining) {
      const workers = Array.from({ length: threads }, (_, k) => index * threads + k);
      this.outbound.rebase(workers);
      this.inbound.rebase(workers);
      this.admit(index, link);
    }
    this.rejoining.clear();
    clearInterval(this.rejoinTimer);
    this.rejoinTimer = undefined;
  }

  private admit(index: number, link: Link): void {
    if (this.peers[index] !== undefined) this.o.counters.reconnected(index);
    this.o.onJoin?.(index);
    const peer = this.attach(index, link);
    this.peers[index] = peer;
    if (this.readPaused) peer.socket.pause();
    this.o.bell.force();
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
    this.inbound.drop((source) => Math.floor(source / threads) === peer.index);
    this.inbound.publish();
    this.o.onLoss(error);
    this.checkFinished();
  }

  /**
   * Where a peer's batch frame that spans socket chunks is read to: the
   * ring of the worker it names, when it can go there at once, so it is
   * not put together first and copied after.
   */
  private place(peer: Peer, h: FrameHeader): Uint8Array | undefined {
    if (h.kind !== Kind.DATA && h.kind !== Kind.PART) return undefined;
    return this.inbound.open(this.localTarget(peer, h), h);
  }

  /** The local index of the worker a peer's frame names, after checking it may name it. */
  private localTarget(peer: Peer, h: FrameHeader): number {
    const { threads, process } = this.o;
    if (Math.floor(h.source / threads) !== peer.index) {
      throw new ProtocolError(`frame from worker ${h.source} arrived on the connection of process ${peer.index}`);
    }
    if (Math.floor(h.target / threads) !== process) {
      throw new ProtocolError(`frame for worker ${h.target} arrived at process ${process}`);
    }
    return h.target - process * threads;
  }

  /** A frame from a peer: forward it to the worker it names (`placed`: it is in that worker's ring already). */
  private received(peer: Peer, h: FrameHeader, payload: Uint8Array, placed: boolean): void {
    switch (h.kind) {
      case Kind.HEARTBEAT:
        if (h.seq === 0) return;
        if (h.count === 0) sendControl(peer, Kind.HEARTBEAT, undefined, h.seq, 1);
        else if (h.seq === peer.probeSeq && peer.probeAt >= 0) {
          this.o.counters.roundTrip(peer.index, performance.now() - peer.probeAt);
          peer.probeAt = -1;
        }
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
    if (placed) this.inbound.complete(h.target - this.o.process * this.o.threads, h);
    else this.inbound.deliver(this.localTarget(peer, h), h, payload);
  }

  private async loop(): Promise<void> {
    const bell = this.o.bell;
    while (!this.stopped) {
      const epoch = bell.epoch();
      const moved = this.outbound.pump() + this.inbound.drain();
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
      if (this.outbound.movable()) {
        bell.settle();
        continue;
      }
      await bell.waitAsync(epoch, 1000);
      bell.settle();
    }
  }

  private heartbeat(): void {
    const now = Date.now();
    // A tick this late means this process was not running (the machine or
    // the process was paused, or its main thread blocked). Timers run before
    // sockets are read, so what peers sent meanwhile is not counted yet: a
    // verdict now would find every peer silent. Judge at the next tick, once
    // the sockets have been read (a poll phase always runs between two
    // ticks); a peer that is really gone is still silent then. Never two
    // ticks in a row, so a main thread always late cannot put it off for good.
    const woke = now - this.lastTick > 2 * this.beat && !this.deferred;
    this.deferred = woke;
    this.lastTick = now;
    for (const peer of this.peers) {
      if (peer === undefined || peer.gone) continue;
      // While this router does not read the sockets (a local worker holds
      // what it has not read), a peer's silence is ours: its heartbeats wait
      // unread behind its frames. It is judged from when reading resumes.
      // Judged meanwhile, a worker busy past the timeout while a peer
      // streamed to it had that live peer presumed dead, and the run failed.
      if (this.readPaused) peer.lastHeard = now;
      if (!peer.goodbye && !woke && now - peer.lastHeard > this.o.heartbeatTimeoutMs) {
        this.peerFailed(peer, new PeerError(peer.index, `process ${peer.index} (${this.o.addresses[peer.index]}) sent nothing for ${now - peer.lastHeard} ms: it is presumed dead`));
        if (this.stopped) return;
        continue;
      }
      // A peer that said goodbye still judges us until we say ours (our
      // workers may outlive its own by far): it hears from us until then.
      // A round-trip probe per tick while none is out (one unanswered, from a
      // peer that ignores probes, leaves the plain heartbeats to go on).
      if (peer.probeAt < 0) {
        peer.probeSeq = (peer.probeSeq + 1) >>> 0 || 1;
        peer.probeAt = performance.now();
        sendControl(peer, Kind.HEARTBEAT, undefined, peer.probeSeq);
      } else if (now - peer.lastSent >= this.o.heartbeatTimeoutMs / 3) sendControl(peer, Kind.HEARTBEAT);
    }
  }

  /** A local worker has ended: frames for it are dropped from now on. */
  workerExited(local: number): void {
    this.inbound.workerExited(local);
  }

  /**
   * Every local worker returned: forward what they left in the rings, say
   * goodbye, and resolve once every peer has said goodbye too.
   */
  finish(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    while (this.outbound.pump() > 0);
    for (const p of this.peers) if (p) sendControl(p, Kind.GOODBYE);
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
      sendControl(p, Kind.ABORT, payload);
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
    clearInterval(this.rejoinTimer);
    for (const link of this.rejoining.values()) link.socket.destroy();
    this.rejoining.clear();
    this.o.bell.force();
  }
}
