// Work to finish before a worker thread ends: what an OpenTelemetry SDK in
// that thread still holds (a batching span processor's queue, a periodic
// metric reader's last collection). `weft/otel` registers its providers'
// forceFlush here; a worker's service loop awaits the hooks as it stops,
// after its last results have left, so a thread's spans are exported before
// its process can end it. Each wait is bounded: an exporter that hangs
// delays a thread's end by FLUSH_TIMEOUT_MS at most, and a hook that fails
// fails nothing.

/** The longest a thread's end waits for its hooks, in ms. */
export const FLUSH_TIMEOUT_MS = 2_000;

const hooks = new Set<() => unknown>();

/** Runs `hook` (awaited if it returns a promise) before this thread's worker loop ends; returns its removal. */
export function beforeThreadEnd(hook: () => unknown): () => void {
  hooks.add(hook);
  return () => hooks.delete(hook);
}

/** Runs this thread's hooks, all at once; resolves once they have settled, or after FLUSH_TIMEOUT_MS. */
export async function flushBeforeThreadEnd(): Promise<void> {
  if (hooks.size === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, FLUSH_TIMEOUT_MS)));
  const settled = Promise.allSettled([...hooks].map(async (hook) => hook()));
  await Promise.race([settled, timeout]);
  clearTimeout(timer);
}
