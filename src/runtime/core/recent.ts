// A map that keeps the `limit` keys used most recently: past it, the one
// used longest ago goes. A Map iterates in insertion order, so a hit moves
// its key to the end (delete, then set) and the first key is the one to go.
// Insertion order alone would drop a key still in use (a long-running
// directive's trace context) once `limit` later keys had come.

export class Recent<K, V> {
  private readonly map = new Map<K, V>();

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.map.size;
  }

  /** The value of `key`, which counts as used now. */
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }

  /** `key` is `value` from now on, and counts as used now. */
  set(key: K, value: V): void {
    if (!this.map.delete(key) && this.map.size >= this.limit) this.map.delete(this.map.keys().next().value!);
    this.map.set(key, value);
  }
}
