// Word count on weft/dataflow: the file is cut into line-aligned ranges
// taken by whichever worker is free; each worker adds its words into typed
// tables per owner (sumByBytes: the combiner; addTokens reads the words of a
// range in one loop), which cross as raw bytes to each word's owner, and
// worker 0 gathers the totals and the top 10.
//   node examples/dataflow/wordcount.ts <file> -w <threads>      (after npm run build)
//   npx tsx examples/dataflow/wordcount.ts <file> -w <threads>
// --simple: one string record per word into reduceByKey (its own combiner);
// --no-combiner: the same with every word crossing to its owner.
// The last line of stdout is {"distinct": D, "total": T, "top": [[word, count], ...]}.
import { Config, initialize } from 'weft';
import { dataflow, readFile, type Stream } from 'weft/dataflow';
import { FOLD, top10 } from './words.ts';

interface Summary {
  distinct: number;
  total: number;
  top: [string, number][];
}

const { config, rest } = Config.fromArgs();
const file = rest.find((a) => !a.startsWith('--'));
if (file === undefined) {
  console.error('usage: wordcount.ts <file> -w <threads> [--simple | --no-combiner]');
  process.exit(2);
}
const mode = rest.includes('--no-combiner') ? 'none' : rest.includes('--simple') ? 'simple' : 'table';

const WORD = /[a-z0-9]+/g;

const guards = await initialize(config, (allocator) => {
  const summary = dataflow(allocator, (scope) => {
    const chunks = readFile(scope, file);
    let counts: Stream<[string, number]>;
    if (mode === 'table') {
      counts = chunks.sumByBytes((bytes, sums) => sums.addTokens(bytes, FOLD, 1));
    } else {
      counts = chunks
        .flatMap((bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1').toLowerCase().match(WORD) ?? [])
        .reduceByKey((w) => w, () => 1, (a, b) => a + b, { combiner: mode === 'simple' });
    }
    const local: Summary = { distinct: 0, total: 0, top: [] };
    const all: Summary[] = counts
      .unary<Summary>({
        batch: (_t, pairs) => {
          for (let i = 0; i < pairs.length; i++) {
            local.distinct++;
            local.total += pairs[i]![1];
          }
          local.top = top10([...local.top, ...Array.from(pairs)]);
        },
        close: (t, out) => out.batch(t, [local]),
      })
      .exchange(() => 0)
      .collect();
    return all;
  });
  // What crossed to other workers, ring and slab alike (the channels' counters; not messages to itself).
  const sent = allocator.stats().channels.reduce((n, c) => (c.peer === allocator.index ? n : n + c.sentBytes), 0);
  if (allocator.index !== 0) return { summary: undefined, sent };
  const merged: Summary = { distinct: 0, total: 0, top: top10(summary.flatMap((s) => s.top)) };
  for (const s of summary) {
    merged.distinct += s.distinct;
    merged.total += s.total;
  }
  return { summary: merged, sent };
});
// In a cluster (weft launch), each process joins its own workers: the one
// holding worker 0 prints the answer.
const results = await guards.join();
console.error(`bytes between workers: ${results.reduce((n, r) => n + r.sent, 0)}`);
const answer = results.find((r) => r.summary !== undefined);
if (answer !== undefined) console.log(JSON.stringify(answer.summary));
