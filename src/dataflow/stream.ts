// Stream: the handle a user builds a dataflow with. Each method adds an
// operator reading this stream and returns the stream of its output.
// Pipeline operators (map, filter, flatMap, inspect, unary) run on the
// worker that holds the record; exchange, reduceByKey, join and
// exchangeColumns move records between workers (exchange.ts).

import { DataflowError, Output, type Emitter, type Scope, type Sink, type Time } from './core.ts';
import { ColumnExchange, RecordExchange, type ColumnArray, type Columns } from './exchange.ts';
import { ByteSumExchange, type ByteSums } from './bytes.ts';
import { KeyMap, owner } from './hash.ts';

/** A stateful operator's logic: what to do with each batch, when a time closes, at the end. */
export interface UnaryLogic<T, R> {
  batch(t: Time, records: ArrayLike<T>, out: Emitter<R>): void;
  /** Time t is complete on this operator's input: emit what it owes for t (at t) now. */
  close?(t: Time, out: Emitter<R>): void;
  end?(out: Emitter<R>): void;
}

/** Options of reduceByKey. */
export interface ReduceOptions {
  /** Combine on the sending worker before the exchange (default true): one record per key and worker crosses, not one per record. */
  combiner?: boolean;
}

export class Stream<T> {
  readonly scope: Scope;
  /** Where this stream's records come from. */
  readonly output: Output<T>;
  /** Inside a loop's body (loops do not nest). */
  readonly inLoop: boolean;

  constructor(scope: Scope, output: Output<T>, inLoop = false) {
    this.scope = scope;
    this.output = output;
    this.inLoop = inLoop;
  }

  /** Adds a reader of this stream. */
  connect(sink: Sink<T>): void {
    this.output.sinks.push(sink);
  }

  private derive<R>(output: Output<R>): Stream<R> {
    return new Stream(this.scope, output, this.inLoop);
  }

  /** A stateful operator on this worker: `logic` sees every batch and every time's completion. */
  unary<R>(logic: UnaryLogic<T, R>): Stream<R> {
    const out = new Output<R>();
    this.connect({
      batch: (t, records) => logic.batch(t, records, out),
      close: (t) => {
        logic.close?.(t, out);
        out.close(t);
      },
      end: () => {
        logic.end?.(out);
        out.end();
      },
    });
    return this.derive(out);
  }

  map<R>(f: (record: T) => R): Stream<R> {
    return this.unary<R>({ batch: (t, records, out) => out.batch(t, Array.prototype.map.call(records, (r: T) => f(r)) as R[]) });
  }

  filter(keep: (record: T) => boolean): Stream<T> {
    return this.unary<T>({ batch: (t, records, out) => out.batch(t, Array.prototype.filter.call(records, (r: T) => keep(r)) as T[]) });
  }

  flatMap<R>(f: (record: T) => Iterable<R>): Stream<R> {
    return this.unary<R>({
      batch: (t, records, out) => {
        const all: R[] = [];
        for (let i = 0; i < records.length; i++) for (const r of f(records[i]!)) all.push(r);
        out.batch(t, all);
      },
    });
  }

  /** Calls `f` on every record with its time, and passes the records on unchanged. */
  inspect(f: (record: T, t: Time) => void): Stream<T> {
    return this.unary<T>({
      batch: (t, records, out) => {
        for (let i = 0; i < records.length; i++) f(records[i]!, t);
        out.batch(t, records);
      },
    });
  }

  /** Calls `f` once per time when it is complete on this stream (every worker's records of t have passed). */
  onClose(f: (t: Time) => void): Stream<T> {
    return this.unary<T>({ batch: (t, records, out) => out.batch(t, records), close: (t) => f(t) });
  }

  /** Records to the worker owning `key(record)` (integers by value, others by hash). */
  exchange(key: (record: T) => unknown): Stream<T> {
    const peers = this.scope.peers;
    const x = new RecordExchange<T>(this.scope, (r) => owner(key(r), peers));
    this.connect(x);
    return this.derive(x.out);
  }

  /** Every record to every worker. */
  broadcast(): Stream<T> {
    const x = new RecordExchange<T>(this.scope, undefined);
    this.connect(x);
    return this.derive(x.out);
  }

  /**
   * (id, value) columns to the worker owning each id (id % peers), crossing
   * as their raw bytes (int32 columns in half the bytes of float64 ones) and
   * arriving as arrays of the types they were sent as.
   */
  exchangeColumns<I extends ColumnArray, V extends ColumnArray>(this: Stream<Columns<I, V>>): Stream<Columns<I, V>> {
    const x = new ColumnExchange<I, V>(this.scope);
    this.connect(x);
    return this.derive(x.out);
  }

  /**
   * One [key, sum] per byte-string key and time, emitted once the time is
   * complete on every worker, by the key's owner; keys are emitted as latin1
   * strings. `scan` adds each record's keys (`sums.add(bytes, start, end,
   * value)`) into this worker's typed tables, one per owner: they are the
   * combiner, and they cross as raw bytes, so a key becomes a string once,
   * at its owner, however often it occurs (a word count's words).
   */
  sumByBytes(scan: (record: T, sums: ByteSums) => void): Stream<[string, number]> {
    const x = new ByteSumExchange<T>(this.scope, scan);
    this.connect(x);
    return this.derive(x.out);
  }

  /**
   * Every (id, value) pair to every worker, crossing as their raw bytes
   * (ids need not be integers); a sender's columns arrive in its order, as
   * arrays of the types they were sent as.
   * Columns with empty ids send their values alone (they arrive with empty
   * ids).
   */
  broadcastColumns<I extends ColumnArray, V extends ColumnArray>(this: Stream<Columns<I, V>>): Stream<Columns<I, V>> {
    const x = new ColumnExchange<I, V>(this.scope, true);
    this.connect(x);
    return this.derive(x.out);
  }

  /** This stream and `others` as one: a time closes once it closed on all of them. */
  concat(...others: Stream<T>[]): Stream<T> {
    const inputs = [this, ...others];
    for (const s of inputs) if (s.scope !== this.scope || s.inLoop !== this.inLoop) throw new DataflowError('concat joins streams of one scope, all inside or all outside a loop');
    const out = new Output<T>();
    const closes = new Map<Time, number>();
    let ends = 0;
    for (const s of inputs) {
      s.connect({
        batch: (t, records) => out.batch(t, records),
        close: (t) => {
          const n = (closes.get(t) ?? 0) + 1;
          if (n === inputs.length) {
            closes.delete(t);
            out.close(t);
          } else closes.set(t, n);
        },
        end: () => {
          if (++ends < inputs.length) return;
          // An ended input has closed every time.
          for (const t of closes.keys()) out.close(t);
          out.end();
        },
      });
    }
    return this.derive(out);
  }

  /**
   * One [key, value] per key and time, the values of its records combined,
   * emitted once the time is complete on every worker, by the key's owner.
   */
  reduceByKey<K, V>(key: (record: T) => K, value: (record: T) => V, combine: (a: V, b: V) => V, options: ReduceOptions = {}): Stream<[K, V]> {
    const pairs = options.combiner === false ? this.map((r): [K, V] => [key(r), value(r)]) : this.unary(fold(key, value, combine));
    return pairs.exchange((p) => p[0]).unary(fold((p) => p[0], (p) => p[1], combine));
  }

  /**
   * Symmetric hash join: every pair (a, b) with equal keys and equal times,
   * emitted as soon as both have arrived, at the worker owning the key.
   */
  join<U, K>(other: Stream<U>, key: (record: T) => K, otherKey: (record: U) => K): Stream<[T, U]> {
    if (other.inLoop !== this.inLoop) throw new DataflowError('join takes two streams both inside or both outside a loop');
    const left = this.exchange(key);
    const right = other.exchange(otherKey);
    const out = new Output<[T, U]>();
    const state = new Map<Time, { a: KeyMap<K, T[]>; b: KeyMap<K, U[]>; closed: number }>();
    const at = (t: Time) => {
      let s = state.get(t);
      if (s === undefined) state.set(t, (s = { a: new KeyMap(), b: new KeyMap(), closed: 0 }));
      return s;
    };
    let ends = 0;
    const closeOne = (t: Time): void => {
      const s = at(t);
      if (++s.closed < 2) return;
      state.delete(t);
      out.close(t);
    };
    const endOne = (): void => {
      if (++ends < 2) return;
      for (const t of [...state.keys()]) {
        state.delete(t);
        out.close(t);
      }
      out.end();
    };
    left.connect({
      batch: (t, records) => {
        const s = at(t);
        const found: [T, U][] = [];
        for (let i = 0; i < records.length; i++) {
          const a = records[i]!;
          const k = key(a);
          for (const b of s.b.get(k) ?? []) found.push([a, b]);
          s.a.at(k, () => []).push(a);
        }
        out.batch(t, found);
      },
      close: closeOne,
      end: endOne,
    });
    right.connect({
      batch: (t, records) => {
        const s = at(t);
        const found: [T, U][] = [];
        for (let i = 0; i < records.length; i++) {
          const b = records[i]!;
          const k = otherKey(b);
          for (const a of s.a.get(k) ?? []) found.push([a, b]);
          s.b.at(k, () => []).push(b);
        }
        out.batch(t, found);
      },
      close: closeOne,
      end: endOne,
    });
    return this.derive(out);
  }

  /** Every record this worker sees, in arrival order (read it after the dataflow ran). */
  collect(): T[] {
    const all: T[] = [];
    this.connect({
      batch: (_t, records) => {
        for (let i = 0; i < records.length; i++) all.push(records[i]!);
      },
      close: () => {},
      end: () => {},
    });
    return all;
  }
}

/** Combines records per key and time, emitting each key once when its time closes. */
function fold<T, K, V>(key: (r: T) => K, value: (r: T) => V, combine: (a: V, b: V) => V): UnaryLogic<T, [K, V]> {
  const tables = new Map<Time, KeyMap<K, V>>();
  return {
    batch(t, records) {
      let table = tables.get(t);
      if (table === undefined) tables.set(t, (table = new KeyMap()));
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!;
        table.merge(key(r), value(r), combine);
      }
    },
    close(t, out) {
      const table = tables.get(t);
      if (table === undefined) return;
      tables.delete(t);
      let chunk: [K, V][] = [];
      for (const entry of table.entries()) {
        chunk.push(entry);
        if (chunk.length === 1024) {
          out.batch(t, chunk);
          chunk = [];
        }
      }
      out.batch(t, chunk);
    },
  };
}
