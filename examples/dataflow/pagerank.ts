// PageRank on weft/dataflow, with no hashing in the loop.
// Worker w owns the nodes whose id % workers is w: it numbers them 0, 1,
// 2... in first-seen order, counts their out-degrees and holds their
// in-edges. The edge list is cut into ranges taken by whichever worker is
// free and parsed into columns; each edge goes first to its source's owner,
// which numbers the source and counts its degree, then on to its
// destination's owner as (destination id, the source's number there): so
// every node id is hashed once per edge end, by its owner, as a single
// thread hashes it, and each in-edge knows where its source's value will
// be, (sender's offset + number), with no table of other workers' ids.
// Then 20 iterations of a loop: every owner broadcasts its nodes'
// contributions rank/outdeg as a raw float64 column, always in its
// numbering, so a receiver copies a sender's values into place
// (broadcastColumns, values alone); each owner then adds every
// contribution, in position order, into its in-edges' destinations.
//   node examples/dataflow/pagerank.ts <edges> -w <threads> --iterations 20   (after npm run build)
//   npx tsx examples/dataflow/pagerank.ts <edges> -w <threads> --iterations 20
// The last line of stdout is {"nodes": n, "edges": m, "sum": s, "top": [[id, rank], ...]}.
import { Config, initialize } from 'weft';
import { dataflow, iterate, iterationOf, readFile, type Columns } from 'weft/dataflow';
import { Column, IdMap, csr, parseEdges, topRanks } from './graph.ts';

const D = 0.85;
const NO_IDS = new Float64Array(0);

interface Part {
  sum: number;
  top: [number, number][];
}
type Edges = Columns<Int32Array, Int32Array>;
type Step = { cols: Columns } | { part: Part };

const { config, rest } = Config.fromArgs();
const file = rest.find((a) => !a.startsWith('--') && !/^\d+$/.test(a));
const at = rest.indexOf('--iterations');
const iterations = at >= 0 ? Number(rest[at + 1]) : 20;
if (file === undefined || !Number.isInteger(iterations) || iterations < 1) {
  console.error('usage: pagerank.ts <edges> -w <threads> --iterations <n >= 1>');
  process.exit(2);
}

const guards = await initialize(config, (allocator) => {
  const peers = allocator.peers;
  // This worker's part of the graph, built as the dataflow runs: its nodes
  // (numbered in first-seen order), their out-degrees, and its in-edges as
  // (destination's number, source's number at its owner * peers + owner;
  // below 2^32, as ids are below 2^31: read back unsigned).
  const nodes = new IdMap();
  const degree = new Column(Int32Array);
  const inDst = new Column(Int32Array);
  const inSrc = new Column(Int32Array);
  // Per worker: how many nodes it owns, and where its contributions start
  // in the array of all of them.
  const owned = new Int32Array(peers);
  const offset = new Int32Array(peers + 1);
  let n = 0;
  let m = 0;
  // Reused columns: exchangeColumns copies what it is given at once. Ids
  // and numbers are below 2^31: edges cross as int32 columns.
  const parsedSrc = new Column(Int32Array);
  const parsedDst = new Column(Int32Array);
  let numbers = new Int32Array(0);

  const parts = dataflow(allocator, (scope) => {
    const inEdges = readFile(scope, file)
      .map((bytes): Edges => {
        parsedSrc.length = 0;
        parsedDst.length = 0;
        parseEdges(bytes, parsedSrc, parsedDst);
        return { ids: parsedSrc.view(), values: parsedDst.view() };
      })
      .exchangeColumns()
      // At the source's owner: number the source, count its out-edge, and
      // send the edge on to its destination's owner with that number.
      .unary<Edges>({
        batch: (t, records, out) => {
          for (const { ids, values } of Array.from(records)) {
            if (numbers.length < ids.length) numbers = new Int32Array(ids.length);
            // Room for a degree per node numbered by now or in this run
            // (the stage below numbers destinations too: they start at 0).
            degree.reserve(nodes.size + ids.length - degree.length);
            const deg = degree.data;
            for (let i = 0; i < ids.length; i++) {
              const u = nodes.add(ids[i]!);
              deg[u]!++;
              numbers[i] = u;
            }
            degree.length = nodes.size;
            out.batch(t, [{ ids: values, values: numbers.subarray(0, ids.length) }]);
          }
        },
      })
      .exchangeColumns()
      .unary<Edges>({
        batch: (_t, records) => {
          for (const { ids, values, from } of Array.from(records)) {
            const at = inDst.length;
            inDst.reserve(ids.length);
            inSrc.reserve(ids.length);
            const dst = inDst.data;
            const src = inSrc.data;
            for (let i = 0; i < ids.length; i++) {
              dst[at + i] = nodes.add(ids[i]!);
              src[at + i] = values[i]! * peers + from!;
            }
            inDst.length = inSrc.length = at + ids.length;
          }
        },
      });
    const sizes = inEdges
      .unary<[number, number, number]>({
        batch: () => {},
        close: (t, out) => out.batch(t, [[allocator.index, nodes.size, inDst.length]]),
      })
      .broadcast()
      .unary<Columns>({
        batch: (_t, records) => {
          for (const [w, count, edges] of Array.from(records)) {
            owned[w] = count;
            m += edges;
          }
        },
        close: () => {
          for (let w = 0; w < peers; w++) offset[w + 1] = offset[w]! + owned[w]!;
          n = offset[peers]!;
          // Nodes first seen as destinations have no out-edges.
          degree.reserve(nodes.size - degree.length);
          degree.length = nodes.size;
        },
      });
    const result = iterate(sizes, iterations + 1, (inner) => {
      let rank = new Float64Array(0);
      let out = new Float64Array(0);
      // In-edges grouped by their source's position (offset[w] + w's
      // number for it): a run of contributions from worker w is added into
      // its sources' destinations as it arrives, so the adds overlap the
      // wait for other workers' runs and no contribution is copied. The
      // scattered adds land in this worker's nodes alone, where a gather by
      // destination would read all the graph's contributions at random (on
      // the bench's graph that took 1.5-2x as long).
      let graph: { offsets: Int32Array; targets: Int32Array } | undefined;
      // Per iteration parity, this worker's sums so far and where each
      // sender's next run starts: a worker may be one iteration ahead.
      const sums = [new Float64Array(0), new Float64Array(0)];
      const cursor = [new Int32Array(peers), new Int32Array(peers)];
      // Runs that came before this worker built its graph (another may start iteration 1 first).
      const early: [number, Columns][] = [];
      const add = (i: number, { values, from }: Columns): void => {
        const { offsets, targets } = graph!;
        const into = sums[i & 1]!;
        const at = cursor[i & 1]!;
        const first = offset[from!]! + at[from!]!;
        at[from!]! += values.length;
        for (let j = 0; j < values.length; j++) {
          const share = values[j]!;
          const last = offsets[first + j + 1]!;
          for (let e = offsets[first + j]!; e < last; e++) into[targets[e]!]! += share;
        }
      };
      const step = inner.unary<Step>({
        batch: (t, records) => {
          const i = iterationOf(t);
          for (const run of Array.from(records)) {
            if (graph === undefined) early.push([i, { ids: NO_IDS, values: run.values.slice(), from: run.from! }]);
            else add(i, run);
          }
        },
        close: (t, emit) => {
          const i = iterationOf(t);
          if (i === 0) {
            rank = new Float64Array(nodes.size).fill(1 / n);
            out = new Float64Array(nodes.size);
            sums[0] = new Float64Array(nodes.size);
            sums[1] = new Float64Array(nodes.size);
            const sources = new Int32Array(inSrc.length);
            for (let e = 0; e < inSrc.length; e++) {
              const s = inSrc.data[e]! >>> 0;
              const from = s % peers;
              sources[e] = offset[from]! + (s - from) / peers;
            }
            graph = csr(n, sources, inDst.data, inDst.length);
            for (const [j, run] of early) add(j, run);
            early.length = 0;
          } else {
            const acc = sums[i & 1]!;
            for (let v = 0; v < rank.length; v++) rank[v] = (1 - D) / n + D * acc[v]!;
            acc.fill(0);
            cursor[i & 1]!.fill(0);
          }
          if (i === iterations) {
            let sum = 0;
            for (let v = 0; v < rank.length; v++) sum += rank[v]!;
            emit.batch(t, [{ part: { sum, top: topRanks(nodes.ids.data, rank, nodes.size) } }]);
            return;
          }
          const deg = degree.data;
          for (let u = 0; u < out.length; u++) out[u] = deg[u]! > 0 ? rank[u]! / deg[u]! : 0;
          emit.batch(t, [{ cols: { ids: NO_IDS, values: out } }]);
        },
      });
      return {
        feedback: step.filter((s) => 'cols' in s).map((s) => (s as { cols: Columns }).cols).broadcastColumns(),
        result: step.filter((s) => 'part' in s).map((s) => (s as { part: Part }).part),
      };
    });
    return result.exchange(() => 0).collect();
  });
  if (allocator.index !== 0) return undefined;
  let sum = 0;
  for (const p of parts) sum += p.sum;
  const top = parts.flatMap((p) => p.top);
  return { nodes: n, edges: m, sum, top: topRanks(top.map((e) => e[0]), top.map((e) => e[1])) };
});
// In a cluster (weft launch), the process holding worker 0 prints the answer.
const answer = (await guards.join()).find((r) => r !== undefined);
if (answer !== undefined) console.log(JSON.stringify(answer));
