// Connected components on weft/dataflow (examples/dataflow/cc.ts), from an
// edge list of `src dst` lines, edges taken as undirected.
//   npx tsx examples/dataflow/components.ts <edges> -w <threads>
// The last line of stdout is {"nodes": n, "components": c, "largest": size}.
import { Config, initialize } from 'weft';
import { dataflow, readFile } from 'weft/dataflow';
import { components } from './cc.ts';
import { Column, parseEdges } from './graph.ts';

const { config, rest } = Config.fromArgs();
const file = rest.find((a) => !a.startsWith('--'));
if (file === undefined) {
  console.error('usage: components.ts <edges> -w <threads>');
  process.exit(2);
}

const guards = await initialize(config, (allocator) => {
  const sizes = dataflow(allocator, (scope) => {
    const edges = readFile(scope, file).flatMap((bytes) => {
      const src = new Column(Int32Array);
      const dst = new Column(Int32Array);
      parseEdges(bytes, src, dst);
      return Array.from(src.view(), (u, i): [number, number] => [u, dst.data[i]!]);
    });
    // Component sizes, counted at each label's owner.
    return components(edges)
      .reduceByKey((c) => c[1], () => 1, (a, b) => a + b)
      .exchange(() => 0)
      .collect();
  });
  return allocator.index === 0 ? sizes.map((c) => c[1]) : undefined;
});
// In a cluster (weft launch), the process holding worker 0 prints the answer.
const sizes = (await guards.join()).find((s) => s !== undefined);
if (sizes !== undefined) console.log(JSON.stringify({ nodes: sizes.reduce((a, b) => a + b, 0), components: sizes.length, largest: Math.max(0, ...sizes) }));
