// Sums keyed by byte strings (sumByBytes): the combiner is a typed hash
// table per target worker, not a Map of strings, and the tables cross as
// raw bytes. A word count's words never become strings on the way: only a
// key's owner makes its string, once, when the time is complete.
//
// Each worker scans its records into one table per target worker (a key's
// owner is its FNV-1a hash modulo the worker count, so the table a key
// lands in is already its owner's). When time t closes here, the tables of
// t go to their owners as raw bytes (sums, key lengths, key bytes: below)
// and this worker's own table becomes the one the others' merge into; once t is complete (the exchange's punctuation), the owner
// emits [key, sum] for every key it owns.

import { codecs } from '../allocator/index.ts';
import { DataflowError, type Scope, type Time } from './core.ts';
import { Float64Exchange } from './exchange.ts';

/** What a `sumByBytes` scan adds its keys into: this worker's tables for the batch's time. */
export interface ByteSums {
  /** Adds `value` to the sum of the key `bytes[start .. end)` (emitted as its latin1 string). */
  add(bytes: Uint8Array, start: number, end: number, value: number): void;
  /**
   * Adds `value` to the sum of every token of `bytes[start .. end)` (default:
   * all of it): a token is a maximal run of bytes whose entry in `fold` (256
   * entries, one per byte value) is not 0, each byte replaced by its entry,
   * so a table mapping A-Z to a-z folds case. A word count's scan in one
   * loop that folds and hashes as it reads, with no call per token; a token
   * never spans two calls.
   */
  addTokens(bytes: Uint8Array, fold: Uint8Array, value: number, start?: number, end?: number): void;
}

/** FNV-1a as an int32, as the tables store it: the empty key's hash is the offset basis, above 2^31 until made one. */
function hashOf(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h | 0;
}

/** The fold that leaves every byte as it is: keys added whole, and keys merged from other tables (folded already). */
const IDENTITY = Uint8Array.from({ length: 256 }, (_, b) => b);

/** Int32s per slot: hash, key length, where the key starts in the arena + 1 (0: empty), padding; then the sum, a float64. */
const CELL = 6;

/**
 * Open addressing straight over the entries, key bytes in one arena, no
 * object per key. A slot is 24 bytes, [hash, length, start + 1, -, sum]:
 * a probe touches the slot's line and the arena's, where six typed arrays
 * side by side (slot, hashes, lengths, starts, sums, arena) cost six cache
 * lines, and most of a big table's probes miss the cache (a word count's
 * Zipf tail: that layout ran 1.35-1.45x slower). A key's slot is the top
 * bits of its hash times 2^32/phi, not its low bits: the owner is the hash
 * modulo the worker count, so the keys of one table share their low bits
 * (with 2 workers, every other slot stayed empty and probes ran 3-4x
 * longer).
 */
class Table {
  private cells = new Int32Array(CELL << 10);
  private sums = new Float64Array(this.cells.buffer);
  private mask = (1 << 10) - 1;
  private shift = 22;
  arena = new Uint8Array(1 << 12);
  used = 0;
  size = 0;

  /**
   * Adds `value` to the key bytes[start .. end), each byte read through
   * `fold` (compared folded, stored folded), whose hash (of the folded
   * bytes) is h.
   */
  add(bytes: Uint8Array, start: number, end: number, h: number, value: number, fold: Uint8Array): void {
    const len = end - start;
    const cells = this.cells;
    const mask = this.mask;
    let s = Math.imul(h, 0x9e3779b1) >>> this.shift;
    for (;;) {
      const k = s * CELL;
      const at = cells[k + 2]!;
      if (at === 0) break;
      if (cells[k] === h && cells[k + 1] === len) {
        const arena = this.arena;
        const from = at - 1 - start;
        let j = start;
        while (j < end && arena[from + j] === fold[bytes[j]!]) j++;
        if (j === end) {
          this.sums[(k >> 1) + 2]! += value;
          return;
        }
      }
      s = (s + 1) & mask;
    }
    if (this.used + len > this.arena.length) {
      const bigger = new Uint8Array(Math.max(this.arena.length * 2, this.used + len));
      bigger.set(this.arena.subarray(0, this.used));
      this.arena = bigger;
    }
    const arena = this.arena;
    for (let j = 0; j < len; j++) arena[this.used + j] = fold[bytes[start + j]!]!;
    const k = s * CELL;
    cells[k] = h;
    cells[k + 1] = len;
    cells[k + 2] = this.used + 1;
    this.sums[(k >> 1) + 2] = value;
    this.used += len;
    if (++this.size * 2 > mask) this.rehash();
  }

  /** The slots that hold a key, in slot order: what sending, merging and emitting walk. */
  keys(): Int32Array {
    const out = new Int32Array(this.size);
    const cells = this.cells;
    let n = 0;
    for (let k = 0; k < cells.length; k += CELL) if (cells[k + 2] !== 0) out[n++] = k / CELL;
    return out;
  }

  hashAt(slot: number): number {
    return this.cells[slot * CELL]!;
  }

  lengthAt(slot: number): number {
    return this.cells[slot * CELL + 1]!;
  }

  startAt(slot: number): number {
    return this.cells[slot * CELL + 2]! - 1;
  }

  sumAt(slot: number): number {
    return this.sums[slot * 3 + 2]!;
  }

  /** Adds every key of `other` into this table. */
  merge(other: Table): void {
    for (const slot of other.keys()) {
      const start = other.startAt(slot);
      this.add(other.arena, start, start + other.lengthAt(slot), other.hashAt(slot), other.sumAt(slot), IDENTITY);
    }
  }

  private rehash(): void {
    const old = this.cells;
    const cells = new Int32Array(old.length * 2);
    const mask = cells.length / CELL - 1;
    const shift = this.shift - 1;
    for (let k = 0; k < old.length; k += CELL) {
      if (old[k + 2] === 0) continue;
      let s = Math.imul(old[k]!, 0x9e3779b1) >>> shift;
      while (cells[s * CELL + 2] !== 0) s = (s + 1) & mask;
      cells.set(old.subarray(k, k + CELL), s * CELL);
    }
    this.cells = cells;
    this.sums = new Float64Array(cells.buffer);
    this.mask = mask;
    this.shift = shift;
  }
}

/** Routes each key to the table of its owner. */
class Adder implements ByteSums {
  tables: Table[] = [];
  constructor(private readonly peers: number) {}

  add(bytes: Uint8Array, start: number, end: number, value: number): void {
    checkRange('add', bytes, start, end);
    const h = hashOf(bytes, start, end);
    this.tables[this.peers === 1 ? 0 : (h >>> 0) % this.peers]!.add(bytes, start, end, h, value, IDENTITY);
  }

  addTokens(bytes: Uint8Array, fold: Uint8Array, value: number, start = 0, end = bytes.length): void {
    if (!(fold instanceof Uint8Array) || fold.length !== 256) throw new DataflowError(`sumByBytes: addTokens takes a fold table of 256 bytes (a Uint8Array), got ${fold instanceof Uint8Array ? `${fold.length} bytes` : String(fold)}`);
    checkRange('addTokens', bytes, start, end);
    const peers = this.peers;
    let i = start;
    while (i < end) {
      let c = fold[bytes[i]!]!;
      if (c === 0) {
        i++;
        continue;
      }
      const first = i;
      // FNV-1a of the folded bytes as they are read; the table compares
      // them folded in place and copies a token only when it is new.
      let h = 0x811c9dc5;
      do {
        h = Math.imul(h ^ c, 0x01000193);
        i++;
      } while (i < end && (c = fold[bytes[i]!]!) !== 0);
      this.tables[peers === 1 ? 0 : (h >>> 0) % peers]!.add(bytes, first, i, h, value, fold);
    }
  }
}

function checkRange(what: string, bytes: Uint8Array, start: number, end: number): void {
  if (!(start >= 0 && start <= end && end <= bytes.length)) throw new DataflowError(`sumByBytes: ${what}(bytes, ${start}, ${end}) is not a range of ${bytes.length} bytes`);
}

// Messages: [sender, time, kind, n, key bytes, form] as float64, then the
// n sums, the n key lengths and the key bytes, packed. The form says how
// narrow the sums and lengths could be written: sums that are all 32-bit
// integers as int32 (a word count's counts), else float64; lengths below
// 256 as one byte each, else uint32. A word count's table then crosses in
// about a key's bytes plus 5, not plus 12.
const HEAD = 6;
const INT_SUMS = 1;
const BYTE_LENGTHS = 2;
/** Keys per message: about 1 MiB of a word count's table. */
const KEYS = 1 << 16;
const EMIT = 1024;

/** Views of a message's sums, key lengths and key bytes, in the widths its form says. */
function regions(m: Float64Array, n: number, bytes: number, form: number): { sums: Int32Array | Float64Array; lengths: Uint8Array | Uint32Array; keys: Uint8Array } {
  const start = m.byteOffset + 8 * HEAD;
  const sums = form & INT_SUMS ? new Int32Array(m.buffer, start, n) : new Float64Array(m.buffer, start, n);
  const at = start + sums.byteLength;
  const lengths = form & BYTE_LENGTHS ? new Uint8Array(m.buffer, at, n) : new Uint32Array(m.buffer, at, n);
  return { sums, lengths, keys: new Uint8Array(m.buffer, at + lengths.byteLength, bytes) };
}

/** One [key, sum] per byte-string key and time, at the key's owner once the time is complete. */
export class ByteSumExchange<T> extends Float64Exchange<T, [string, number]> {
  private readonly adder: Adder;
  private readonly scan: (record: T, sums: ByteSums) => void;
  /** Per time still open here: a table per target worker. */
  private readonly staged = new Map<Time, Table[]>();
  /** Per time closed here but not complete: what this worker owns so far. */
  private readonly owned = new Map<Time, Table>();
  private scratch = new Float64Array(1 << 12);

  constructor(scope: Scope, scan: (record: T, sums: ByteSums) => void) {
    super(scope, codecs.typedArray(Float64Array, { borrow: true }), true);
    this.scan = scan;
    this.adder = new Adder(this.peers);
  }

  batch(t: Time, records: ArrayLike<T>): void {
    let tables = this.staged.get(t);
    if (tables === undefined) this.staged.set(t, (tables = Array.from({ length: this.peers }, () => new Table())));
    const adder = this.adder;
    adder.tables = tables;
    for (let i = 0; i < records.length; i++) this.scan(records[i]!, adder);
  }

  override close(t: Time): void {
    this.sendTables(t);
    super.close(t);
  }

  override end(): void {
    for (const t of [...this.staged.keys()]) this.sendTables(t);
    super.end();
  }

  /** Everything is sent at close: there is nothing staged per target besides the tables. */
  protected flush(): void {}

  /** Sends this worker's tables of time t to their owners, keeping its own. */
  private sendTables(t: Time): void {
    const tables = this.staged.get(t);
    if (tables === undefined) return;
    this.staged.delete(t);
    for (let target = 0; target < this.peers; target++) {
      const table = tables[target]!;
      if (target === this.self) this.own(t, table);
      else {
        const keys = table.keys();
        for (let first = 0; first < keys.length; first += KEYS) this.sendPart(target, t, table, keys.subarray(first, first + KEYS));
      }
    }
  }

  /** Sends the keys in `slots` of `table` to `target`, as one message. */
  private sendPart(target: number, t: Time, table: Table, slots: Int32Array): void {
    const n = slots.length;
    let bytes = 0;
    let longest = 0;
    let form = INT_SUMS;
    for (const slot of slots) {
      const len = table.lengthAt(slot);
      bytes += len;
      if (len > longest) longest = len;
      const sum = table.sumAt(slot);
      if ((sum | 0) !== sum || Object.is(sum, -0)) form = 0;
    }
    if (longest < 256) form |= BYTE_LENGTHS;
    const sumBytes = form & INT_SUMS ? 4 * n : 8 * n;
    const lengthBytes = form & BYTE_LENGTHS ? n : 4 * n;
    const words = HEAD + Math.ceil((sumBytes + lengthBytes + bytes) / 8);
    if (this.scratch.length < words) this.scratch = new Float64Array(Math.max(words, this.scratch.length * 2));
    const m = this.scratch;
    m[0] = this.self;
    m[1] = t;
    m[2] = 0; // DATA
    m[3] = n;
    m[4] = bytes;
    m[5] = form;
    const { sums, lengths, keys } = regions(m, n, bytes, form);
    let at = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i]!;
      const len = table.lengthAt(slot);
      const start = table.startAt(slot);
      sums[i] = table.sumAt(slot);
      lengths[i] = len;
      keys.set(table.arena.subarray(start, start + len), at);
      at += len;
    }
    // Sent and flushed at once (never to this worker, which keeps its own table): the message is copied out, the scratch is free again.
    this.send(target, m.subarray(0, words), true);
  }

  /** Keeps `table` as what this worker owns at t, merging the smaller into the larger. */
  private own(t: Time, table: Table): void {
    const had = this.owned.get(t);
    if (had === undefined) this.owned.set(t, table);
    else if (had.size >= table.size) had.merge(table);
    else {
      table.merge(had);
      this.owned.set(t, table);
    }
  }

  protected deliver(t: Time, m: Float64Array): void {
    const n = m[3]!;
    const { sums, lengths, keys } = regions(m, n, m[4]!, m[5]!);
    let into = this.owned.get(t);
    if (into === undefined) this.owned.set(t, (into = new Table()));
    let at = 0;
    for (let i = 0; i < n; i++) {
      const len = lengths[i]!;
      into.add(keys, at, at + len, hashOf(keys, at, at + len), sums[i]!, IDENTITY);
      at += len;
    }
  }

  protected override completing(t: Time): void {
    const table = this.owned.get(t);
    if (table === undefined) return;
    this.owned.delete(t);
    const text = Buffer.from(table.arena.buffer, table.arena.byteOffset, table.used);
    const keys = table.keys();
    for (let first = 0; first < keys.length; first += EMIT) {
      const pairs: [string, number][] = [];
      for (const slot of keys.subarray(first, first + EMIT)) {
        const start = table.startAt(slot);
        pairs.push([text.toString('latin1', start, start + table.lengthAt(slot)), table.sumAt(slot)]);
      }
      this.out.batch(t, pairs);
    }
  }

  protected marker(kind: number, t: Time): Float64Array {
    return Float64Array.of(this.self, t, kind, 0, 0, 0);
  }
}
