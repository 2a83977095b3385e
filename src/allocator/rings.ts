// The rings of one worker: an outbox for each ring it writes (its overflow
// counted against the worker's backlog cap) and an inbox for each ring it
// reads. The endpoint drives them; this file knows how to reach them.

import type { FrameSink } from '../transport/index.ts';
import { Inbox } from '../transport/index.ts';
import { Outbox, type Backlog } from '../transport/index.ts';
import { Doorbell } from '../transport/index.ts';
import { Kind } from '../transport/index.ts';
import { RingReader, RingWriter } from '../transport/index.ts';
import { SlabReader, SlabWriter } from '../transport/index.ts';
import type { RingEnd, Wiring } from '../transport/index.ts';
import { OverflowError } from '../errors.ts';
import type { AllocatorStats } from './counters.ts';

// Not `import from 'node:diagnostics_channel'`: an ES module of a builtin
// costs each worker thread its start-up (bench/startup.ts).
const overflowChannel = process.getBuiltinModule('node:diagnostics_channel').channel('weft:overflow');

/** The worker's totals over its rings. */
export type RingStats = Pick<AllocatorStats, 'sentFrames' | 'sentBytes' | 'receivedFrames' | 'overflowFrames' | 'overflowBytes'>;

export class Rings {
  /** Per target: the outbox towards it, or undefined for itself or a worker it has no route to. */
  readonly outboxes: (Outbox | undefined)[];
  private outboxList: Outbox[];
  private inboxes: Inbox[];
  private readonly inboxOf = new Map<number, Inbox>();
  /** Per target: the next frame's sequence number, shared by every outbox (a cluster's router ring carries many targets). */
  private readonly seqs: Uint32Array;
  /** The worker's overflow, across its outboxes, and its cap. */
  readonly backlog: Backlog;
  /** The worker's slab, shared by its outboxes to threads of its process. */
  readonly slab: SlabWriter | undefined;

  constructor(
    private readonly wiring: Wiring,
    /** The backlog would pass its cap: the worker fails (the error is thrown to the sender after this). */
    failed: (error: OverflowError) => void,
  ) {
    const cap = wiring.limits.maxBacklogBytes;
    const backlog: Backlog = {
      bytes: 0,
      cap,
      overflow: (channel, target, frame) => {
        const e = new OverflowError(
          channel,
          target,
          `worker ${wiring.index}'s backlog would pass maxBacklogBytes (${cap}) with a frame of ${frame} bytes to worker ${target}: ` +
            `${backlog.bytes} bytes already wait for ring space. Its receivers read slower than it sends: wait for push.ready() when send() returns false, or raise maxBacklogBytes in the Config`,
        );
        // By name: an APM's subscriber (docs/observability.md), if any.
        if (overflowChannel.hasSubscribers) overflowChannel.publish(e);
        failed(e);
        throw e;
      },
    };
    this.backlog = backlog;
    this.slab = wiring.slab === undefined ? undefined : new SlabWriter(wiring.slab, wiring.ringBytes);
    this.seqs = new Uint32Array(wiring.peers);
    const out = wiring.out.map((e) => this.outbox(e));
    this.outboxes = wiring.routes.map((r) => (r < 0 ? undefined : out[r]));
    this.outboxList = out;
    this.inboxes = wiring.in.map((e) => {
      const inbox = this.inbox(e);
      if (e.peer !== undefined) this.inboxOf.set(e.peer, inbox);
      return inbox;
    });
  }

  private outbox(e: RingEnd): Outbox {
    return new Outbox(new RingWriter(e.ring, new Doorbell(e.bell)), this.wiring.index, this.seqs, this.backlog, e.slab === undefined ? undefined : this.slab, e.relay === true);
  }

  private inbox(e: RingEnd): Inbox {
    const bell = new Doorbell(e.bell);
    const slab = e.slab === undefined ? undefined : new SlabReader(e.slab, bell);
    return new Inbox(new RingReader(e.ring, bell), this.wiring.index, this.wiring.peers, this.wiring.limits.maxMessageBytes, slab);
  }

  /** Hands every frame that has arrived (and that `sink` accepts) to `sink`. */
  receive(sink: FrameSink): void {
    for (const inbox of this.inboxes) inbox.drain(sink);
  }

  /** Moves overflow into the rings while it fits, and publishes what was written. */
  publish(): void {
    for (const o of this.outboxList) {
      o.drain();
      o.publish();
    }
  }

  /** Frames waiting in overflow. */
  overflowFrames(): number {
    let n = 0;
    for (const o of this.outboxList) n += o.overflowFrames;
    return n;
  }

  /**
   * Whether a ring holds a frame to read. Parking, also whether a ring has
   * the space an overflow waits for, so the overflow drains even while
   * nothing arrives.
   */
  poll(parking: boolean): boolean {
    for (const inbox of this.inboxes) if (!inbox.stalled && inbox.reader.poll()) return true;
    // A chunk back from a receiver that was past its window: room for a sender waiting in ready().
    if (this.slab !== undefined && this.slab.returnedPastWindow(parking)) return true;
    if (parking) {
      for (const o of this.outboxList) if (o.wantSpace()) return true;
      // A loan that waits for room in the slab.
      if (this.slab !== undefined && this.slab.wanted > 0 && this.slab.wantSpace(this.slab.wanted)) return true;
    }
    return false;
  }

  // Borrowed views expire when their worker waits for more: their bytes go
  // back to the producers now, or a producer whose ring (or slab) they fill
  // could never wake this worker.
  returnLent(): void {
    for (const inbox of this.inboxes) inbox.returnLent();
  }

  stats(): RingStats {
    const s: RingStats = { sentFrames: 0, sentBytes: 0, receivedFrames: 0, overflowFrames: 0, overflowBytes: 0 };
    for (const o of this.outboxList) {
      s.sentFrames += o.sentFrames;
      s.sentBytes += o.sentBytes;
      s.overflowFrames += o.overflowFrames;
      s.overflowBytes += o.overflowBytes;
    }
    for (const i of this.inboxes) s.receivedFrames += i.receivedFrames;
    return s;
  }

  /**
   * A FIN to every other worker: this one returned. Not to a worker that
   * `returned` first: it reads no more, so a FIN that finds its ring full
   * would wait in overflow, and this worker's exit with it, forever. (A
   * spare that has not joined still gets one: the router drops it, or
   * delivers it if the spare joined meanwhile.)
   */
  finishAll(returned: (target: number) => boolean): void {
    const { index, peers } = this.wiring;
    for (let target = 0; target < peers; target++) {
      if (target !== index && !returned(target)) this.outboxes[target]?.control(target, 0, Kind.FIN);
    }
  }

  /** Drops the overflow bound for `target`, which reads no more. */
  discard(target: number): void {
    this.outboxes[target]?.discard(target);
  }

  /** Hosted pools: point the route to `peer` at fresh rings. */
  rewire(peer: number, out: RingEnd, inn: RingEnd): void {
    const old = this.outboxes[peer];
    // What waits for the old ring is the old thread's; off the backlog with it.
    old?.discard(peer);
    const fresh = this.outbox(out);
    this.outboxList = this.outboxList.map((o) => (o === old ? fresh : o));
    this.outboxes[peer] = fresh;
    this.seqs[peer] = 0;
    const inbox = this.inbox(inn);
    this.inboxes = [...this.inboxes.filter((i) => i !== this.inboxOf.get(peer)), inbox];
    this.inboxOf.set(peer, inbox);
  }
}
