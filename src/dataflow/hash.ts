// Which worker owns a key. Integers go by value (consecutive ids spread
// evenly and cheaply); anything else by a 32-bit FNV-1a hash of its string
// form, so equal keys meet on one worker on every platform.

/** The worker (0 .. peers - 1) that owns `key`. */
export function owner(key: unknown, peers: number): number {
  if (typeof key === 'number' && Number.isInteger(key) && key >= 0 && key < 2 ** 53) return key % peers;
  const s = typeof key === 'string' ? key : typeof key === 'number' || typeof key === 'bigint' || typeof key === 'boolean' ? String(key) : JSON.stringify(key);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % peers;
}
