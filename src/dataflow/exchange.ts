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
//
// An exchange of raw numbers (columns, byte sums) keeps what it sends to
// its own worker off the channel: those messages, markers included, wait
// in a local queue that the receiving half drains as it drains the
// channel. The queue is FIFO too, so the argument above holds unchanged;
// the bytes are not copied into a ring and out again (on 1 worker, nothing
// crosses a channel at all). Records (msgpack) still take the channel to
// themselves: passed on as they are, a record kept here would arrive as the
// same object while one from another worker arrives decoded, and a program
// would see the difference only on more workers.

import { codecs, type Codec, type Pull, type Push } from '../allocator/index.ts';
import { checkSenders, DataflowError, Output, type Scope, type Sink, type Task, type Time } from './core.ts';

const DATA = 0;
const CLOSE = 1;
const END = 2;

/** The typed arrays a column can be (numbers, not bigints). */
export type ColumnArray = Float64Array | Float32Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array;

/**
 * A batch of (id, value) pairs in two parallel columns of any of the
 * numeric typed arrays (ColumnArray; float64 unless the stream says
 * otherwise); ids are integers >= 0 (< 2^53). Columns cross as their raw
 * bytes, so int32 ids and values take half the bytes of float64 ones, and
 * arrive as arrays of the types they were sent as. Received columns are
 * views (of the ring, or of a buffer the exchange reuses), valid only
 * during the operator call that receives them (copy what must live on),
 * and say which worker sent them: a sender's columns of one time arrive in
 * the order it sent them. `broadcastColumns` also takes values alone
 * (empty ids): they cross without ids and arrive with empty ids, for a
 * receiver that knows where a sender's values go from their order
 * (PageRank's contributions, each sender's in its own numbering of its
 * nodes).
 */
export interface Columns<I extends ColumnArray = Float64Array, V extends ColumnArray = Float64Array> {
  ids: I;
  values: V;
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
  private readonly pushes: Push<M>[];
  private readonly pull: Pull<M>;
  /** Messages to this worker itself kept off the channel (`local`), in the order sent. */
  private readonly queue: M[] = [];
  private readonly local: boolean;
  readonly out = new Output<O>();
  /** Per time not yet closed here: which senders have closed it (an ended sender has closed every time). */
  private readonly marks = new Map<Time, Uint8Array>();
  private readonly counts = new Map<Time, number>();
  private readonly done = new Set<Time>();
  private readonly endedBy: Uint8Array;
  private ended = 0;
  finished = false;

  /** `local`: messages to this worker itself skip the channel (only for messages that mean the same either way). */
  constructor(scope: Scope, codec: Codec<M>, local: boolean) {
    this.self = scope.index;
    this.peers = scope.peers;
    this.local = local;
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
  /** A message of the local queue was handled: its memory may be reused. */
  protected recycle(_m: M): void {}

  /**
   * Sends `m` to `target`; `now`: flushed at once (the pusher copies it out
   * before returning). A message to this worker in a local exchange is
   * queued as it is: the sender must not touch it again (recycle says when
   * it may).
   */
  protected send(target: number, m: M, now = false): void {
    if (this.local && target === this.self) {
      this.queue.push(m);
      return;
    }
    const push = this.pushes[target]!;
    push.send(m);
    if (now) push.flush();
  }

  close(t: Time): void {
    for (let target = 0; target < this.peers; target++) {
      this.flush(target, t);
      this.send(target, this.marker(CLOSE, t));
    }
  }

  end(): void {
    for (let target = 0; target < this.peers; target++) {
      this.flush(target);
      this.send(target, this.marker(END, 0));
    }
  }

  step(): boolean {
    let any = false;
    // What this worker queued for itself before this step; what its
    // deliveries queue now waits for the next, as a channel's would.
    const queued = this.queue.length;
    if (queued > 0) {
      any = true;
      const mine = this.queue.splice(0, queued);
      for (const m of mine) {
        this.handle(m);
        this.recycle(m);
      }
    }
    for (let m = this.pull.recv(); m !== undefined; m = this.pull.recv()) {
      any = true;
      this.handle(m);
    }
    if (!any && !this.finished) checkSenders(this.pull, this.peers, (sender) => this.endedBy[sender] === 1, 'exchange');
    return any;
  }

  private handle(m: M): void {
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
    super(scope, codecs.msgpack<Packet<T>>(), false);
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
    this.send(target, [this.self, this.stagedAt[target]!, DATA, s]);
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

// Columnar messages, a float64 array: [sender, time, kind, n, with ids (1
// or 0), ids' type, values' type] (types as indices in COLUMN_TYPES), then
// the ids' bytes (n of them, or none) and the values' bytes, each padded to
// 8 bytes so every column is aligned for its type. Messages of 16 384
// pairs (256 KiB at most) fit a default (1 MiB) ring whole, so they are
// lent from the ring rather than copied into fresh memory.
const HEAD = 7;
const COLUMN_BATCH = 1 << 14;

interface ColumnType {
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): ColumnArray;
  new (length: number): ColumnArray;
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
}

const COLUMN_TYPES: readonly ColumnType[] = [Float64Array, Float32Array, Int32Array, Uint32Array, Int16Array, Uint16Array, Int8Array, Uint8Array];
/** Per type: the empty column values alone arrive with. */
const EMPTY = COLUMN_TYPES.map((type) => new type(0));

/** A column's type, as messages carry it. */
function typeOf(column: ColumnArray, what: string): number {
  // instanceof rather than the constructor itself: a Buffer is a Uint8Array.
  const type = COLUMN_TYPES.findIndex((c) => column instanceof c);
  if (type < 0) throw new DataflowError(`${what}: columns are ${COLUMN_TYPES.map((c) => c.name).join(', ')}; got ${describe(column)}`);
  return type;
}

function describe(value: unknown): string {
  if (value === null || typeof value !== 'object') return String(value);
  return (value as object).constructor?.name ?? 'an object';
}

/** Bytes of n elements of a type, padded to 8. */
const padded = (n: number, type: number): number => (n * COLUMN_TYPES[type]!.BYTES_PER_ELEMENT + 7) & ~7;

/** Sends each (id, value) pair to the worker owning the id (id % peers), or to every worker, as raw columns of their own types. */
export class ColumnExchange<I extends ColumnArray, V extends ColumnArray> extends Float64Exchange<Columns<I, V>, Columns<I, V>> {
  /**
   * Per target, the next message, staged in place: ids from HEAD, values
   * from HEAD + COLUMN_BATCH (room for float64 in both; moved next to the
   * ids when it goes), in the typed views `ids` and `values`. Reused: a
   * message to another worker is copied out as it is sent; one to this
   * worker is handed to the local queue and its buffer comes back through
   * `recycle` (`spare`).
   */
  private readonly staged: Float64Array[];
  private readonly ids: ColumnArray[];
  private readonly values: ColumnArray[];
  private readonly count: Int32Array;
  private readonly stagedAt: Time[];
  /** Per target: whether the staged message carries ids (values alone only in a broadcast), and its columns' types. */
  private readonly withIds: Uint8Array;
  private readonly idType: Int8Array;
  private readonly valueType: Int8Array;
  private readonly spare: Float64Array[] = [];
  /** Every pair to every worker, rather than to the owner of its id. */
  private readonly everywhere: boolean;
  private readonly what: string;

  constructor(scope: Scope, everywhere = false) {
    super(scope, codecs.typedArray(Float64Array, { borrow: true }), true);
    this.everywhere = everywhere;
    this.what = everywhere ? 'broadcastColumns' : 'exchangeColumns';
    this.staged = Array.from({ length: this.peers }, () => new Float64Array(HEAD + 2 * COLUMN_BATCH));
    this.ids = this.staged.map((m) => new Float64Array(m.buffer, 8 * HEAD, COLUMN_BATCH));
    this.values = this.staged.map((m) => new Float64Array(m.buffer, 8 * (HEAD + COLUMN_BATCH), COLUMN_BATCH));
    this.count = new Int32Array(this.peers);
    this.stagedAt = new Array<Time>(this.peers).fill(-1);
    this.withIds = new Uint8Array(this.peers).fill(1);
    this.idType = new Int8Array(this.peers);
    this.valueType = new Int8Array(this.peers);
  }

  batch(t: Time, records: ArrayLike<Columns<I, V>>): void {
    const peers = this.peers;
    for (let target = 0; target < peers; target++) {
      if (this.stagedAt[target] !== t) {
        this.flush(target);
        this.stagedAt[target] = t;
      }
    }
    const count = this.count;
    for (let r = 0; r < records.length; r++) {
      const { ids, values } = records[r]!;
      const idType = typeOf(ids, this.what);
      const valueType = typeOf(values, this.what);
      if (this.everywhere) {
        if (ids.length !== values.length && ids.length !== 0) throw new DataflowError(`broadcastColumns: ${ids.length} ids but ${values.length} values (give as many, or none)`);
        const alone = ids.length === 0 && values.length > 0;
        for (let target = 0; target < peers; target++) {
          this.retype(target, alone ? 0 : 1, idType, valueType);
          this.copy(target, alone ? undefined : ids, values);
        }
        continue;
      }
      if (ids.length !== values.length) throw new DataflowError(`exchangeColumns: ${ids.length} ids but ${values.length} values`);
      for (let target = 0; target < peers; target++) this.retype(target, 1, idType, valueType);
      const stagedIds = this.ids;
      const stagedValues = this.values;
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
        stagedIds[target]![n] = id;
        stagedValues[target]![n] = values[i]!;
        count[target] = n + 1;
        if (n + 1 === COLUMN_BATCH) this.flush(target);
      }
    }
  }

  /** Makes the message staged for `target` one of these columns' types, sending what it holds first if it was not. */
  private retype(target: number, withIds: number, idType: number, valueType: number): void {
    if (this.withIds[target] === withIds && this.idType[target] === idType && this.valueType[target] === valueType) return;
    this.flush(target);
    this.withIds[target] = withIds;
    this.idType[target] = idType;
    this.valueType[target] = valueType;
    this.view(target);
  }

  /** The typed views of `target`'s staged message for its columns' types. */
  private view(target: number): void {
    const buffer = this.staged[target]!.buffer;
    this.ids[target] = new COLUMN_TYPES[this.idType[target]!]!(buffer, 8 * HEAD, COLUMN_BATCH);
    this.values[target] = new COLUMN_TYPES[this.valueType[target]!]!(buffer, 8 * (HEAD + COLUMN_BATCH), COLUMN_BATCH);
  }

  /** Stages all of ids (none: values alone) and values for `target`, in whole runs (a broadcast needs no routing). */
  private copy(target: number, ids: ColumnArray | undefined, values: ColumnArray): void {
    for (let from = 0; from < values.length; ) {
      const n = this.count[target]!;
      const take = Math.min(values.length - from, COLUMN_BATCH - n);
      // Same types (retype saw to it): set() copies the bytes.
      if (ids !== undefined) this.ids[target]!.set(ids.subarray(from, from + take), n);
      this.values[target]!.set(values.subarray(from, from + take), n);
      this.count[target] = n + take;
      from += take;
      if (n + take === COLUMN_BATCH) this.flush(target);
    }
  }

  protected flush(target: number, t?: Time): void {
    const n = this.count[target]!;
    if (n === 0 || (t !== undefined && this.stagedAt[target] !== t)) return;
    const m = this.staged[target]!;
    const withIds = this.withIds[target]!;
    const idType = this.idType[target]!;
    const valueType = this.valueType[target]!;
    m[0] = this.self;
    m[1] = this.stagedAt[target]!;
    m[2] = DATA;
    m[3] = n;
    m[4] = withIds;
    m[5] = idType;
    m[6] = valueType;
    // Values right after the ids (or the head when there are none).
    const idBytes = withIds === 1 ? padded(n, idType) : 0;
    const valueBytes = padded(n, valueType);
    const at = 8 * HEAD + idBytes;
    if (at < 8 * (HEAD + COLUMN_BATCH)) new Uint8Array(m.buffer).copyWithin(at, 8 * (HEAD + COLUMN_BATCH), 8 * (HEAD + COLUMN_BATCH) + valueBytes);
    this.count[target] = 0;
    const message = m.subarray(0, (at + valueBytes) / 8);
    if (target !== this.self) {
      // Copied out at once: the staged buffer is free again.
      this.send(target, message, true);
      return;
    }
    // Kept on this worker: the message is queued as it is, and the next one staged in another buffer.
    this.send(target, message);
    this.staged[target] = this.spare.pop() ?? new Float64Array(HEAD + 2 * COLUMN_BATCH);
    this.view(target);
  }

  protected override recycle(m: Float64Array): void {
    if (m.buffer.byteLength === 8 * (HEAD + 2 * COLUMN_BATCH)) this.spare.push(new Float64Array(m.buffer));
  }

  protected marker(kind: number, t: Time): Float64Array {
    return Float64Array.of(this.self, t, kind, 0, 0, 0, 0);
  }

  protected deliver(t: Time, m: Float64Array): void {
    const n = m[3]!;
    const withIds = m[4]!;
    const idType = m[5]!;
    const valueType = m[6]!;
    const base = m.byteOffset + 8 * HEAD;
    const idBytes = withIds === 1 ? padded(n, idType) : 0;
    const ids = (withIds === 1 ? new COLUMN_TYPES[idType]!(m.buffer, base, n) : EMPTY[idType]!) as I;
    const values = new COLUMN_TYPES[valueType]!(m.buffer, base + idBytes, n) as V;
    this.out.batch(t, [{ ids, values, from: m[0]! }]);
  }
}
