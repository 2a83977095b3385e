// The channels a worker has allocated: it builds each one (its pushers and
// its puller, over the endpoint as their host), and, as its inboxes see
// them, routes each arriving batch or close to its puller. Frames for a
// channel not allocated yet wait here as strays, bounded like a puller's
// decode-ahead, and are handed over in arrival order once the channel is
// allocated.

import type { Codec } from './codec.ts';
import { ChannelPull, type Pull, type PullHost } from './pull.ts';
import { LocalPush, RemotePush, UnroutablePush, type Push, type PushHost } from './push.ts';
import type { FrameSink } from '../transport/index.ts';
import { ChannelError } from '../errors.ts';
import { channelCounters, channelStats, countReceived, type ChannelStats } from './counters.ts';

/** What the table and the channels it builds need from the worker's endpoint. */
export interface ChannelHost extends PushHost, PullHost {
  /** A FIN from worker `source`: it returned (the endpoint closes its channels and drops what is bound for it). */
  finish(source: number): void;
}

/** What the table calls on a channel's puller, whatever its message type. */
interface Inbound {
  accepts(): boolean;
  deliver(batch: ArrayLike<unknown>, bytes: number): void;
  closeFrom(source: number): void;
  reopenFrom(source: number): void;
}

/** What the table calls on a channel's pushers: the worker's function returned. */
interface Retiring {
  retire(index: number): void;
}

interface Channel {
  codec: Codec<unknown>;
  pull: Inbound;
  pushes: Retiring[];
  /** Its traffic per peer (counters.ts). */
  counts: Float64Array;
}

type Stray =
  | { kind: 'batch'; source: number; codec: number; count: number; payload: Uint8Array }
  | { kind: 'close'; source: number };

/** Frames for a channel not allocated yet, and their bytes. */
interface Strays {
  list: Stray[];
  bytes: number;
}

export class ChannelTable implements FrameSink {
  private readonly channels = new Map<number, Channel>();
  private readonly stray = new Map<number, Strays>();
  private readonly eventList: number[] = [];
  private readonly eventSeen = new Set<number>();
  /** Inside the allocator's until(): take every frame, past the decode-ahead bound. */
  receivingAll = false;
  /** Per worker: 1 while it is absent (a spare not joined); a frame from one applies the joins first. */
  private absent: Uint8Array | undefined;
  private catchUp: () => void = () => {};

  /** This worker's index. */
  private readonly index: number;
  /** Frame bytes a channel may hold decoded ahead of recv() (and a channel not allocated yet, undecoded). */
  private readonly aheadBytes: number;

  constructor(private readonly host: ChannelHost) {
    this.index = host.index;
    this.aheadBytes = host.aheadBytes;
  }

  finish(source: number): void {
    this.host.finish(source);
  }

  /** Cluster spares: a frame from a worker in `absent` calls `catchUp` (which applies its join) before it is taken. */
  watchAbsent(absent: Uint8Array, catchUp: () => void): void {
    this.absent = absent;
    this.catchUp = catchUp;
  }

  /**
   * Builds channel `channel`: a pusher per worker (to itself, to a worker it
   * has no route to, or through the outbox towards it) and the puller,
   * registered here with what arrived for it before.
   */
  open<T>(channel: number, codec: Codec<T>): [Push<T>[], Pull<T>] {
    if (this.channels.has(channel)) throw new ChannelError(channel, `already allocated by worker ${this.index}`);
    const host = this.host;
    const pull = new ChannelPull<T>(channel, host, codec.recycle?.bind(codec));
    const counts = channelCounters(host.peers);
    const pushes: (RemotePush<T> | LocalPush<T> | UnroutablePush<T>)[] = [];
    for (let target = 0; target < host.peers; target++) {
      if (target === this.index) {
        const own = new LocalPush(channel, target, pull, codec, host, counts);
        pull.closeOwn = () => own.close();
        pushes.push(own);
      } else if (host.outboxes[target] === undefined) {
        pushes.push(new UnroutablePush(channel, target, this.index));
      } else {
        pushes.push(new RemotePush(channel, target, codec, host, counts));
      }
    }
    this.add(channel, { codec, pull, pushes, counts });
    return [pushes, pull];
  }

  /** Registers an allocated channel and hands it what arrived for it before. */
  private add(channel: number, entry: Channel): void {
    this.channels.set(channel, entry);
    for (let source = 0; source < this.host.peers; source++) if (this.host.returned(source)) entry.pull.closeFrom(source);
    const early = this.stray.get(channel);
    if (early === undefined) return;
    this.stray.delete(channel);
    for (const s of early.list) {
      if (s.kind === 'close') entry.pull.closeFrom(s.source);
      else this.batch(s.source, channel, s.codec, s.count, s.payload, true);
    }
  }

  /** Channel ids that received messages since the last call. */
  events(): number[] {
    const list = this.eventList.splice(0);
    this.eventSeen.clear();
    return list;
  }

  accepts(channel: number): boolean {
    if (this.receivingAll) return true;
    const entry = this.channels.get(channel);
    if (entry !== undefined) return entry.pull.accepts();
    return (this.stray.get(channel)?.bytes ?? 0) < this.aheadBytes;
  }

  batch(source: number, channel: number, codec: number, count: number, payload: Uint8Array, owned: boolean): boolean {
    if (this.absent?.[source] === 1) this.catchUp();
    const entry = this.channels.get(channel);
    if (entry === undefined) {
      const strays = this.strays(channel);
      strays.list.push({ kind: 'batch', source, codec, count, payload: owned ? payload : payload.slice() });
      strays.bytes += payload.length;
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
    countReceived(entry.counts, source, count, payload.length);
    if (!this.eventSeen.has(channel)) {
      this.eventSeen.add(channel);
      this.eventList.push(channel);
    }
    return entry.codec.lends === true && !owned;
  }

  close(source: number, channel: number): void {
    if (this.absent?.[source] === 1) this.catchUp();
    const entry = this.channels.get(channel);
    if (entry !== undefined) entry.pull.closeFrom(source);
    else this.strays(channel).list.push({ kind: 'close', source });
  }

  private strays(channel: number): Strays {
    let s = this.stray.get(channel);
    if (s === undefined) this.stray.set(channel, (s = { list: [], bytes: 0 }));
    return s;
  }

  /** Every channel's puller: no more messages from `source`. */
  closeFrom(source: number): void {
    for (const entry of this.channels.values()) entry.pull.closeFrom(source);
  }

  /** Hosted pools: `source` was replaced by a newcomer, whose messages are expected again. */
  reopenFrom(source: number): void {
    for (const entry of this.channels.values()) entry.pull.reopenFrom(source);
  }

  /** Every channel's counters, in allocation order; `backlog(peer)` is the overflow bound for `peer`. */
  stats(backlog: (peer: number) => number): ChannelStats[] {
    const into: ChannelStats[] = [];
    for (const [channel, entry] of this.channels) channelStats(channel, entry.counts, backlog, into);
    return into;
  }

  /** The worker's function returned: every pusher refuses from now on. */
  retire(): void {
    for (const entry of this.channels.values()) for (const p of entry.pushes) p.retire(this.index);
  }

  /** At shutdown: batches for a channel this worker never allocated are the program's error. */
  checkStrays(): void {
    for (const [channel, { list }] of this.stray) {
      const batches = list.filter((s) => s.kind === 'batch');
      if (batches.length > 0) {
        throw new ChannelError(channel, `worker ${this.index} received ${batches.length} batch(es) from worker ${batches[0]!.source} but never allocated the channel`);
      }
    }
  }
}
