// Loops: connected components by label propagation ends at its fixpoint and
// equals union-find, on random graphs and worker counts; the examples'
// outputs equal the single-threaded programs' (bench/cost-single.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Config, initialize } from '../../src/index.ts';
import { corpus, graph } from '../../bench/cost-data.ts';

const fixtures = new URL('./fixtures/dataflows.ts', import.meta.url);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Each node's smallest connected id, by union-find. */
function unionFind(edges: [number, number][]): Map<number, number> {
  const parent = new Map<number, number>();
  const find = (x: number): number => {
    let root = x;
    while (parent.get(root) !== root) root = parent.get(root)!;
    while (parent.get(x) !== root) {
      const next = parent.get(x)!;
      parent.set(x, root);
      x = next;
    }
    return root;
  };
  for (const [u, v] of edges) {
    for (const x of [u, v]) if (!parent.has(x)) parent.set(x, x);
    const a = find(u);
    const b = find(v);
    if (a !== b) parent.set(Math.max(a, b), Math.min(a, b));
  }
  return new Map([...parent.keys()].map((x) => [x, find(x)]));
}

/** Runs a script under tsx and returns its last stdout line, parsed. */
function last(args: string[]): unknown {
  const r = spawnSync(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited with ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

describe('weft/dataflow loops', () => {
  it('connected components reaches its fixpoint and equals union-find', { timeout: 300_000 }, async () => {
    const edges = fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 60 })), { maxLength: 80 });
    await fc.assert(
      fc.asyncProperty(edges, fc.integer({ min: 1, max: 3 }), async (list, workers) => {
        const guards = await initialize<[number, number][]>(Config.process(workers), { module: fixtures, export: 'components', args: { edges: list } });
        const labels = (await guards.join()).flat();
        expect(new Map(labels)).toEqual(unionFind(list));
        expect(labels.length).toBe(new Set(labels.map((l) => l[0])).size);
      }),
      { numRuns: 6 },
    );
  });

  it('int32 columns around a loop reach the owner of their id at every iteration, and the loop ends when none is fed back', { timeout: 300_000 }, async () => {
    // Records a worker keeps for itself skip the channel (a local queue): its
    // order against the others' deliveries varies with the random pauses.
    const pairs = fc.array(fc.tuple(fc.integer({ min: 0, max: 2 ** 31 - 100 }), fc.integer({ min: 0, max: 12 })), { maxLength: 400 });
    await fc.assert(
      fc.asyncProperty(pairs, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 ** 30 }), async (list, workers, seed) => {
        const guards = await initialize<[number, number, number][]>(Config.process(workers), { module: fixtures, export: 'columnLoop', args: { pairs: list, seed } });
        const seen = (await guards.join()).flat();
        const model = list.flatMap(([id, v]) => Array.from({ length: v + 1 }, (_, i) => [id + i, v - i, i]));
        expect(seen.map((r) => JSON.stringify(r)).sort()).toEqual(model.map((r) => JSON.stringify(r)).sort());
      }),
      { numRuns: 8 },
    );
  });
});

describe('weft/dataflow loops over epochs', () => {
  it('a loop whose workers bring different epochs (a worker may have none of another\'s) runs every epoch to its end on every worker', { timeout: 300_000 }, async () => {
    // Per worker, its own [epoch, n] records in epoch order: a worker may end its input while another still brings epochs.
    const list = fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 6 })), { maxLength: 20 }).map((rs) => rs.sort((a, b) => a[0] - b[0]));
    await fc.assert(
      fc.asyncProperty(fc.array(list, { minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 2 ** 30 }), async (lists, seed) => {
        const guards = await initialize<[number, number, number][]>(Config.process(lists.length), { module: fixtures, export: 'loopEpochs', args: { lists, seed } });
        const seen = (await guards.join()).flat();
        const model = lists.flat().flatMap(([e, n]) => Array.from({ length: n + 1 }, (_, i) => [e, n - i, e]));
        expect(seen.map((r) => JSON.stringify(r)).sort()).toEqual(model.map((r) => JSON.stringify(r)).sort());
      }),
      { numRuns: 10 },
    );
  });
});

describe('weft/dataflow examples against single-threaded programs', () => {
  let dir = '';
  let text = '';
  let edges = '';
  let words: unknown;
  let ranks: { nodes: number; edges: number; sum: number; top: [number, number][] };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-df-'));
    text = join(dir, 'corpus.txt');
    edges = join(dir, 'edges.txt');
    corpus(text, 3 << 20);
    graph(edges, 5000, 40_000);
    words = last(['bench/cost-single.ts', 'wordcount-simple', text]);
    ranks = last(['bench/cost-single.ts', 'pagerank-best', edges, '--iterations', '20']) as typeof ranks;
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const sameRanks = (got: typeof ranks): void => {
    expect({ nodes: got.nodes, edges: got.edges, top: got.top.map((e) => e[0]) }).toEqual({ nodes: ranks.nodes, edges: ranks.edges, top: ranks.top.map((e) => e[0]) });
    expect(got.sum).toBeCloseTo(ranks.sum, 12);
    got.top.forEach(([, r], i) => expect(r).toBeCloseTo(ranks.top[i]![1], 14));
  };

  it('word count and PageRank on 1 and 2 workers (PageRank also on 3) print what the single-threaded programs print', { timeout: 300_000 }, () => {
    expect(last(['bench/cost-single.ts', 'wordcount-best', text])).toEqual(words);
    for (const w of ['1', '2']) {
      expect(last(['examples/dataflow/wordcount.ts', text, '-w', w])).toEqual(words);
      sameRanks(last(['examples/dataflow/pagerank.ts', edges, '-w', w, '--iterations', '20']) as typeof ranks);
    }
    // Three workers: an in-edge's source is its owner and its number there, packed with the worker count.
    sameRanks(last(['examples/dataflow/pagerank.ts', edges, '-w', '3', '--iterations', '20']) as typeof ranks);
    writeFileSync(join(dir, 'two.txt'), '1 2\n2 3\n7 8\n');
    expect(last(['examples/dataflow/components.ts', join(dir, 'two.txt'), '-w', '2'])).toEqual({ nodes: 5, components: 2, largest: 3 });
  });

  it('the same programs run unchanged on 2 processes x 1 thread (weft launch)', { timeout: 300_000 }, () => {
    const launched = (args: string[]): unknown => {
      const r = spawnSync(process.execPath, ['bin/weft.mjs', 'launch', '-n', '2', '-w', '1', ...args], { cwd: ROOT, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`weft launch ${args.join(' ')} exited with ${r.status}: ${r.stderr}`);
      const answers = r.stdout.split('\n').filter((l) => l.startsWith('[0] {'));
      expect(answers).toHaveLength(1);
      return JSON.parse(answers[0]!.slice(4));
    };
    expect(launched(['examples/dataflow/wordcount.ts', text])).toEqual(words);
    sameRanks(launched(['examples/dataflow/pagerank.ts', edges, '--iterations', '20']) as typeof ranks);
  });
});
