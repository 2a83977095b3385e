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

/**
 * Open addressing straight over the entries: slot s is four int32s, [hash,
 * length, count, where its bytes start in the arena + 1] (0: empty), 16
 * bytes in one cache line. A word is compared in place, folded as it is
 * read, and copied into the arena only when it is new. The corpus's words
 * mostly miss the cache (a Zipf tail over 170 000 distinct words), so what
 * a probe costs is the lines it touches: two here (slot, arena), against
 * six with the slot array, hashes, lengths, starts, tallies and arena apart
 * (that layout ran 1.35-1.45x slower on 40 MB of the bench's corpus).
 * Counts are read as uint32 and the table refuses a 2^32nd word (a file
 * of 8 GiB could hold that many), rather than let a count wrap.
 */
export class WordTable {
  private cells = new Int32Array(4 << 16);
  private mask = (1 << 16) - 1;
  private arena = new Uint8Array(1 << 20);
  private used = 0;
  /** Distinct words. */
  size = 0;
  /** Word occurrences. */
  total = 0;

  /** Counts the words of `bytes` (a word never spans two calls: pass whole lines). */
  add(bytes: Uint8Array): void {
    const n = bytes.length;
    let i = 0;
    while (i < n) {
      let c = FOLD[bytes[i]!]!;
      if (c === 0) {
        i++;
        continue;
      }
      const start = i;
      let h = 0x811c9dc5;
      do {
        h = Math.imul(h ^ c, 0x01000193);
        i++;
      } while (i < n && (c = FOLD[bytes[i]!]!) !== 0);
      this.count(bytes, start, i, h);
    }
  }

  /** Adds one occurrence of the word bytes[start .. end) (folded as read) with hash h. */
  private count(bytes: Uint8Array, start: number, end: number, h: number): void {
    if (++this.total > 0xffff_ffff) throw new RangeError('WordTable counts at most 2^32 - 1 words');
    const len = end - start;
    const cells = this.cells;
    const mask = this.mask;
    let s = h & mask;
    for (;;) {
      const k = s << 2;
      const at = cells[k + 3]!;
      if (at === 0) break;
      if (cells[k] === h && cells[k + 1] === len) {
        const arena = this.arena;
        const from = at - 1 - start;
        let j = start;
        while (j < end && arena[from + j] === FOLD[bytes[j]!]) j++;
        if (j === end) {
          cells[k + 2]!++;
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
    for (let j = 0; j < len; j++) arena[this.used + j] = FOLD[bytes[start + j]!]!;
    const k = s << 2;
    cells[k] = h;
    cells[k + 1] = len;
    cells[k + 2] = 1;
    cells[k + 3] = this.used + 1;
    this.used += len;
    if (++this.size * 2 > mask) this.rehash();
  }

  private rehash(): void {
    const old = this.cells;
    const cells = new Int32Array(old.length * 2);
    const mask = cells.length / 4 - 1;
    for (let k = 0; k < old.length; k += 4) {
      if (old[k + 3] === 0) continue;
      let s = old[k]! & mask;
      while (cells[(s << 2) + 3] !== 0) s = (s + 1) & mask;
      cells.set(old.subarray(k, k + 4), s << 2);
    }
    this.cells = cells;
    this.mask = mask;
  }

  /** Every distinct word with its count. */
  *entries(): Generator<[string, number]> {
    const text = Buffer.from(this.arena.buffer, 0, this.used);
    const cells = this.cells;
    for (let k = 0; k < cells.length; k += 4) {
      const at = cells[k + 3]!;
      if (at !== 0) yield [text.toString('latin1', at - 1, at - 1 + cells[k + 1]!), cells[k + 2]! >>> 0];
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
