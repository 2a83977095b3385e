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
// 160 MB corpus and a 1 M-node, 6 M-edge graph, 3 rounds, each running
// every program once in turn (interleaved); rows give medians, and the
// ratios paired per round their median and range;
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

/** One program to time, and the output every other program of its job must print. */
interface Program {
  key: string;
  args: string[];
  launched: boolean;
  job: string;
}

/** A ratio over the runs: paired per round (anchor and weft timed in the same round), median and range. */
export interface Spread {
  figure: string;
  median: number;
  min: number;
  max: number;
  target: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function runCostBench(): Promise<{ rows: Row[]; times: Record<string, number[]>; spreads: Spread[] }> {
  if (!existsSync(join(root, 'dist/dataflow/index.js')) || process.env.WEFT_COST_BUILD !== '0') {
    const b = spawnSync('npm', ['run', 'build'], { cwd: root, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`npm run build failed: ${b.stderr}`);
  }
  const pre = nodeArgs();
  const dir = mkdtempSync(join(tmpdir(), 'weft-cost-'));
  const rows: Row[] = [];
  const spreads: Spread[] = [];
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
    // Every program of both jobs once per round, in turn, so a change in the
    // machine's load (shared here) falls on all of them alike; ratios pair
    // the two programs of the same round.
    const programs: Program[] = [];
    for (const job of jobs) {
      const [script, ...args] = job.weft(1);
      programs.push(
        { key: `${job.name}: best single thread`, args: [...pre, ...job.best], launched: false, job: job.name },
        { key: `${job.name}: straightforward single thread`, args: [...pre, ...job.simple], launched: false, job: job.name },
        { key: `${job.name}: weft/dataflow, 1 worker(s)`, args: [...pre, ...job.weft(1)], launched: false, job: job.name },
        { key: `${job.name}: weft/dataflow, 2 worker(s)`, args: [...pre, ...job.weft(2)], launched: false, job: job.name },
        // The same program as a cluster of 2 processes x 1 thread (TCP between them), against 1 process x 2 threads.
        // Launched by the built CLI, the one an installed package's `weft` runs, as every other program
        // here imports dist/: in a checkout bin/weft.mjs runs src/ through tsx in every process and thread
        // (a 2 000-edge PageRank as 2 processes: 1.6-1.8 s of CPU against 0.8-0.9 s from dist/).
        { key: `${job.name}: weft/dataflow, 2 processes x 1 thread`, args: [...pre, 'dist/cli/main.js', 'launch', '-n', '2', '-w', '1', script!, ...args.filter((a, i, all) => a !== '-w' && all[i - 1] !== '-w')], launched: true, job: job.name },
      );
    }
    const expected = new Map<string, unknown>();
    for (let round = 0; round < RUNS; round++) {
      for (const p of programs) {
        const r = runOnce(p.args, p.launched);
        (times[p.key] ??= []).push(r.seconds);
        const want = expected.get(p.job);
        if (want === undefined) expected.set(p.job, r.output);
        else if (!same(r.output, want)) throw new Error(`${p.key}: output differs from the best single-threaded program's: ${JSON.stringify(r.output).slice(0, 400)} vs ${JSON.stringify(want).slice(0, 400)}`);
      }
    }
    const base = { suite: 'cost', unit: 's', higherIsBetter: false };
    const compare = (figure: string, weft: string, anchor: string, anchorName: string, target: number): void => {
      const w = times[weft]!;
      const a = times[anchor]!;
      const ratios = w.map((t, i) => a[i]! / t);
      rows.push(rowOf({ ...base, name: figure, weft: median(w), anchor: median(a), anchorName, target }));
      spreads.push({ figure, median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), target });
    };
    for (const job of jobs) {
      const at = `${job.name}, ${job.what}`;
      compare(`${at}, 1 worker(s)`, `${job.name}: weft/dataflow, 1 worker(s)`, `${job.name}: best single thread`, 'best single thread', 0.85);
      compare(`${at}, 2 worker(s)`, `${job.name}: weft/dataflow, 2 worker(s)`, `${job.name}: best single thread`, 'best single thread', job.targets[0]!);
      compare(`${at}, 2 worker(s), vs straightforward`, `${job.name}: weft/dataflow, 2 worker(s)`, `${job.name}: straightforward single thread`, 'straightforward single thread', job.targets[1]!);
      compare(`${at}, 2 processes x 1 thread`, `${job.name}: weft/dataflow, 2 processes x 1 thread`, `${job.name}: weft/dataflow, 2 worker(s)`, '1 process x 2 threads', 0.8);
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
  return { rows, times, spreads };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { rows, times, spreads } = await runCostBench();
  const { printRows } = await import('./report.ts');
  printRows(rows);
  console.table(spreads.map((s) => ({ figure: s.figure, ratio: `${s.median.toFixed(2)}x (${s.min.toFixed(2)}-${s.max.toFixed(2)})`, target: `>= ${s.target}x ${s.median >= s.target ? 'met' : 'MISSED'}` })));
  console.log(times);
}
