// Connected components by label propagation in a weft/dataflow loop: every
// node starts as its own label, and each iteration a node whose label
// dropped offers it to its neighbours; the loop ends at the first iteration
// in which no label dropped anywhere (the fixpoint). Each node's label ends
// as the smallest id in its component.
import { iterate, type Stream } from 'weft/dataflow';

/** [node, label] for every node of the undirected graph `edges`, label = the smallest id of its component. */
export function components(edges: Stream<[number, number]>, maxIterations = 100_000): Stream<[number, number]> {
  // Adjacency of the nodes this worker owns, in both directions.
  const adjacent = new Map<number, number[]>();
  const nodes = edges
    .flatMap(([u, v]): [number, number][] => [[u, v], [v, u]])
    .exchange((e) => e[0])
    .unary<[number, number]>({
      batch: (_t, records) => {
        for (const [u, v] of Array.from(records)) {
          const list = adjacent.get(u);
          if (list === undefined) adjacent.set(u, [v]);
          else list.push(v);
        }
      },
      close: (t, out) => out.batch(t, [...adjacent.keys()].map((u): [number, number] => [u, u])),
    });
  const labels = new Map<number, number>();
  const changes = iterate(nodes, maxIterations, (offers) => {
    // Per iteration: the nodes whose label dropped.
    const dropped = new Map<number, Set<number>>();
    const improved = offers.exchange((o) => o[0]).unary<[number, number]>({
      batch: (t, records) => {
        let set = dropped.get(t);
        if (set === undefined) dropped.set(t, (set = new Set()));
        for (const [u, label] of Array.from(records)) {
          const had = labels.get(u);
          if (had === undefined || label < had) {
            labels.set(u, label);
            set.add(u);
          }
        }
      },
      close: (t, out) => {
        const set = dropped.get(t);
        dropped.delete(t);
        if (set !== undefined) out.batch(t, [...set].map((u): [number, number] => [u, labels.get(u)!]));
      },
    });
    return {
      feedback: improved.flatMap(([u, label]) => (adjacent.get(u) ?? []).map((v): [number, number] => [v, label])),
      result: improved,
    };
  });
  return changes.reduceByKey((c) => c[0], (c) => c[1], Math.min);
}
