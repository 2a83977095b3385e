// A search that stops at the first hit: which nonce gives a SHA-256 of
// `weft` + nonce starting with four zero hex digits? Blocks of nonces run on
// worker threads as a stream; the loop leaves at the first block with a hit,
// which cancels the blocks still running (they watch ctx.signal between
// hashes, so they stop within one of them) and stops pulling the source.
//   npx tsx examples/search.ts
//
// The workers import this very script to find the operation by name; inside
// a worker the script stops at `Runtime.inMemory` (see examples/fib.ts).
import { createHash } from 'node:crypto';
import { IndexedStream, Runtime, defineOperation, progressBar } from '../src/index.ts';

const BLOCK = 20_000;
const PREFIX = '0000';

/** The first nonce of block `start` whose hash has the prefix, or null; stops early once cancelled. */
export const SearchBlock = defineOperation('examples.SearchBlock', async (start: number, ctx) => {
  for (let nonce = start; nonce < start + BLOCK; nonce++) {
    // A synchronous loop would not see its signal: yield to the event loop now and then.
    if (nonce % 1_000 === 0) {
      await new Promise((resolve) => setImmediate(resolve));
      if (ctx.signal.aborted) return null;
    }
    if (createHash('sha256').update(`weft${nonce}`).digest('hex').startsWith(PREFIX)) return nonce;
  }
  return null;
});

function* blocks(): Generator<number> {
  for (let start = 0; ; start += BLOCK) yield start;
}

const runtime = await Runtime.inMemory({ workers: 2 });
const started = performance.now();
let searched = 0;
let found: { block: number; nonce: number; ms: number } | undefined;
// On a terminal, progressBar() draws the search's progress on stderr; the
// result is printed once the loop has left, below the bar's last line.
for await (const [block, hit] of IndexedStream.from(blocks()).map(SearchBlock).stream(runtime, { maxInFlight: 4, onProgress: progressBar({ label: 'search' }) })) {
  searched++;
  if (hit === null) continue;
  found = { block, nonce: hit, ms: performance.now() - started };
  break; // cancels the blocks still running; nothing more is pulled
}
await runtime.close();
if (found !== undefined) {
  const hash = createHash('sha256').update(`weft${found.nonce}`).digest('hex');
  console.log(`nonce ${found.nonce} (block ${found.block}, ${searched} blocks done in ${found.ms.toFixed(0)} ms): ${hash}`);
}
