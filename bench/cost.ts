// COST (McSherry, Isard, Murray, HotOS 2015): how many workers weft/dataflow
// needs to beat a competent single thread. Each example runs as a whole
// process on 1 and 2 workers, beside the best single-threaded program we
// could write (byte-level word count; CSR PageRank over typed arrays) and a
// straightforward one (regex and Map; text split), all timed as whole
// processes in the same run, outputs compared; the 2-worker programs also
// as a cluster of 2 processes x 1 thread (weft launch) against 1 process x
// 2 threads. Also: bytes crossing between workers for word count with and
// without the combiner.
//
// Inputs are generated (bench/cost-data.ts) into a temp dir. Defaults: a
// 160 MB corpus and a 1 M-node, 6 M-edge graph, best of 3 runs;
// WEFT_COST_SCALE=0.1 shrinks both, WEFT_COST_RUNS sets the runs.
// Programs run on WEFT_BENCH_NODE (default: this node) and import weft's
// dist/ (built first), as a user's would.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { corpus, graph } from './cost-data.ts';
import { rowOf, type Row } from './report.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const NODE = process.env.WEFT_BENCH_NODE ?? process.execPath;
const SCALE = Number(process.env.WEFT_COST_SCALE ?? 1);
const RUNS = Number(process.env.WEFT_COST_RUNS ?? 3);

/** Node runs .ts itself from 23.6 on; older ones go through tsx. */
const nodeArgs = (): string[] => {
  const major = Number(spawnSync(NODE, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' }).stdout.trim());
  return major >= 23 ? [] : ['--import', 'tsx'];
};

interface Run {
  seconds: number;
  output: unknown;
  stderr: string;
}

/** The answer: the last line of stdout, or under weft launch the line process 0 prefixed with [0]. */
function answerOf(stdout: string, launched: boolean): unknown {
  if (!launched) {
    const lines = stdout.trim().split('\n');
    return JSON.parse(lines[lines.length - 1]!);
  }
  const line = stdout.split('\n').find((l) => l.startsWith('[0] {'));
  if (line === undefined) throw new Error(`no answer from process 0 in: ${stdout.slice(-500)}`);
  return JSON.parse(line.slice(4));
}

function runOnce(args: string[], launched = false): Run {
  const t0 = performance.now();
  const r = spawnSync(NODE, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited with ${r.status}: ${r.stderr.slice(-2000)}`);
  return { seconds, output: answerOf(r.stdout, launched), stderr: r.stderr };
}

/** Best of RUNS, with every run's time. */
function time(args: string[], launched = false): { best: number; all: number[]; output: unknown; stderr: string } {
  const runs = Array.from({ length: RUNS }, () => runOnce(args, launched));
  const all = runs.map((r) => r.seconds);
  const best = Math.min(...all);
  return { best, all, output: runs[0]!.output, stderr: runs[0]!.stderr };
}

/** Word counts compare exactly; PageRank's float sums in another order compare to 1e-9. */
function same(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return a === b;
}

function bytesOf(stderr: string): number {
  const m = /bytes between workers: (\d+)/.exec(stderr);
  if (m === null) throw new Error(`no byte count in: ${stderr.slice(-500)}`);
  return Number(m[1]);
}

export async function runCostBench(): Promise<{ rows: Row[]; times: Record<string, number[]> }> {
  if (!existsSync(join(root, 'dist/dataflow/index.js')) || process.env.WEFT_COST_BUILD !== '0') {
    const b = spawnSync('npm', ['run', 'build'], { cwd: root, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`npm run build failed: ${b.stderr}`);
  }
  const pre = nodeArgs();
  const dir = mkdtempSync(join(tmpdir(), 'weft-cost-'));
  const rows: Row[] = [];
  const times: Record<string, number[]> = {};
  try {
    const text = join(dir, 'corpus.txt');
    const small = join(dir, 'corpus-16.txt');
    const edges = join(dir, 'edges.txt');
    corpus(text, Math.round(160 * SCALE) * 2 ** 20);
    corpus(small, Math.max(1, Math.round(16 * SCALE)) * 2 ** 20);
    graph(edges, Math.round(1_000_000 * SCALE), Math.round(6_000_000 * SCALE));
    const mb = Math.round(160 * SCALE);
    const jobs = [
      { name: 'word count', what: `${mb} MB corpus`, best: ['bench/cost-single.ts', 'wordcount-best', text], simple: ['bench/cost-single.ts', 'wordcount-simple', text], weft: (w: number) => ['examples/dataflow/wordcount.ts', text, '-w', String(w)], targets: [1.15, 3] },
      { name: 'PageRank x20', what: `${Math.round(6 * SCALE * 10) / 10} M edges`, best: ['bench/cost-single.ts', 'pagerank-best', edges], simple: ['bench/cost-single.ts', 'pagerank-simple', edges], weft: (w: number) => ['examples/dataflow/pagerank.ts', edges, '-w', String(w), '--iterations', '20'], targets: [1.1, 1.5] },
    ];
    for (const job of jobs) {
      const best = time([...pre, ...job.best]);
      const simple = time([...pre, ...job.simple]);
      times[`${job.name}: best single thread`] = best.all;
      times[`${job.name}: straightforward single thread`] = simple.all;
      if (!same(best.output, simple.output)) throw new Error(`${job.name}: the two single-threaded programs disagree`);
      for (const w of [1, 2]) {
        const weft = time([...pre, ...job.weft(w)]);
        times[`${job.name}: weft/dataflow, ${w} worker(s)`] = weft.all;
        if (!same(weft.output, best.output)) throw new Error(`${job.name} on ${w} worker(s): output differs from the single-threaded program's: ${JSON.stringify(weft.output).slice(0, 400)} vs ${JSON.stringify(best.output).slice(0, 400)}`);
        const base = { suite: 'cost', unit: 's', higherIsBetter: false };
        rows.push(rowOf({ ...base, name: `${job.name}, ${job.what}, ${w} worker(s)`, weft: weft.best, anchor: best.best, anchorName: 'best single thread', target: w === 1 ? 0.85 : job.targets[0] }));
        if (w === 2) {
          rows.push(rowOf({ ...base, name: `${job.name}, ${job.what}, 2 worker(s), vs straightforward`, weft: weft.best, anchor: simple.best, anchorName: 'straightforward single thread', target: job.targets[1] }));
          // The same program as a cluster of 2 processes x 1 thread (TCP between them), against 1 process x 2 threads.
          const [script, ...args] = job.weft(1);
          const cluster = time([...pre, 'bin/weft.mjs', 'launch', '-n', '2', '-w', '1', script!, ...args.filter((a, i, all) => a !== '-w' && all[i - 1] !== '-w')], true);
          times[`${job.name}: weft/dataflow, 2 processes x 1 thread`] = cluster.all;
          if (!same(cluster.output, best.output)) throw new Error(`${job.name} on 2 processes: output differs from the single-threaded program's: ${JSON.stringify(cluster.output).slice(0, 400)}`);
          rows.push(rowOf({ ...base, name: `${job.name}, ${job.what}, 2 processes x 1 thread`, weft: cluster.best, anchor: weft.best, anchorName: '1 process x 2 threads', target: 0.8 }));
        }
      }
    }
    const smallMb = Math.max(1, Math.round(16 * SCALE));
    const combined = bytesOf(runOnce([...pre, 'examples/dataflow/wordcount.ts', small, '-w', '2', '--simple']).stderr);
    const plain = bytesOf(runOnce([...pre, 'examples/dataflow/wordcount.ts', small, '-w', '2', '--no-combiner']).stderr);
    const tables = bytesOf(runOnce([...pre, 'examples/dataflow/wordcount.ts', small, '-w', '2']).stderr);
    rows.push(rowOf({ suite: 'cost', name: `word count bytes between 2 workers, ${smallMb} MB corpus, combiner`, weft: combined, anchor: plain, anchorName: 'no combiner', unit: 'B', higherIsBetter: false, target: 5 }));
    rows.push(rowOf({ suite: 'cost', name: `word count bytes between 2 workers, ${smallMb} MB corpus, typed tables (sumByBytes)`, weft: tables, anchor: plain, anchorName: 'no combiner', unit: 'B', higherIsBetter: false, target: 5 }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { rows, times };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { rows, times } = await runCostBench();
  const { printRows } = await import('./report.ts');
  printRows(rows);
  console.log(times);
}
