// A byte-level word counter: a word is a maximal run of ASCII letters and
// digits, A-Z folded to a-z. Words are hashed and compared as bytes in an
// open-addressing table; a string is made once per distinct word, never per
// occurrence. bench/cost.ts's best single-threaded program counts with
// WordTable; the word count example shares its byte classes (FOLD) and
// top10, and counts with the layer's sumByBytes addTokens, which folds,
// hashes and probes as WordTable does: the COST ratio measures the runtime,
// not a slower tokenizer.

/** Per byte: 0 for a separator, else the byte folded to lower case (sumByBytes' addTokens takes it as it is). */
export const FOLD = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  if ((b >= 48 && b <= 57) || (b >= 97 && b <= 122)) FOLD[b] = b;
  else if (b >= 65 && b <= 90) FOLD[b] = b + 32;
}

export class WordTable {
  private slots = new Int32Array(1 << 16);
  private mask = (1 << 16) - 1;
  private hashes = new Int32Array(1 << 15);
  private starts = new Int32Array(1 << 15);
  private lengths = new Int32Array(1 << 15);
  private tallies = new Float64Array(1 << 15);
  private arena = new Uint8Array(1 << 20);
  private used = 0;
  /** Distinct words. */
  size = 0;
  /** Word occurrences. */
  total = 0;
  /** The word being read (folded), when a chunk ends inside one. */
  private word = new Uint8Array(256);

  /** Counts the words of `bytes` (a word never spans two calls: pass whole lines). */
  add(bytes: Uint8Array): void {
    const n = bytes.length;
    let word = this.word;
    let i = 0;
    while (i < n) {
      let c = FOLD[bytes[i]!]!;
      if (c === 0) {
        i++;
        continue;
      }
      let len = 0;
      let h = 0x811c9dc5;
      do {
        if (len === word.length) {
          const bigger = new Uint8Array(word.length * 2);
          bigger.set(word);
          this.word = word = bigger;
        }
        word[len++] = c;
        h = Math.imul(h ^ c, 0x01000193);
        i++;
      } while (i < n && (c = FOLD[bytes[i]!]!) !== 0);
      this.count(word, len, h, 1);
    }
  }

  /** Adds `tally` occurrences of word[0..len) with hash h. */
  private count(word: Uint8Array, len: number, h: number, tally: number): void {
    this.total += tally;
    const mask = this.mask;
    let s = h & mask;
    for (;;) {
      const e = this.slots[s]!;
      if (e === 0) break;
      const k = e - 1;
      if (this.hashes[k] === h && this.lengths[k] === len) {
        const start = this.starts[k]!;
        let j = 0;
        while (j < len && this.arena[start + j] === word[j]) j++;
        if (j === len) {
          this.tallies[k]! += tally;
          return;
        }
      }
      s = (s + 1) & mask;
    }
    const k = this.size++;
    if (k === this.hashes.length) this.growEntries();
    if (this.used + len > this.arena.length) {
      const bigger = new Uint8Array(Math.max(this.arena.length * 2, this.used + len));
      bigger.set(this.arena.subarray(0, this.used));
      this.arena = bigger;
    }
    this.arena.set(word.subarray(0, len), this.used);
    this.starts[k] = this.used;
    this.lengths[k] = len;
    this.hashes[k] = h;
    this.tallies[k] = tally;
    this.used += len;
    this.slots[s] = k + 1;
    if (this.size * 2 > mask) this.rehash();
  }

  private growEntries(): void {
    const grow = <A extends Int32Array | Float64Array>(a: A): A => {
      const b = new (a.constructor as new (n: number) => A)(a.length * 2);
      b.set(a);
      return b;
    };
    this.hashes = grow(this.hashes);
    this.starts = grow(this.starts);
    this.lengths = grow(this.lengths);
    this.tallies = grow(this.tallies);
  }

  private rehash(): void {
    const slots = new Int32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    for (let k = 0; k < this.size; k++) {
      let s = this.hashes[k]! & mask;
      while (slots[s] !== 0) s = (s + 1) & mask;
      slots[s] = k + 1;
    }
    this.slots = slots;
    this.mask = mask;
  }

  /** Every distinct word with its count. */
  *entries(): Generator<[string, number]> {
    for (let k = 0; k < this.size; k++) {
      yield [Buffer.from(this.arena.buffer, this.starts[k]!, this.lengths[k]!).toString('latin1'), this.tallies[k]!];
    }
  }
}

/** The 10 most frequent words, ties by word ascending. */
export function top10(entries: Iterable<[string, number]>): [string, number][] {
  const best: [string, number][] = [];
  const before = (a: [string, number], b: [string, number]): boolean => a[1] > b[1] || (a[1] === b[1] && a[0] < b[0]);
  for (const e of entries) {
    if (best.length === 10 && !before(e, best[9]!)) continue;
    let i = best.length === 10 ? 9 : best.length;
    while (i > 0 && before(e, best[i - 1]!)) i--;
    best.splice(i, 0, e);
    if (best.length > 10) best.pop();
  }
  return best;
}
