// One worker's end of the fabric: the rings it reads and writes, its
// doorbell, the run's control cells, and the machinery the worker's runner
// drives (fail-stop, shutdown, a hosted pool's rewiring). It builds the
// worker's channels (channels.ts) and is their host: its pushers and
// pullers reach it only through PushHost and PullHost, its state is private.
// Users never see it: they get an Allocator (allocator.ts), which calls in
// here.

import { ChannelTable, type ChannelHost } from './channels.ts';
import { Membership, type PeerLoss, type PeerJoin } from './membership.ts';
import { SpinPolicy } from './spin.ts';
import { Rings } from './rings.ts';
import type { Codec } from './codec.ts';
import type { AllocatorStats } from './counters.ts';
import type { Emitter, Push } from './push.ts';
import type { Pull } from './pull.ts';
import { Control } from '../transport/index.ts';
import { Doorbell } from '../transport/index.ts';
import type { Outbox, Backlog } from '../transport/index.ts';
import type { RingEnd, Wiring } from '../transport/index.ts';
import { linkStats } from '../transport/index.ts';
import { FailStopError, AllocatorClosedError, OverflowError } from '../errors.ts';

export type { AllocatorStats } from './counters.ts';

export class Endpoint implements ChannelHost {
  readonly index: number;
  readonly peers: number;
  readonly aheadBytes: number;
  readonly maxBatch: number;
  readonly highWater: number;
  /** Checks of the rings before parking; undefined: adaptive (see spin.ts). */
  spinLimit: number | undefined = undefined;
  readonly #table: ChannelTable;
  /** Per target: the outbox towards it, or undefined for itself or a worker it has no route to. */
  readonly #outboxes: (Outbox | undefined)[];
  /** Pushers holding unsent messages, for release(). */
  readonly #dirty: Emitter[] = [];
  /** Per worker: 1 once it has returned. */
  readonly #finished: Uint8Array;
  readonly #control: Control;
  readonly #bell: Doorbell;
  readonly #allBells: Doorbell[];
  readonly #rings: Rings;
  readonly #membership: Membership;
  /** Threads per process (cluster), or every worker (one process). */
  readonly #threads: number;
  readonly #backlog: Backlog;
  /** The OverflowError that failed this worker; every later wait throws it again. */
  #failure: OverflowError | undefined;
  /** The worker's function returned: the allocator is closed. */
  #retired = false;
  #localWake = false;
  /** The process's link counters, in a cluster. */
  readonly #links: SharedArrayBuffer | undefined;
  /** Times this worker slept on its doorbell (AllocatorStats.parks). */
  #parks = 0;
  readonly #spinner = new SpinPolicy();
  readonly #readyNow = (): boolean => this.#ready(false);

  constructor(wiring: Wiring) {
    this.index = wiring.index;
    this.peers = wiring.peers;
    this.aheadBytes = wiring.ringBytes;
    this.maxBatch = wiring.limits.maxMessageBytes;
    this.highWater = wiring.limits.highWaterBytes;
    this.#control = new Control(wiring.control);
    this.#bell = new Doorbell(wiring.bell);
    this.#allBells = wiring.bells.map((b) => new Doorbell(b));
    this.#table = new ChannelTable(this);
    this.#finished = new Uint8Array(this.peers);
    this.#threads = wiring.threads ?? this.peers;
    this.#membership = new Membership(this.peers, this.#threads, wiring.absent ?? [], this.#control, {
      lost: (worker) => this.finish(worker),
      joined: (worker) => {
        this.#finished[worker] = 0;
        this.#table.reopenFrom(worker);
      },
    });
    // An absent spare's workers count as returned until it joins: channels
    // do not wait for them, and nothing is sent to them.
    this.#finished.set(this.#membership.absent);
    // In a cluster a lost process may come back, like a spare joins: a frame from either applies the joins first.
    if (wiring.threads !== undefined) this.#table.watchAbsent(this.#membership.absent, () => this.#membership.applyJoins());
    this.#links = wiring.links;
    this.#rings = new Rings(wiring, (e) => {
      this.#failure = e;
      this.abort();
    });
    this.#backlog = this.#rings.backlog;
    this.#outboxes = this.#rings.outboxes;
  }

  /** Builds channel `channel` (see Allocator.allocate). */
  allocate<T>(channel: number, codec: Codec<T>): [Push<T>[], Pull<T>] {
    return this.#table.open(channel, codec);
  }

  /** Channel ids that received messages since the last call. */
  events(): number[] {
    return this.#table.events();
  }

  get outboxes(): readonly (Outbox | undefined)[] {
    return this.#outboxes;
  }

  returned(target: number): boolean {
    return this.#finished[target] === 1;
  }

  get absent(): Uint8Array {
    return this.#membership.absent;
  }

  checkReach(target: number, channel: number): void {
    this.#membership.checkReach(target, channel);
  }

  hold(pusher: Emitter): void {
    this.#dirty.push(pusher);
  }

  /** A message to oneself was sent, or a stalled channel has room: the worker has something to read. */
  wakeLocal(): void {
    this.#localWake = true;
    this.wake();
  }

  /**
   * Rings this worker's own doorbell if a wait of it is parked. Only an
   * async worker can be parked while its own thread runs (another task of
   * it awaits in for-await, ready() or awaitLoan()): a message to itself or
   * a loan given back on this thread changed nothing another thread rings
   * for, and that wait slept on.
   */
  wake(): void {
    this.#bell.ring();
  }

  /** Moves frames that have arrived into their channels' pullers (see Allocator.receive). */
  receive(): void {
    this.live('receive()');
    this.checkAbort();
    this.#localWake = false;
    // Read before draining: the router puts a lost process's last whole
    // frames in the rings before it records the loss, so they are taken
    // first and its channels close after them.
    const lost = this.#control.lostCount;
    // Joins before the frames, and after reading the losses: a spare lost
    // had joined before, so its join is applied before its loss.
    this.#membership.applyJoins();
    this.#rings.receive(this.#table);
    this.#membership.applyLosses(lost);
    if (lost > 0) this.#control.acknowledgeLosses(this.index % this.#threads, lost);
  }

  peerLosses(): PeerLoss[] {
    return this.#membership.losses();
  }

  peerJoins(): PeerJoin[] {
    return this.#membership.joins();
  }

  /** Whether `worker`'s process is there: not a spare that has not joined, not lost. */
  present(worker: number): boolean {
    return this.#membership.present(worker);
  }

  /** Throws once the worker's function has returned. */
  live(call: string): void {
    if (this.#retired) throw new AllocatorClosedError(`worker ${this.index} called ${call} after its function returned: the allocator closed with it`);
  }

  /** Hands every buffered message to the transport and publishes it. */
  release(): void {
    const dirty = this.#dirty;
    for (let i = 0; i < dirty.length; i++) {
      dirty[i]!.listed = false;
      dirty[i]!.emit();
    }
    dirty.length = 0;
    this.#rings.publish();
  }

  /** Parks the thread until something happens (see Allocator.awaitEvents). */
  awaitEvents(timeoutMs = Infinity): void {
    if (!this.#beforePark()) {
      const epoch = this.#bell.epoch();
      this.#bell.announce();
      try {
        if (!this.#ready(true)) {
          this.#parks++;
          this.#bell.wait(epoch, timeoutMs);
        }
      } finally {
        this.#bell.settle();
      }
    }
    this.checkAbort();
  }

  async awaitEventsAsync(timeoutMs = Infinity): Promise<void> {
    const parked = this.spinThenPark(timeoutMs);
    if (parked !== true) await parked;
  }

  /**
   * awaitEventsAsync without a promise when the spin finds an event: true
   * then, else the park's promise. An async loop that goes through a
   * promise only to park pays one await per wait: awaiting a promise for
   * every spin as well cost a round of microtasks per wait, about a third
   * of a ping-pong hop.
   */
  spinThenPark(timeoutMs = Infinity): true | Promise<void> {
    if (this.#beforePark()) {
      this.checkAbort();
      return true;
    }
    return this.#parkAsync(timeoutMs);
  }

  async #parkAsync(timeoutMs: number): Promise<void> {
    const epoch = this.#bell.epoch();
    this.#bell.announce();
    try {
      if (!this.#ready(true)) {
        this.#parks++;
        await this.#bell.waitAsync(epoch, timeoutMs);
      }
    } finally {
      this.#bell.settle();
    }
    this.checkAbort();
  }

  /**
   * What a worker does before it parks; true when there is something to do
   * already. Lent views expire, everything written is released, and overflow
   * that release() just moved into a ring is the event a flow-controlled
   * sender waits for: it returns rather than park on it. Then it spins.
   */
  #beforePark(): boolean {
    this.#rings.returnLent();
    return this.#releaseMovedOverflow() || this.#spinner.spin(this.spinLimit, this.#readyNow);
  }

  drain(): Promise<void> {
    this.live('drain()');
    return this.until(this.#drained);
  }

  /** drain() for a synchronous worker: parks as awaitEvents does; false if `timeoutMs` passed first. */
  awaitDrain(timeoutMs = Infinity): boolean {
    this.live('awaitDrain()');
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.#step(this.#drained)) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      this.awaitEvents(left);
    }
  }

  readonly #drained = (): boolean => this.#backlog.bytes === 0 && this.#rings.overflowFrames() === 0;

  /**
   * Waits until `ready()` holds, moving overflow into the rings meanwhile.
   * It receives too, and past the decode-ahead bound: a worker waiting
   * here for space in a peer's ring may be what that peer waits on, in its
   * own ready() or drain(), and taking the peer's frames is what lets it
   * go on. What is taken waits in the pullers until read.
   */
  async until(ready: () => boolean): Promise<void> {
    while (!this.#step(ready)) await this.awaitEventsAsync();
  }

  /** One round of a wait for `ready()` (see until): receive everything, release, check. */
  #step(ready: () => boolean): boolean {
    // Receive first: a FIN among the frames drops the overflow bound for its sender.
    this.#receiveAll();
    this.release();
    return ready();
  }

  /**
   * receive(), past the decode-ahead bound: a FIN behind frames no puller
   * has room for is read too. Where a worker waits for ring space, the
   * frames it takes are what frees its peer, and the FIN of a peer that
   * returned is what drops the overflow bound for it.
   */
  #receiveAll(): void {
    this.#table.receivingAll = true;
    try {
      this.receive();
    } finally {
      this.#table.receivingAll = false;
    }
  }

  /** release(), and whether it moved overflowed frames into a ring. */
  #releaseMovedOverflow(): boolean {
    const before = this.#rings.overflowFrames();
    this.release();
    return before > 0 && this.#rings.overflowFrames() < before;
  }

  #ready(parking: boolean): boolean {
    if (this.#localWake || this.#control.aborted || this.#membership.pending) return true;
    return this.#rings.poll(parking);
  }

  stats(): AllocatorStats {
    const backlog = (peer: number): number => this.#outboxes[peer]?.overflowBytes ?? 0;
    return {
      ...this.#rings.stats(), parks: this.#parks, channels: this.#table.stats(backlog),
      links: this.#links === undefined ? [] : linkStats(this.#links, Math.floor(this.index / this.#threads)),
    };
  }

  /** Throws FailStopError if another worker failed (fail-stop), or this worker's OverflowError. */
  checkAbort(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#control.aborted) {
      const failed = this.#control.failedWorker;
      const who = failed < 0 ? 'a peer process failed' : `worker ${failed} failed`;
      throw new FailStopError(failed, `worker ${this.index} stopped: ${who}`);
    }
  }

  /** Marks the run failed by this worker and wakes everyone. */
  abort(): void {
    this.#control.abort(this.index, this.#allBells);
  }

  /**
   * Worker `source` returned. Its channels close, and overflow bound for it
   * is dropped now: it reads no more, so waiting for its ring to have room
   * (in drain(), ready() or this worker's own exit) would wait forever.
   */
  finish(source: number): void {
    if (this.#membership.absent[source] === 1) this.#membership.applyJoins();
    this.#finished[source] = 1;
    this.#table.closeFrom(source);
    this.#rings.discard(source);
  }

  /**
   * The worker's function returned: close every channel towards every
   * worker, then wait until all overflow is in the rings. Incoming frames
   * are all consumed meanwhile (nobody reads them now, so no decode-ahead
   * bound holds them back), so two finishing workers cannot wait on each
   * other's full rings, nor on a FIN behind frames never to be read.
   */
  shutdown(): void {
    this.release();
    // FINs read first: no FIN goes to a worker known to have returned.
    this.#receiveAll();
    this.#rings.finishAll((target) => this.#finished[target] === 1 && this.#membership.absent[target] === 0);
    this.#table.closeFrom(this.index);
    for (;;) {
      this.release();
      this.#receiveAll();
      if (this.#rings.overflowFrames() === 0) break;
      this.awaitEvents(100);
    }
    this.retire();
    this.#table.checkStrays();
  }

  /** The worker's function is over: every later send, allocate or receive throws. */
  retire(): void {
    this.#retired = true;
    this.#table.retire();
  }

  /** Hosted pools: point this endpoint's route to `peer` at fresh rings. */
  rewire(peer: number, out: RingEnd, inn: RingEnd): void {
    this.#rings.rewire(peer, out, inn);
    this.#finished[peer] = 0;
    this.#table.reopenFrom(peer);
  }
}
