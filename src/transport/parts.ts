// A payload given in parts (a msgpack batch's body and the large binary
// fields that follow it, codec-msgpack's Detached), laid end to end once,
// where it lands: a slab chunk, a ring frame, or one buffer. Both layers use
// it: the outbox as it frames a batch, and the codec when a batch is wanted
// whole (a worker's return value, a task's outputs). It has a file of its
// own so that the codec, which every thread loads at start-up, does not
// bring the outbox along into the start-up chunk (build.mjs).

/** A payload given in parts, as one buffer. */
export function concat(given: Uint8Array | Uint8Array[], length = Array.isArray(given) ? given.reduce((n, p) => n + p.length, 0) : given.length): Uint8Array {
  if (!Array.isArray(given)) return given;
  if (given.length === 1) return given[0]!;
  return layOut(given, new Uint8Array(length));
}

/** Copies `parts` end to end into `into`. */
export function layOut(parts: Uint8Array | Uint8Array[], into: Uint8Array): Uint8Array {
  if (!Array.isArray(parts)) {
    into.set(parts);
    return into;
  }
  let at = 0;
  for (const p of parts) {
    into.set(p, at);
    at += p.length;
  }
  return into;
}
