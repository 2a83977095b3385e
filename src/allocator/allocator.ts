// One worker's view of the communication fabric: the rings it reads, the
// rings (or router ring) it writes, its doorbell, and the channels it has
// allocated. Layer-wise this is where typed channels meet byte frames.

import { codecs, type Codec } from './codec.ts';
import { ChannelPull, type Pull } from './pull.ts';
import { LocalPush, RemotePush, UnroutablePush, type Emitter, type Push, type Sending } from './push.ts';
import type { Limits } from './wiring.ts';
import { Control } from '../transport/control.ts';
import { Doorbell } from '../transport/doorbell.ts';
import { Inbox, type FrameSink } from '../transport/inbox.ts';
import { Outbox, type Backlog } from '../transport/outbox.ts';
import { Kind } from '../transport/frame.ts';
import { RingReader, RingWriter } from '../transport/ring.ts';
import { AbortedError, AllocatorClosedError, ChannelError, OverflowError } from '../errors.ts';

/** Shared memory a worker is built from; travels in workerData. */
export interface Wiring {
  index: number;
  peers: number;
  control: SharedArrayBuffer;
  /** This worker's doorbell. */
  bell: SharedArrayBuffer;
  /** Every doorbell in this process, rung on abort. */
  bells: SharedArrayBuffer[];
  /** Per target: index into `out`, or -1 for itself or a worker it has no route to. */
  routes: number[];
  out: RingEnd[];
  in: RingEnd[];
  /** Bytes of each ring; also how far ahead of recv() a channel is decoded. */
  ringBytes: number;
  limits: Limits;
  /** In a cluster, threads per process: worker w runs in process floor(w / threads). */
  threads?: number;
}

/** A peer process lost (Config.cluster with onPeerLoss 'continue'), and its workers. */
export interface PeerLoss {
  process: number;
  workers: number[];
}

/** A ring and the doorbell of the thread at its other end. */
export interface RingEnd {
  ring: SharedArrayBuffer;
  bell: SharedArrayBuffer;
  /** For an incoming ring with a single writer: that worker. */
  peer?: number;
}

export interface AllocatorStats {
  sentFrames: number;
  sentBytes: number;
  receivedFrames: number;
  /** Frames and bytes waiting on this worker's side for ring space: its backlog. */
  overflowFrames: number;
  overflowBytes: number;
}

interface Entry {
  codec: Codec<unknown>;
  pull: ChannelPull<unknown>;
  pushes: (RemotePush<unknown> | LocalPush<unknown> | UnroutablePush<unknown>)[];
}

type Stray =
  | { kind: 'batch'; source: number; codec: number; count: number; payload: Uint8Array }
  | { kind: 'close'; source: number };

/** Frames for a channel not allocated yet, and their bytes (bounded like a puller's). */
interface Strays {
  list: Stray[];
  bytes: number;
}

const MAX_CHANNEL = 0xffffffff;
// Before parking, a worker spins on its rings for up to SPIN_MAX_US: a peer
// that answers within that is seen without the ~30 us of Atomics.wait and
// notify. The budget is time, not a count of checks, because it must cover
// a parked peer's wake-up: when both ends spin for less than that, each
// finds the other parked, and a ping-pong settles at two wake-ups per round
// trip. It adapts: halved each time spinning found nothing (the peer was
// slow, or not even scheduled: on a machine with more busy threads than
// cores, a spinning thread takes the core its peer needs), doubled each time
// it found the event. Every PROBE_EVERY-th wait spins the full budget
// whatever the history, so two ends that both backed off find their way
// back to spinning once the peer is quick again.
const SPIN_MAX_US = 100;
const SPIN_MIN_US = 2;
const PROBE_EVERY = 8;

export class Allocator implements FrameSink {
  readonly index: number;
  readonly peers: number;
  private readonly control: Control;
  private readonly bell: Doorbell;
  private readonly allBells: Doorbell[];
  private readonly seqs: Uint32Array;
  private readonly outboxes: (Outbox | undefined)[];
  private outboxList: Outbox[];
  private inboxes: Inbox[];
  private readonly inboxOf = new Map<number, Inbox>();
  private readonly maxBatch: number;
  /** Frame bytes a channel may hold decoded ahead of recv() (and a channel not allocated yet, undecoded). */
  private readonly aheadBytes: number;
  private readonly channels = new Map<number, Entry>();
  private readonly stray = new Map<number, Strays>();
  private readonly finished: Uint8Array;
  /** Per worker: its process once that was lost, else -1. */
  private readonly lostWorkers: Int32Array;
  private readonly threads: number;
  /** Losses applied so far, and those not yet returned by peerLosses(). */
  private lostApplied = 0;
  private readonly lossList: PeerLoss[] = [];
  private readonly dirty: Emitter[] = [];
  private readonly backlog: Backlog;
  private readonly sending: Sending;
  /** The OverflowError that failed this worker; every later wait throws it again. */
  private failure: OverflowError | undefined;
  /** The worker's function returned: the allocator is closed. */
  private retired = false;
  /** Inside until(): take every frame, past the decode-ahead bound (see until()). */
  private receivingAll = false;
  private readonly eventList: number[] = [];
  private readonly eventSeen = new Set<number>();
  private localWake = false;
  /**
   * Checks of the rings awaitEvents makes before it parks; undefined means
   * adaptive (spinning up to 100 us). 0 always parks: lowest CPU, ~30 us per wake.
   */
  spinLimit: number | undefined = undefined;
  /** The adaptive budget in microseconds, used when spinLimit is undefined. */
  private spinBudgetUs = SPIN_MAX_US;
  private waits = 0;

  constructor(wiring: Wiring) {
    this.index = wiring.index;
    this.peers = wiring.peers;
    this.control = new Control(wiring.control);
    this.bell = new Doorbell(wiring.bell);
    this.allBells = wiring.bells.map((b) => new Doorbell(b));
    this.seqs = new Uint32Array(this.peers);
    this.maxBatch = wiring.limits.maxMessageBytes;
    this.aheadBytes = wiring.ringBytes;
    this.finished = new Uint8Array(this.peers);
    this.lostWorkers = new Int32Array(this.peers).fill(-1);
    this.threads = wiring.threads ?? this.peers;
    const cap = wiring.limits.maxBacklogBytes;
    const backlog: Backlog = {
      bytes: 0,
      cap,
      overflow: (channel, target, frame) => {
        const e = new OverflowError(
          channel,
          target,
          `worker ${this.index}'s backlog would pass maxBacklogBytes (${cap}) with a frame of ${frame} bytes to worker ${target}: ` +
            `${backlog.bytes} bytes already wait for ring space. Its receivers read slower than it sends: wait for push.ready() when send() returns false, or raise maxBacklogBytes in the Config`,
        );
        this.failure = e;
        this.abort();
        throw e;
      },
    };
    this.backlog = backlog;
    const out = wiring.out.map((e) => this.outbox(e));
    this.outboxes = wiring.routes.map((r) => (r < 0 ? undefined : out[r]));
    this.outboxList = out;
    this.inboxes = wiring.in.map((e) => {
      const inbox = this.inbox(e);
      if (e.peer !== undefined) this.inboxOf.set(e.peer, inbox);
      return inbox;
    });
    this.sending = {
      outboxes: this.outboxes,
      dirty: this.dirty,
      maxBatch: this.maxBatch,
      highWater: wiring.limits.highWaterBytes,
      finished: this.finished,
      lost: this.lostWorkers,
      until: (ready) => this.until(ready),
    };
  }

  private outbox(e: RingEnd): Outbox {
    return new Outbox(new RingWriter(e.ring, new Doorbell(e.bell)), this.index, this.seqs, this.backlog);
  }

  private inbox(e: RingEnd): Inbox {
    return new Inbox(new RingReader(e.ring, new Doorbell(e.bell)), this.index, this.peers, this.maxBatch);
  }

  /**
   * Allocates channel `channel`: one pusher per worker (indexed by worker)
   * and this worker's puller. Every worker that exchanges on a channel
   * allocates it with the same id and codec.
   */
  allocate<T>(channel: number, codec: Codec<T> = codecs.msgpack<T>()): [Push<T>[], Pull<T>] {
    this.live(`allocate(${channel})`);
    if (!Number.isInteger(channel) || channel < 0 || channel > MAX_CHANNEL) {
      throw new ChannelError(channel, `channel ids are integers from 0 to ${MAX_CHANNEL}`);
    }
    if (this.channels.has(channel)) throw new ChannelError(channel, `already allocated by worker ${this.index}`);
    const pull = new ChannelPull<T>(channel, this, this.peers, this.index, this.aheadBytes, this.wakeLocal, codec.recycle?.bind(codec));
    const pushes: (RemotePush<T> | LocalPush<T> | UnroutablePush<T>)[] = [];
    for (let target = 0; target < this.peers; target++) {
      if (target === this.index) {
        const own = new LocalPush(channel, target, pull, this.wakeLocal, codec, this.dirty);
        pull.closeOwn = () => own.close();
        pushes.push(own);
      } else if (this.outboxes[target] === undefined) {
        pushes.push(new UnroutablePush(channel, target, this.index));
      } else {
        pushes.push(new RemotePush(channel, target, codec.id, codec.batcher(), this.sending));
      }
    }
    const entry = { codec, pull, pushes } as unknown as Entry;
    this.channels.set(channel, entry);
    for (let source = 0; source < this.peers; source++) if (this.finished[source]) pull.closeFrom(source);
    const early = this.stray.get(channel);
    if (early !== undefined) {
      this.stray.delete(channel);
      for (const s of early.list) {
        if (s.kind === 'close') pull.closeFrom(s.source);
        else this.batch(s.source, channel, s.codec, s.count, s.payload, true);
      }
    }
    return [pushes, pull];
  }

  private readonly wakeLocal = (): void => {
    this.localWake = true;
  };

  /**
   * Moves frames that have arrived into their channels' pullers: on each
   * channel, up to `ringBytes` of frames ahead of what recv() has read. The
   * rest waits in the rings, where its senders feel it as backpressure.
   */
  receive(): void {
    this.live('receive()');
    this.checkAbort();
    this.localWake = false;
    // Read before draining: the router puts a lost process's last whole
    // frames in the rings before it records the loss, so they are taken
    // first and its channels close after them.
    const lost = this.control.lostCount;
    for (const inbox of this.inboxes) inbox.drain(this);
    if (lost !== this.lostApplied) this.applyLosses(lost);
  }

  private applyLosses(to: number): void {
    for (const process of this.control.lost(this.lostApplied, to)) {
      const workers = Array.from({ length: this.threads }, (_, k) => process * this.threads + k);
      for (const w of workers) {
        this.lostWorkers[w] = process;
        this.finish(w);
      }
      this.lossList.push({ process, workers });
    }
    this.lostApplied = to;
  }

  /**
   * Peer processes lost since the last call (Config.cluster with onPeerLoss
   * 'continue'; learnt in receive()). Their workers' channels are closed
   * towards this worker, and a send to them throws a PeerError.
   */
  peerLosses(): PeerLoss[] {
    return this.lossList.splice(0);
  }

  /** Throws once the worker's function has returned. */
  private live(call: string): void {
    if (this.retired) throw new AllocatorClosedError(`worker ${this.index} called ${call} after its function returned: the allocator closed with it`);
  }

  /** Hands every buffered message to the transport and publishes it. */
  release(): void {
    const dirty = this.dirty;
    for (let i = 0; i < dirty.length; i++) {
      dirty[i]!.listed = false;
      dirty[i]!.emit();
    }
    dirty.length = 0;
    for (const o of this.outboxList) {
      o.drain();
      o.publish();
    }
  }

  /**
   * Parks the thread until a frame arrives, ring space frees up for
   * overflow, another worker fails, or `timeoutMs` passes. Releases first,
   * so nothing this worker wrote is held back while it sleeps.
   */
  awaitEvents(timeoutMs = Infinity): void {
    if (!this.beforePark()) {
      const epoch = this.bell.epoch();
      this.bell.announce();
      try {
        if (!this.ready(true)) this.bell.wait(epoch, timeoutMs);
      } finally {
        this.bell.settle();
      }
    }
    this.checkAbort();
  }

  /** awaitEvents for async code: the event loop keeps turning while parked. */
  async awaitEventsAsync(timeoutMs = Infinity): Promise<void> {
    if (!this.beforePark()) {
      const epoch = this.bell.epoch();
      this.bell.announce();
      try {
        if (!this.ready(true)) await this.bell.waitAsync(epoch, timeoutMs);
      } finally {
        this.bell.settle();
      }
    }
    this.checkAbort();
  }

  /**
   * What a worker does before it parks; true when there is something to do
   * already. Lent views expire, everything written is released, and overflow
   * that release() just moved into a ring is the event a flow-controlled
   * sender waits for: it returns rather than park on it. Then it spins.
   */
  private beforePark(): boolean {
    this.returnLent();
    return this.releaseMovedOverflow() || this.spin();
  }

  /** Resolves once every overflowed frame is in a ring (or dropped: bound for a worker that returned). */
  drain(): Promise<void> {
    this.live('drain()');
    return this.until(() => this.backlog.bytes === 0 && this.stats().overflowFrames === 0);
  }

  /**
   * Waits until `ready()` holds, moving overflow into the rings meanwhile.
   * It receives too, and past the decode-ahead bound: a worker waiting
   * here for space in a peer's ring may be what that peer waits on, in its
   * own ready() or drain(), and taking the peer's frames is what lets it
   * go on. What is taken waits in the pullers until read.
   */
  private async until(ready: () => boolean): Promise<void> {
    for (;;) {
      // Receive first: a FIN among the frames drops the overflow bound for its sender.
      this.receivingAll = true;
      try {
        this.receive();
      } finally {
        this.receivingAll = false;
      }
      this.release();
      if (ready()) return;
      await this.awaitEventsAsync();
    }
  }

  /** release(), and whether it moved overflowed frames into a ring. */
  private releaseMovedOverflow(): boolean {
    let before = 0;
    for (const o of this.outboxList) before += o.overflowFrames;
    this.release();
    if (before === 0) return false;
    let after = 0;
    for (const o of this.outboxList) after += o.overflowFrames;
    return after < before;
  }

  private spin(): boolean {
    if (this.spinLimit !== undefined) {
      for (let i = 0; i < this.spinLimit; i++) if (this.ready(false)) return true;
      return false;
    }
    const budget = ++this.waits % PROBE_EVERY === 0 ? SPIN_MAX_US : this.spinBudgetUs;
    const deadline = performance.now() + budget / 1000;
    // The clock is read once per 64 checks: a check costs tens of nanoseconds.
    for (let i = 1; ; i++) {
      if (this.ready(false)) {
        this.spinBudgetUs = Math.min(SPIN_MAX_US, Math.max(budget, this.spinBudgetUs * 2));
        return true;
      }
      if ((i & 63) === 0 && performance.now() >= deadline) break;
    }
    this.spinBudgetUs = Math.max(SPIN_MIN_US, this.spinBudgetUs / 2);
    return false;
  }

  private ready(parking: boolean): boolean {
    if (this.localWake || this.control.aborted || this.control.lostCount !== this.lostApplied) return true;
    for (const inbox of this.inboxes) if (!inbox.stalled && inbox.reader.poll()) return true;
    // A worker with overflow also wakes when its consumer frees space, so
    // the overflow drains even while nothing arrives for it.
    if (parking) for (const o of this.outboxList) if (o.wantSpace()) return true;
    return false;
  }

  // Borrowed views expire when their worker waits for more: their bytes go
  // back to the producers now, or a producer whose ring they fill could
  // never wake this worker.
  private returnLent(): void {
    for (const inbox of this.inboxes) inbox.reader.release();
  }

  /** Channel ids that received messages since the last call. */
  events(): number[] {
    const list = this.eventList.splice(0);
    this.eventSeen.clear();
    return list;
  }

  stats(): AllocatorStats {
    const s: AllocatorStats = { sentFrames: 0, sentBytes: 0, receivedFrames: 0, overflowFrames: 0, overflowBytes: 0 };
    for (const o of this.outboxList) {
      s.sentFrames += o.sentFrames;
      s.sentBytes += o.sentBytes;
      s.overflowFrames += o.overflowFrames;
      s.overflowBytes += o.overflowBytes;
    }
    for (const i of this.inboxes) s.receivedFrames += i.receivedFrames;
    return s;
  }

  /** Throws AbortedError if another worker failed (fail-stop), or this worker's OverflowError. */
  checkAbort(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.control.aborted) {
      const failed = this.control.failedWorker;
      const who = failed < 0 ? 'a peer process failed' : `worker ${failed} failed`;
      throw new AbortedError(failed, `worker ${this.index} stopped: ${who}`);
    }
  }

  /** Marks the run failed by this worker and wakes everyone. */
  abort(): void {
    this.control.abort(this.index, this.allBells);
  }

  // FrameSink: called by inboxes during receive().

  accepts(channel: number): boolean {
    if (this.receivingAll) return true;
    const entry = this.channels.get(channel);
    if (entry !== undefined) return entry.pull.accepts();
    return (this.stray.get(channel)?.bytes ?? 0) < this.aheadBytes;
  }

  batch(source: number, channel: number, codec: number, count: number, payload: Uint8Array, owned: boolean): boolean {
    const entry = this.channels.get(channel);
    if (entry === undefined) {
      this.strays(channel).list.push({ kind: 'batch', source, codec, count, payload: owned ? payload : payload.slice() });
      this.strays(channel).bytes += payload.length;
      return false;
    }
    if (codec !== entry.codec.id) {
      throw new ChannelError(channel, `worker ${source} sends with codec #${codec}, worker ${this.index} allocated it with ${entry.codec.name} (#${entry.codec.id})`);
    }
    let batch: ArrayLike<unknown>;
    try {
      batch = entry.codec.decode(payload, count, owned);
    } catch (error) {
      throw new ChannelError(channel, `cannot decode a batch from worker ${source}: ${(error as Error).message}`, { cause: error });
    }
    entry.pull.deliver(batch, payload.length);
    if (!this.eventSeen.has(channel)) {
      this.eventSeen.add(channel);
      this.eventList.push(channel);
    }
    return entry.codec.lends === true && !owned;
  }

  close(source: number, channel: number): void {
    const entry = this.channels.get(channel);
    if (entry !== undefined) {
      entry.pull.closeFrom(source);
      return;
    }
    this.strays(channel).list.push({ kind: 'close', source });
  }

  private strays(channel: number): Strays {
    let s = this.stray.get(channel);
    if (s === undefined) this.stray.set(channel, (s = { list: [], bytes: 0 }));
    return s;
  }

  /**
   * Worker `source` returned. Its channels close, and overflow bound for it
   * is dropped now: it reads no more, so waiting for its ring to have room
   * (in drain(), ready() or this worker's own exit) would wait forever.
   */
  finish(source: number): void {
    this.finished[source] = 1;
    for (const entry of this.channels.values()) entry.pull.closeFrom(source);
    this.outboxes[source]?.discard(source);
  }

  /**
   * The worker's function returned: close every channel towards every
   * worker, then wait until all overflow is in the rings. Incoming frames
   * are still consumed meanwhile, so two finishing workers cannot wait on
   * each other's full rings.
   */
  shutdown(): void {
    this.release();
    for (let target = 0; target < this.peers; target++) {
      if (target !== this.index) this.outboxes[target]?.control(target, 0, Kind.FIN);
    }
    for (const entry of this.channels.values()) entry.pull.closeFrom(this.index);
    for (;;) {
      this.release();
      this.receive();
      if (this.stats().overflowFrames === 0) break;
      this.awaitEvents(100);
    }
    this.retire();
    for (const [channel, { list }] of this.stray) {
      const batches = list.filter((s) => s.kind === 'batch');
      if (batches.length > 0) {
        throw new ChannelError(channel, `worker ${this.index} received ${batches.length} batch(es) from worker ${batches[0]!.source} but never allocated the channel`);
      }
    }
  }

  /** The worker's function is over: every later send, allocate or receive throws. */
  retire(): void {
    this.retired = true;
    for (const entry of this.channels.values()) for (const p of entry.pushes) p.retire(this.index);
  }

  /** Hosted pools: point this endpoint's route to `peer` at fresh rings. */
  rewire(peer: number, out: RingEnd, inn: RingEnd): void {
    const old = this.outboxes[peer];
    const fresh = this.outbox(out);
    this.outboxList = this.outboxList.map((o) => (o === old ? fresh : o));
    this.outboxes[peer] = fresh;
    this.seqs[peer] = 0;
    const inbox = this.inbox(inn);
    this.inboxes = [...this.inboxes.filter((i) => i !== this.inboxOf.get(peer)), inbox];
    this.inboxOf.set(peer, inbox);
    this.finished[peer] = 0;
    for (const entry of this.channels.values()) entry.pull.reopenFrom(peer);
  }
}
