// PageRank on weft/dataflow. Worker w owns the nodes whose id % workers is
// w. The edge list is cut into ranges taken by whichever worker is free,
// parsed into (src, dst) columns and sent to src's owner, which builds a CSR
// of its out-edges over the distinct destinations it reaches; it tells each
// destination's owner the node exists (once per node and worker). Then 20
// iterations of a loop: each owner turns its ranks into contributions,
// summed per destination on its own worker first (the combiner), which
// cross as raw float64 columns to the destination's owner.
//   node examples/dataflow/pagerank.ts <edges> -w <threads> --iterations 20   (after npm run build)
//   npx tsx examples/dataflow/pagerank.ts <edges> -w <threads> --iterations 20
// The last line of stdout is {"nodes": n, "edges": m, "sum": s, "top": [[id, rank], ...]}.
import { Config, initialize } from 'weft';
import { dataflow, iterate, iterationOf, readFile, type Columns } from 'weft/dataflow';
import { Column, IdMap, csr, parseEdges, topRanks } from './graph.ts';

const D = 0.85;

interface Part {
  sum: number;
  top: [number, number][];
}
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
  // This worker's part of the graph, built as the dataflow runs.
  const src = new Column();
  const dst = new Column();
  const nodes = new IdMap();
  const reached = new IdMap();
  let graph: { offsets: Int32Array; targets: Int32Array } | undefined;
  // Per sender: the local index of each destination it registered, in its
  // order. Its contributions come in that same order every iteration
  // (columns keep a sender's order), so they need no id lookups.
  const order: Column[] = Array.from({ length: allocator.peers }, () => new Column());
  const cursor = new Int32Array(allocator.peers);
  // Parsing reuses two columns: exchangeColumns copies them at once.
  const parsedSrc = new Column();
  const parsedDst = new Column();
  let n = 0;
  let m = 0;

  const parts = dataflow(allocator, (scope) => {
    const edges = readFile(scope, file)
      .map((bytes): Columns => {
        parsedSrc.length = 0;
        parsedDst.length = 0;
        parseEdges(bytes, parsedSrc, parsedDst);
        return { ids: parsedSrc.view(), values: parsedDst.view() };
      })
      .exchangeColumns();
    const registered = edges
      .unary<Columns>({
        batch: (_t, records) => {
          for (const r of Array.from(records)) {
            for (let i = 0; i < r.ids.length; i++) {
              src.push(nodes.add(r.ids[i]!));
              dst.push(reached.add(r.values[i]!));
            }
          }
        },
        close: (t, out) => {
          graph = csr(nodes.size, src.data, dst.data, src.length);
          out.batch(t, [{ ids: reached.ids.view(), values: new Float64Array(reached.size) }]);
        },
      })
      .exchangeColumns();
    const sizes = registered
      .unary<[number, number]>({
        batch: (_t, records) => {
          for (const r of Array.from(records)) {
            const into = order[r.from!]!;
            for (let i = 0; i < r.ids.length; i++) into.push(nodes.add(r.ids[i]!));
          }
        },
        close: (t, out) => out.batch(t, [[nodes.size, src.length]]),
      })
      .broadcast()
      .unary<Columns>({
        batch: (_t, records) => {
          for (const [nodeCount, edgeCount] of Array.from(records)) {
            n += nodeCount;
            m += edgeCount;
          }
        },
      });
    const result = iterate(sizes, iterations + 1, (inner) => {
      let rank = new Float64Array(0);
      let sums = new Float64Array(0);
      let out = new Float64Array(0);
      const step = inner.unary<Step>({
        batch: (_t, records) => {
          for (const r of Array.from(records)) {
            const into = order[r.from!]!.data;
            let at = cursor[r.from!]!;
            const values = r.values;
            for (let i = 0; i < values.length; i++) sums[into[at++]!]! += values[i]!;
            cursor[r.from!] = at;
          }
        },
        close: (t, emit) => {
          const i = iterationOf(t);
          if (i === 0) {
            rank = new Float64Array(nodes.size).fill(1 / n);
            sums = new Float64Array(nodes.size);
            out = new Float64Array(reached.size);
          } else {
            for (let v = 0; v < rank.length; v++) rank[v] = (1 - D) / n + D * sums[v]!;
            sums.fill(0);
          }
          cursor.fill(0);
          if (i === iterations) {
            let sum = 0;
            for (let v = 0; v < rank.length; v++) sum += rank[v]!;
            emit.batch(t, [{ part: { sum, top: topRanks(nodes.ids.data, rank, nodes.size) } }]);
            return;
          }
          const { offsets, targets } = graph!;
          out.fill(0);
          for (let u = 0; u < offsets.length - 1; u++) {
            const first = offsets[u]!;
            const last = offsets[u + 1]!;
            if (first === last) continue;
            const c = rank[u]! / (last - first);
            for (let e = first; e < last; e++) out[targets[e]!]! += c;
          }
          emit.batch(t, [{ cols: { ids: reached.ids.data.subarray(0, reached.size), values: out } }]);
        },
      });
      return {
        feedback: step.filter((s) => 'cols' in s).map((s) => (s as { cols: Columns }).cols).exchangeColumns(),
        result: step.filter((s) => 'part' in s).map((s) => (s as { part: Part }).part),
      };
    });
    return result.exchange(() => 0).collect();
  });
  if (allocator.index !== 0) return undefined;
  let sum = 0;
  for (const p of parts) sum += p.sum;
  return { nodes: n, edges: m, sum, top: topRanks(parts.flatMap((p) => p.top).map((e) => e[0]), parts.flatMap((p) => p.top).map((e) => e[1])) };
});
// In a cluster (weft launch), the process holding worker 0 prints the answer.
const answer = (await guards.join()).find((r) => r !== undefined);
if (answer !== undefined) console.log(JSON.stringify(answer));
