// Exchange edges: records go to the worker that owns them, with punctuation
// that tells each receiver when a time is complete.
//
// Every sender sends, on its channel to every receiver (itself included),
// its records of time t and then a CLOSE(t) marker, and at the very end an
// END marker. Channels are FIFO per sender and receiver, so once a receiver
// holds CLOSE(t) (or END) from a sender, it holds every record of t that
// sender will ever send it. A receiver closes t downstream once every
// sender has closed t or ended: then no record of t can still come. That is
// the whole progress protocol of an exchange (docs/dataflow.md).

import { codecs, type Codec, type Pull, type Push } from '../allocator/index.ts';
import { DataflowError, Output, type Scope, type Sink, type Task, type Time } from './core.ts';

const DATA = 0;
const CLOSE = 1;
const END = 2;

/**
 * A batch of (id, value) pairs in two parallel columns; ids are integers
 * >= 0 (< 2^53). Received columns are views of the ring, valid only during
 * the operator call that receives them (copy what must live on), and say
 * which worker sent them: a sender's columns of one time arrive in the
 * order it sent them. `broadcastColumns` also takes values alone (empty
 * ids): they cross without ids and arrive with empty ids, for a receiver
 * that knows where a sender's values go from their order (PageRank's
 * contributions, each sender's in its own numbering of its nodes).
 */
export interface Columns {
  ids: Float64Array;
  values: Float64Array;
  /** On received columns: the worker that sent them. */
  from?: number;
}

/**
 * The two halves of an exchange: stage and send records of type I, receive
 * messages M and count punctuation, emitting records of type O.
 */
export abstract class Exchange<I, O, M> implements Sink<I>, Task {
  protected readonly self: number;
  protected readonly peers: number;
  protected readonly pushes: Push<M>[];
  private readonly pull: Pull<M>;
  readonly out = new Output<O>();
  /** Per time not yet closed here: which senders have closed it (an ended sender has closed every time). */
  private readonly marks = new Map<Time, Uint8Array>();
  private readonly counts = new Map<Time, number>();
  private readonly done = new Set<Time>();
  private readonly endedBy: Uint8Array;
  private ended = 0;
  finished = false;

  constructor(scope: Scope, codec: Codec<M>) {
    this.self = scope.index;
    this.peers = scope.peers;
    this.endedBy = new Uint8Array(scope.peers);
    [this.pushes, this.pull] = scope.channel(codec);
    scope.schedule(this);
  }

  abstract batch(t: Time, records: ArrayLike<I>): void;
  /** Sends what is staged for `target` (only if staged at time t, when given). */
  protected abstract flush(target: number, t?: Time): void;
  protected abstract marker(kind: number, t: Time): M;
  protected abstract sender(m: M): number;
  protected abstract kind(m: M): number;
  protected abstract time(m: M): Time;
  /** A data message of time t arrived. */
  protected abstract deliver(t: Time, m: M): void;
  /** Time t is complete here, before it closes downstream: emit what is owed for it. */
  protected completing(_t: Time): void {}

  close(t: Time): void {
    for (let target = 0; target < this.peers; target++) {
      this.flush(target, t);
      this.pushes[target]!.send(this.marker(CLOSE, t));
    }
  }

  end(): void {
    for (let target = 0; target < this.peers; target++) {
      this.flush(target);
      this.pushes[target]!.send(this.marker(END, 0));
    }
  }

  step(): boolean {
    let any = false;
    for (let m = this.pull.recv(); m !== undefined; m = this.pull.recv()) {
      any = true;
      const kind = this.kind(m);
      const t = this.time(m);
      if (kind === DATA) {
        if (this.done.has(t)) throw new DataflowError(`channel ${this.pull.channel}: records of time ${t} after it closed`);
        this.open(t);
        this.deliver(t, m);
      } else if (kind === CLOSE) {
        this.closedBy(t, this.sender(m));
      } else {
        const from = this.sender(m);
        this.endedBy[from] = 1;
        this.ended++;
        for (const time of [...this.marks.keys()]) this.closedBy(time, from);
        if (this.ended === this.peers) {
          this.out.end();
          this.finished = true;
        }
      }
    }
    return any;
  }

  /** The marks of a time first met now: every ended sender has closed it. */
  private open(t: Time): Uint8Array {
    let marks = this.marks.get(t);
    if (marks === undefined) {
      marks = this.endedBy.slice();
      this.marks.set(t, marks);
      this.counts.set(t, this.ended);
    }
    return marks;
  }

  private closedBy(t: Time, from: number): void {
    if (this.done.has(t)) return;
    const marks = this.open(t);
    if (marks[from] === 1) return;
    marks[from] = 1;
    const n = this.counts.get(t)! + 1;
    this.counts.set(t, n);
    if (n === this.peers) this.complete(t);
  }

  private complete(t: Time): void {
    this.marks.delete(t);
    this.counts.delete(t);
    this.done.add(t);
    this.completing(t);
    this.out.close(t);
  }
}

/** Records as msgpack batches: [sender, time, kind, records]. */
type Packet<T> = [number, Time, number, T[]?];

const BATCH = 1024;

/** Sends each record to the worker `route` names (or to every worker: broadcast). */
export class RecordExchange<T> extends Exchange<T, T, Packet<T>> {
  private readonly route: ((record: T) => number) | undefined;
  private readonly staged: T[][];
  private readonly stagedAt: Time[];

  /** `route` undefined: broadcast. */
  constructor(scope: Scope, route: ((record: T) => number) | undefined) {
    super(scope, codecs.msgpack<Packet<T>>());
    this.route = route;
    this.staged = Array.from({ length: this.peers }, () => []);
    this.stagedAt = new Array<Time>(this.peers).fill(-1);
  }

  batch(t: Time, records: ArrayLike<T>): void {
    const route = this.route;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (route === undefined) {
        for (let target = 0; target < this.peers; target++) this.stage(target, t, r);
      } else {
        const target = route(r);
        if (!(target >= 0 && target < this.peers)) throw new DataflowError(`exchange: a record routed to worker ${target}, not one of 0..${this.peers - 1}`);
        this.stage(target, t, r);
      }
    }
  }

  private stage(target: number, t: Time, r: T): void {
    if (this.stagedAt[target] !== t) {
      this.flush(target);
      this.stagedAt[target] = t;
    }
    const s = this.staged[target]!;
    s.push(r);
    if (s.length >= BATCH) this.flush(target);
  }

  protected flush(target: number, t?: Time): void {
    const s = this.staged[target]!;
    if (s.length === 0 || (t !== undefined && this.stagedAt[target] !== t)) return;
    // The batcher may hold the array until release: hand it over, start a new one.
    this.pushes[target]!.send([this.self, this.stagedAt[target]!, DATA, s]);
    this.staged[target] = [];
  }

  protected marker(kind: number, t: Time): Packet<T> {
    return [this.self, t, kind];
  }

  protected sender(m: Packet<T>): number {
    return m[0];
  }

  protected kind(m: Packet<T>): number {
    return m[2];
  }

  protected time(m: Packet<T>): Time {
    return m[1];
  }

  protected deliver(t: Time, m: Packet<T>): void {
    this.out.batch(t, m[3]!);
  }
}

/**
 * An exchange whose messages are float64 arrays that open with [sender,
 * time, kind]: the column and byte-sum exchanges read their markers alike.
 */
export abstract class Float64Exchange<I, O> extends Exchange<I, O, Float64Array> {
  protected sender(m: Float64Array): number {
    return m[0]!;
  }

  protected kind(m: Float64Array): number {
    return m[2]!;
  }

  protected time(m: Float64Array): Time {
    return m[1]!;
  }
}

// Columnar messages: [sender, time, kind, n, with ids (1 or 0), ids (n or
// none), values (n)], float64. 256 KiB messages fit a default (1 MiB) ring
// whole, so they are lent from the ring rather than copied into fresh memory.
const HEAD = 5;
const NO_IDS = new Float64Array(0);
const COLUMN_BATCH = 1 << 14;

/** Sends each (id, value) pair to the worker owning the id (id % peers), or to every worker, as raw float64 columns. */
export class ColumnExchange extends Float64Exchange<Columns, Columns> {
  /**
   * Per target, the next message, staged in place: ids from HEAD, values
   * from HEAD + COLUMN_BATCH (moved next to the ids when it goes). Reused:
   * each message is flushed as soon as it is sent, which copies it into the
   * ring (or the sender's overflow), so no fresh memory per message.
   */
  private readonly staged: Float64Array[];
  private readonly count: Int32Array;
  private readonly stagedAt: Time[];
  /** Per target: whether the staged message carries ids (values alone only in a broadcast). */
  private readonly withIds: Uint8Array;
  /** Every pair to every worker, rather than to the owner of its id. */
  private readonly everywhere: boolean;

  constructor(scope: Scope, everywhere = false) {
    super(scope, codecs.typedArray(Float64Array, { borrow: true }));
    this.everywhere = everywhere;
    this.staged = Array.from({ length: this.peers }, () => new Float64Array(HEAD + 2 * COLUMN_BATCH));
    this.count = new Int32Array(this.peers);
    this.stagedAt = new Array<Time>(this.peers).fill(-1);
    this.withIds = new Uint8Array(this.peers).fill(1);
  }

  batch(t: Time, records: ArrayLike<Columns>): void {
    const peers = this.peers;
    for (let target = 0; target < peers; target++) {
      if (this.stagedAt[target] !== t) {
        this.flush(target);
        this.stagedAt[target] = t;
      }
    }
    const staged = this.staged;
    const count = this.count;
    for (let r = 0; r < records.length; r++) {
      const { ids, values } = records[r]!;
      if (this.everywhere) {
        if (ids.length !== values.length && ids.length !== 0) throw new DataflowError(`broadcastColumns: ${ids.length} ids but ${values.length} values (give as many, or none)`);
        for (let target = 0; target < peers; target++) this.copy(target, ids.length === 0 && values.length > 0 ? undefined : ids, values);
        continue;
      }
      if (ids.length !== values.length) throw new DataflowError(`exchangeColumns: ${ids.length} ids but ${values.length} values`);
      // The hot loop of every numeric exchange: ids below 2^31 take an
      // integer modulo (a float one costs several times more), others the
      // checked path.
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        let target: number;
        if ((id | 0) === id && id >= 0) target = (id | 0) % peers;
        else if (Number.isInteger(id) && id > 0 && id < 2 ** 53) target = id % peers;
        else throw new DataflowError(`exchangeColumns: ids are integers >= 0 (< 2^53), got ${id}`);
        const n = count[target]!;
        const m = staged[target]!;
        m[HEAD + n] = id;
        m[HEAD + COLUMN_BATCH + n] = values[i]!;
        count[target] = n + 1;
        if (n + 1 === COLUMN_BATCH) this.flush(target);
      }
    }
  }

  /** Stages all of ids (none: values alone) and values for `target`, in whole runs (a broadcast needs no routing). */
  private copy(target: number, ids: Float64Array | undefined, values: Float64Array): void {
    const m = this.staged[target]!;
    const withIds = ids === undefined ? 0 : 1;
    if (this.withIds[target] !== withIds) {
      this.flush(target);
      this.withIds[target] = withIds;
    }
    for (let from = 0; from < values.length; ) {
      const n = this.count[target]!;
      const take = Math.min(values.length - from, COLUMN_BATCH - n);
      if (ids !== undefined) m.set(ids.subarray(from, from + take), HEAD + n);
      m.set(values.subarray(from, from + take), HEAD + COLUMN_BATCH + n);
      this.count[target] = n + take;
      from += take;
      if (n + take === COLUMN_BATCH) this.flush(target);
    }
  }

  protected flush(target: number, t?: Time): void {
    const n = this.count[target]!;
    if (n === 0 || (t !== undefined && this.stagedAt[target] !== t)) return;
    const m = this.staged[target]!;
    m[0] = this.self;
    m[1] = this.stagedAt[target]!;
    m[2] = DATA;
    m[3] = n;
    const withIds = this.withIds[target]!;
    m[4] = withIds;
    // Values right after the ids, or after the head when there are none.
    const ids = withIds * n;
    if (ids < COLUMN_BATCH) m.copyWithin(HEAD + ids, HEAD + COLUMN_BATCH, HEAD + COLUMN_BATCH + n);
    const push = this.pushes[target]!;
    push.send(m.subarray(0, HEAD + ids + n));
    push.flush();
    this.count[target] = 0;
  }

  protected marker(kind: number, t: Time): Float64Array {
    return Float64Array.of(this.self, t, kind, 0, 0);
  }

  protected deliver(t: Time, m: Float64Array): void {
    const n = m[3]!;
    const ids = m[4]! * n;
    this.out.batch(t, [{ ids: ids === 0 ? NO_IDS : m.subarray(HEAD, HEAD + n), values: m.subarray(HEAD + ids, HEAD + ids + n), from: m[0]! }]);
  }
}
