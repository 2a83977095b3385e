// Pieces the graph examples and bench/cost.ts's single-threaded PageRank
// share: an edge-list parser over bytes, and a map from node ids to dense
// indices (open addressing over typed arrays, no per-node objects).

/** Growable column of float64 (the default) or int32. */
export class Column<A extends Float64Array | Int32Array> {
  data: A;
  length = 0;
  private readonly type: new (length: number) => A;

  constructor(type: new (length: number) => A) {
    this.type = type;
    this.data = new type(1 << 12);
  }

  push(v: number): void {
    if (this.length === this.data.length) this.reserve(1);
    this.data[this.length++] = v;
  }

  /** Makes room for `n` more values, so a loop can write them into `data` past `length` (and then advance `length`). */
  reserve(n: number): void {
    if (this.length + n <= this.data.length) return;
    let size = this.data.length * 2;
    while (size < this.length + n) size *= 2;
    const bigger = new this.type(size);
    bigger.set(this.data.subarray(0, this.length));
    this.data = bigger;
  }

  view(): A {
    return this.data.subarray(0, this.length) as A;
  }
}

/**
 * Parses `src dst` lines of decimal ids (< 2^31) into two columns. Any
 * byte that is not a digit separates numbers; a line with other than two
 * numbers is an error naming it.
 */
export function parseEdges<A extends Float64Array | Int32Array>(bytes: Uint8Array, src: Column<A>, dst: Column<A>): void {
  let value = 0;
  let digits = 0;
  let onLine = 0;
  for (let i = 0; i <= bytes.length; i++) {
    const b = i < bytes.length ? bytes[i]! : 10;
    if (b >= 48 && b <= 57) {
      value = value * 10 + (b - 48);
      digits++;
      continue;
    }
    if (digits > 0) {
      if (value >= 2 ** 31) throw new Error(`edge list: id ${value} is not below 2^31`);
      if (onLine === 0) src.push(value);
      else if (onLine === 1) dst.push(value);
      onLine++;
      value = 0;
      digits = 0;
    }
    if (b === 10) {
      if (onLine !== 0 && onLine !== 2) {
        const start = bytes.lastIndexOf(10, i - 1) + 1;
        throw new Error(`edge list: a line has ${onLine} numbers, not 2: ${JSON.stringify(Buffer.from(bytes.subarray(start, i)).toString('latin1'))}`);
      }
      onLine = 0;
    }
  }
}

/**
 * Node ids (integers 0 .. 2^31 - 1) to dense indices 0, 1, 2... in
 * first-seen order. A slot is the top bits of id * 2^32/phi (Fibonacci
 * hashing): a worker's ids are all one value modulo the worker count, and
 * the low bits of the product would keep them on a fraction of the slots
 * (with 2 workers, every other one), clustering the probes.
 */
export class IdMap {
  private keys = new Int32Array(1 << 16).fill(-1);
  private values = new Int32Array(1 << 16);
  private mask = (1 << 16) - 1;
  private shift = 16;
  /** The ids in index order. */
  ids = new Column(Float64Array);

  get size(): number {
    return this.ids.length;
  }

  /** The index of `id`, added if new. */
  add(id: number): number {
    let s = Math.imul(id, 0x9e3779b1) >>> this.shift;
    for (;;) {
      const k = this.keys[s]!;
      if (k === id) return this.values[s]!;
      if (k === -1) break;
      s = (s + 1) & this.mask;
    }
    const index = this.ids.length;
    this.keys[s] = id;
    this.values[s] = index;
    this.ids.push(id);
    if (index * 2 > this.mask) this.grow();
    return index;
  }

  /** The index of `id`, or -1. */
  get(id: number): number {
    let s = Math.imul(id, 0x9e3779b1) >>> this.shift;
    for (;;) {
      const k = this.keys[s]!;
      if (k === id) return this.values[s]!;
      if (k === -1) return -1;
      s = (s + 1) & this.mask;
    }
  }

  private grow(): void {
    const keys = new Int32Array(this.keys.length * 2).fill(-1);
    const values = new Int32Array(keys.length);
    const mask = keys.length - 1;
    const shift = this.shift - 1;
    for (let s = 0; s < this.keys.length; s++) {
      const k = this.keys[s]!;
      if (k === -1) continue;
      let t = Math.imul(k, 0x9e3779b1) >>> shift;
      while (keys[t] !== -1) t = (t + 1) & mask;
      keys[t] = k;
      values[t] = this.values[s]!;
    }
    this.keys = keys;
    this.values = values;
    this.mask = mask;
    this.shift = shift;
  }
}

/** The 10 highest ranks, ties by id ascending. */
export function topRanks(ids: ArrayLike<number>, ranks: ArrayLike<number>, count = ranks.length): [number, number][] {
  const best: [number, number][] = [];
  const before = (a: [number, number], b: [number, number]): boolean => a[1] > b[1] || (a[1] === b[1] && a[0] < b[0]);
  for (let i = 0; i < count; i++) {
    const e: [number, number] = [ids[i]!, ranks[i]!];
    if (best.length === 10 && !before(e, best[9]!)) continue;
    let j = best.length === 10 ? 9 : best.length;
    while (j > 0 && before(e, best[j - 1]!)) j--;
    best.splice(j, 0, e);
    if (best.length > 10) best.pop();
  }
  return best;
}

/** CSR out-edges over dense indices: targets of node u are targets[offsets[u] .. offsets[u + 1]). */
export function csr(nodes: number, from: ArrayLike<number>, to: ArrayLike<number>, edges: number): { offsets: Int32Array; targets: Int32Array } {
  const offsets = new Int32Array(nodes + 1);
  for (let e = 0; e < edges; e++) offsets[from[e]! + 1]!++;
  for (let u = 0; u < nodes; u++) offsets[u + 1]! += offsets[u]!;
  const fill = offsets.slice(0, nodes);
  const targets = new Int32Array(edges);
  for (let e = 0; e < edges; e++) targets[fill[from[e]!]!++] = to[e]!;
  return { offsets, targets };
}
