// The tasks of a lease the orchestrator has sent and not yet heard back
// from: added as each is dispatched, deleted as its answer comes, asked
// whether a task to cancel is still out, and counted to size messages.
//
// Design notes
// - Nearly every task is the first attempt of a first stage, dispatched in
//   index order and answered about a window later: those are bits of a
//   window over the indices, which slides up as the low ones are answered.
//   A Set of ids per task (add and delete for every task) was 8% of the
//   orchestrator thread's CPU on tiny tasks; a bit costs a few instructions.
// - The rest (retries, later stages, an index below the window or too far
//   above it) are a Set of their taskId. Lookups try both, so where a task
//   went never depends on how the window moved since.

import { taskId, type LeaseTaskId } from '../shared/messages.ts';

/** Words of the window at most (4 MB: 2^25 indices); a task farther out goes to the Set. */
const MAX_WORDS = 1 << 20;

export class Unanswered {
  /** Bit `i % 32` of word `i >> 5` is index `base + i`. */
  private words = new Int32Array(8);
  /** The first index of the window, a multiple of 32. */
  private base = 0;
  private bits = 0;
  private readonly others = new Set<LeaseTaskId>();

  get size(): number {
    return this.bits + this.others.size;
  }

  add(index: number, stage: number, attempt: number): void {
    if (this.others.size > 0 && this.others.has(taskId(index, stage, attempt))) return;
    const offset = this.room(index, stage, attempt);
    if (offset < 0) {
      this.others.add(taskId(index, stage, attempt));
      return;
    }
    const word = offset >>> 5;
    const bit = 1 << (offset & 31);
    if ((this.words[word]! & bit) !== 0) return;
    this.words[word]! |= bit;
    this.bits++;
  }

  /** True if the task was out (and is no more). */
  delete(index: number, stage: number, attempt: number): boolean {
    const offset = this.offsetOf(index, stage, attempt);
    if (offset >= 0) {
      const word = offset >>> 5;
      const bit = 1 << (offset & 31);
      if ((this.words[word]! & bit) !== 0) {
        this.words[word]! &= ~bit;
        this.bits--;
        return true;
      }
    }
    return this.others.size > 0 && this.others.delete(taskId(index, stage, attempt));
  }

  has(index: number, stage: number, attempt: number): boolean {
    const offset = this.offsetOf(index, stage, attempt);
    if (offset >= 0 && (this.words[offset >>> 5]! & (1 << (offset & 31))) !== 0) return true;
    return this.others.size > 0 && this.others.has(taskId(index, stage, attempt));
  }

  /** The task's offset in the window, or -1 outside it (or not a first attempt of a first stage). */
  private offsetOf(index: number, stage: number, attempt: number): number {
    if (stage !== 0 || attempt !== 0) return -1;
    const offset = index - this.base;
    return offset >= 0 && offset < this.words.length * 32 && Number.isInteger(offset) ? offset : -1;
  }

  /** The task's offset in the window, sliding or growing it to hold the index; -1 if it cannot (or it is not a first attempt of a first stage). */
  private room(index: number, stage: number, attempt: number): number {
    if (stage !== 0 || attempt !== 0 || !Number.isSafeInteger(index) || index < 0) return -1;
    if (this.bits === 0) {
      // Empty (so every word is 0 already): the window starts at this index,
      // wherever the last one was. One that grew for a task far out shrinks
      // back, or it would keep its memory for the lease's life.
      if (this.words.length > 8) this.words = new Int32Array(8);
      this.base = index - (index % 32);
    }
    const offset = index - this.base;
    if (offset < 0) return -1;
    if (offset < this.words.length * 32) return offset;
    // Slide past the words whose tasks were all answered, then grow if still short.
    let first = 0;
    while (this.words[first] === 0) first++;
    const needed = Math.floor(offset / 32) - first + 1;
    if (needed > MAX_WORDS) return -1;
    let length = this.words.length;
    while (length < needed) length *= 2;
    if (length === this.words.length) {
      this.words.copyWithin(0, first);
      this.words.fill(0, length - first);
    } else {
      const words = new Int32Array(length);
      words.set(this.words.subarray(first));
      this.words = words;
    }
    this.base += first * 32;
    return index - this.base;
  }
}
