// The single-threaded programs bench/cost.ts measures weft/dataflow
// against, with the examples' exact outputs:
//   node bench/cost-single.ts wordcount-best <file>     byte-level table (examples/dataflow/words.ts)
//   node bench/cost-single.ts wordcount-simple <file>   latin1 string, lower case, regex, Map
//   node bench/cost-single.ts pagerank-best <edges> [--iterations 20]    byte parser, typed arrays, CSR
//   node bench/cost-single.ts pagerank-simple <edges> [--iterations 20]  text split, Map of ids, CSR
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { WordTable, top10 } from '../examples/dataflow/words.ts';
import { Column, IdMap, csr, parseEdges, topRanks } from '../examples/dataflow/graph.ts';

const D = 0.85;
const [job, file, ...rest] = process.argv.slice(2);
const at = rest.indexOf('--iterations');
const iterations = at >= 0 ? Number(rest[at + 1]) : 20;
if (file === undefined) {
  console.error('usage: cost-single.ts wordcount-best|wordcount-simple|pagerank-best|pagerank-simple <file> [--iterations n]');
  process.exit(2);
}

/**
 * Calls `use` on the file's bytes in line-aligned pieces of about 4 MiB,
 * read into one reused buffer: no 160 MB of fresh memory to touch first
 * (about 2.6 ms per MB here), which is what the dataflow's ranges avoid too.
 */
function eachPiece(use: (bytes: Uint8Array) => void): void {
  const fd = openSync(file!, 'r');
  let buffer = new Uint8Array(4 << 20);
  let kept = 0;
  for (;;) {
    if (kept === buffer.length) {
      const bigger = new Uint8Array(buffer.length * 2);
      bigger.set(buffer);
      buffer = bigger;
    }
    const n = readSync(fd, buffer, kept, buffer.length - kept, null);
    const filled = kept + n;
    if (n === 0) {
      if (filled > 0) use(buffer.subarray(0, filled));
      break;
    }
    const cut = buffer.subarray(0, filled).lastIndexOf(10) + 1;
    if (cut > 0) use(buffer.subarray(0, cut));
    buffer.copyWithin(0, cut, filled);
    kept = filled - cut;
  }
  closeSync(fd);
}

function wordcountBest(): unknown {
  const table = new WordTable();
  eachPiece((bytes) => table.add(bytes));
  return { distinct: table.size, total: table.total, top: top10(table.entries()) };
}

function wordcountSimple(): unknown {
  const counts = new Map<string, number>();
  let total = 0;
  for (const w of readFileSync(file!).toString('latin1').toLowerCase().match(/[a-z0-9]+/g) ?? []) {
    counts.set(w, (counts.get(w) ?? 0) + 1);
    total++;
  }
  return { distinct: counts.size, total, top: top10(counts) };
}

/** 20 iterations over dense indices; returns the output line. */
function rank(nodeIds: ArrayLike<number>, nodes: number, from: ArrayLike<number>, to: ArrayLike<number>, edges: number): unknown {
  const { offsets, targets } = csr(nodes, from, to, edges);
  let rank = new Float64Array(nodes).fill(1 / nodes);
  let next = new Float64Array(nodes);
  for (let it = 0; it < iterations; it++) {
    next.fill(0);
    for (let u = 0; u < nodes; u++) {
      const first = offsets[u]!;
      const last = offsets[u + 1]!;
      if (first === last) continue;
      const c = rank[u]! / (last - first);
      for (let e = first; e < last; e++) next[targets[e]!]! += c;
    }
    for (let v = 0; v < nodes; v++) next[v] = (1 - D) / nodes + D * next[v]!;
    [rank, next] = [next, rank];
  }
  let sum = 0;
  for (let v = 0; v < nodes; v++) sum += rank[v]!;
  return { nodes, edges, sum, top: topRanks(nodeIds, rank, nodes) };
}

function pagerankBest(): unknown {
  const src = new Column(Float64Array);
  const dst = new Column(Float64Array);
  eachPiece((bytes) => parseEdges(bytes, src, dst));
  const ids = new IdMap();
  const from = new Int32Array(src.length);
  const to = new Int32Array(src.length);
  for (let e = 0; e < src.length; e++) {
    from[e] = ids.add(src.data[e]!);
    to[e] = ids.add(dst.data[e]!);
  }
  return rank(ids.ids.data, ids.size, from, to, src.length);
}

function pagerankSimple(): unknown {
  const index = new Map<number, number>();
  const ids: number[] = [];
  const from: number[] = [];
  const to: number[] = [];
  const id = (v: number): number => {
    let i = index.get(v);
    if (i === undefined) {
      i = ids.length;
      index.set(v, i);
      ids.push(v);
    }
    return i;
  };
  for (const line of readFileSync(file!, 'latin1').split('\n')) {
    if (line === '') continue;
    const [a, b] = line.trim().split(/\s+/);
    from.push(id(Number(a)));
    to.push(id(Number(b)));
  }
  return rank(ids, ids.length, from, to, from.length);
}

const jobs: Record<string, () => unknown> = {
  'wordcount-best': wordcountBest,
  'wordcount-simple': wordcountSimple,
  'pagerank-best': pagerankBest,
  'pagerank-simple': pagerankSimple,
};
const run = jobs[job ?? ''];
if (run === undefined) {
  console.error(`unknown job ${JSON.stringify(job)}: one of ${Object.keys(jobs).join(', ')}`);
  process.exit(2);
}
console.log(JSON.stringify(run()));
