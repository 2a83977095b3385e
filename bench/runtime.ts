// Task runtime benchmarks, each figure beside its anchor, in one run:
// - tiny tasks per second: weft `Runtime.inMemory` (tasks batched to its
//   workers) vs the best of piscina 5, tinypool 2 and workerpool 10 (one
//   call per task, as their users write it), same thread count, same
//   operation (target: weft >= 10x the best pool);
// - the same tiny tasks with an async operation (`async n => n + 1`)
//   against the sync one, weft on both sides: what async operations cost;
// - a CPU-bound operation on 1 vs 2 weft workers (target: >= 1.8x), with
//   the best of the three pools on 2 threads beside it, and the ceiling this
//   machine allows: the same work on 1 vs 2 bare worker threads that never
//   communicate.
// Run alone with `npx tsx bench/runtime.ts`. This file is also the
// operations module its weft workers import, so its top level only defines.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { Piscina } from 'piscina';
import { Bench } from 'tinybench';
import { Tinypool } from 'tinypool';
import workerpool from 'workerpool';
import { IndexedStream, Runtime, defineOperation } from '../src/runtime/index.ts';
import { rowOf, type Row } from './report.ts';

// Plain functions, so piscina's worker module can be generated from the very
// same source (piscina cannot load TypeScript in its threads).
const increment = (n: number): number => n + 1;
const incrementAsync = async (n: number): Promise<number> => n + 1;
const fib = (n: number): number => (n < 2 ? n : fib(n - 1) + fib(n - 2));
const cpuBound = (n: number): number => fib(n);

const Increment = defineOperation('bench.Increment', increment);
const IncrementAsync = defineOperation('bench.IncrementAsync', incrementAsync);
const CpuBound = defineOperation('bench.CpuBound', cpuBound);

const TINY_TASKS = 20_000;
const CPU_TASKS = 32;
const CPU_N = 27;
const THREADS = 2;

export interface RuntimeBenchFigures {
  threads: number;
  /** Tiny tasks per second. */
  weftTinyPerSecond: number;
  piscinaTinyPerSecond: number;
  tinypoolTinyPerSecond: number;
  workerpoolTinyPerSecond: number;
  /** The same tiny tasks, weft, with an async operation. */
  weftTinyAsyncPerSecond: number;
  /** weft / the best pool; target >= 10. */
  tinyRatio: number;
  /** CPU-bound tasks per second. */
  weftCpuOneWorkerPerSecond: number;
  weftCpuTwoWorkersPerSecond: number;
  piscinaCpuTwoThreadsPerSecond: number;
  tinypoolCpuTwoThreadsPerSecond: number;
  workerpoolCpuTwoThreadsPerSecond: number;
  /** weft 2 workers / weft 1 worker; target >= 1.8. */
  cpuScaling: number;
  /** The same CPU-bound work on 2 vs 1 bare worker threads: what the machine allows. */
  bareThreadScaling: number;
}

function piscinaModule(directory: string): string {
  const file = join(directory, 'piscina-operations.mjs');
  writeFileSync(
    file,
    `const fib = ${fib.toString()};\nexport const increment = ${increment.toString()};\nexport const cpuBound = ${cpuBound.toString()};\n`,
  );
  return pathToFileURL(file).href;
}

function piscinaPool(filename: string, name: string): Piscina {
  return new Piscina({ filename, name, minThreads: THREADS, maxThreads: THREADS, idleTimeout: 60_000 });
}

/** workerpool's worker script: the same functions, registered with workerpool.worker(). */
function workerpoolModule(directory: string): string {
  const file = join(directory, 'workerpool-operations.cjs');
  const library = createRequire(import.meta.url).resolve('workerpool');
  writeFileSync(
    file,
    `const fib = ${fib.toString()};\nrequire(${JSON.stringify(library)}).worker({ increment: ${increment.toString()}, cpuBound: ${cpuBound.toString()} });\n`,
  );
  return file;
}

const bestPool = (pools: Record<string, number>): [string, number] =>
  Object.entries(pools).reduce((a, b) => (b[1] > a[1] ? b : a));

/**
 * Slowest thread's time for `threads` bare threads to run CPU_TASKS fib(CPU_N)
 * between them, timed inside each thread so start-up is not counted.
 */
async function bareThreads(threads: number): Promise<number> {
  const share = CPU_TASKS / threads;
  const source = [
    `const { parentPort } = require('node:worker_threads');`,
    `const fib = ${fib.toString()};`,
    `const started = performance.now();`,
    `for (let i = 0; i < ${share}; i++) fib(${CPU_N});`,
    `parentPort.postMessage(performance.now() - started);`,
  ].join('\n');
  const times = await Promise.all(
    Array.from(
      { length: threads },
      () => new Promise<number>((resolve, reject) => new Worker(source, { eval: true }).once('message', resolve).once('error', reject)),
    ),
  );
  return Math.max(...times);
}

/** Bare-thread scaling, best of a few rounds. */
async function bareThreadScaling(rounds = 5): Promise<number> {
  let one = Infinity;
  let two = Infinity;
  for (let round = 0; round < rounds; round++) {
    one = Math.min(one, await bareThreads(1));
    two = Math.min(two, await bareThreads(2));
  }
  return one / two;
}

const inputs = (count: number, value: (i: number) => number) => Array.from({ length: count }, (_, i) => value(i));

/** Figures for `bench/run.ts`: weft beside its anchor, with the target ratio. */
function rowsOf(f: RuntimeBenchFigures): Row[] {
  const row = (name: string, weft: number, anchor: number, anchorName: string, target: number | undefined): Row =>
    rowOf({ suite: 'runtime', name, weft, anchor, anchorName, unit: 'tasks/s', target });
  const [tinyPool, tinyAnchor] = bestPool({ 'piscina 5': f.piscinaTinyPerSecond, 'tinypool 2': f.tinypoolTinyPerSecond, 'workerpool 10': f.workerpoolTinyPerSecond });
  const [cpuPool, cpuAnchor] = bestPool({
    'piscina 5': f.piscinaCpuTwoThreadsPerSecond,
    'tinypool 2': f.tinypoolCpuTwoThreadsPerSecond,
    'workerpool 10': f.workerpoolCpuTwoThreadsPerSecond,
  });
  return [
    row(`tiny tasks, ${f.threads} threads, batched vs 1 call/task`, f.weftTinyPerSecond, tinyAnchor, `best pool: ${tinyPool}`, 10),
    row(`tiny tasks, ${f.threads} threads, async vs sync operation`, f.weftTinyAsyncPerSecond, f.weftTinyPerSecond, 'weft, sync operation', undefined),
    row(`fib(${CPU_N}), 2 workers vs 1`, f.weftCpuTwoWorkersPerSecond, f.weftCpuOneWorkerPerSecond, 'weft, 1 worker', 1.8),
    row(`fib(${CPU_N}), 2 threads`, f.weftCpuTwoWorkersPerSecond, cpuAnchor, `best pool: ${cpuPool}`, undefined),
  ];
}

export async function runRuntimeBench(options: { time?: number } = {}): Promise<RuntimeBenchFigures & { rows: Row[] }> {
  const time = options.time ?? 1_000;
  const operations = new URL(import.meta.url);
  const directory = mkdtempSync(join(tmpdir(), 'weft-bench-runtime-'));
  const piscinaFile = piscinaModule(directory);
  const two = await Runtime.inMemory({ workers: THREADS, operations });
  const one = await Runtime.inMemory({ workers: 1, operations });
  const piscinaTiny = piscinaPool(piscinaFile, 'increment');
  const piscinaCpu = piscinaPool(piscinaFile, 'cpuBound');
  const tinypool = new Tinypool({ filename: piscinaFile, minThreads: THREADS, maxThreads: THREADS, idleTimeout: 60_000 });
  const workerpoolPool = workerpool.pool(workerpoolModule(directory), { minWorkers: THREADS, maxWorkers: THREADS, workerType: 'thread' });
  const tiny = inputs(TINY_TASKS, (i) => i);
  const cpu = inputs(CPU_TASKS, () => CPU_N);
  try {
    // tinybench also runs at least 64 iterations by default: a minute for
    // one 20 000-task pool row on a loaded machine.
    const bench = new Bench({ time, warmupTime: 300, iterations: 10 });
    bench
      .add(`weft inMemory(${THREADS}) ${TINY_TASKS} tiny tasks`, async () => {
        await IndexedStream.from(tiny).map(Increment).run(two);
      })
      // Right after the sync row: the load of a shared machine drifts.
      .add(`weft inMemory(${THREADS}) ${TINY_TASKS} tiny async tasks`, async () => {
        await IndexedStream.from(tiny).map(IncrementAsync).run(two);
      })
      .add(`piscina(${THREADS}) ${TINY_TASKS} tiny tasks`, async () => {
        await Promise.all(tiny.map((n) => piscinaTiny.run(n)));
      })
      .add(`tinypool(${THREADS}) ${TINY_TASKS} tiny tasks`, async () => {
        await Promise.all(tiny.map((n) => tinypool.run(n, { name: 'increment' })));
      })
      .add(`workerpool(${THREADS}) ${TINY_TASKS} tiny tasks`, async () => {
        await Promise.all(tiny.map((n) => workerpoolPool.exec('increment', [n])));
      })
      .add(`weft inMemory(1) ${CPU_TASKS} x fib(${CPU_N})`, async () => {
        await IndexedStream.from(cpu).map(CpuBound).run(one);
      })
      .add(`weft inMemory(${THREADS}) ${CPU_TASKS} x fib(${CPU_N})`, async () => {
        await IndexedStream.from(cpu).map(CpuBound).run(two);
      })
      .add(`piscina(${THREADS}) ${CPU_TASKS} x fib(${CPU_N})`, async () => {
        await Promise.all(cpu.map((n) => piscinaCpu.run(n)));
      })
      .add(`tinypool(${THREADS}) ${CPU_TASKS} x fib(${CPU_N})`, async () => {
        await Promise.all(cpu.map((n) => tinypool.run(n, { name: 'cpuBound' })));
      })
      .add(`workerpool(${THREADS}) ${CPU_TASKS} x fib(${CPU_N})`, async () => {
        await Promise.all(cpu.map((n) => workerpoolPool.exec('cpuBound', [n])));
      });
    await bench.run();
    // Tasks per second from the mean time of one whole batch.
    const perSecond = (index: number, count: number) => {
      const result = bench.tasks[index]!.result;
      if (result === undefined || !('latency' in result)) throw new Error(`benchmark ${bench.tasks[index]!.name} did not complete`);
      return (count * 1000) / result.latency.mean;
    };
    const weftTinyPerSecond = perSecond(0, TINY_TASKS);
    const weftTinyAsyncPerSecond = perSecond(1, TINY_TASKS);
    const piscinaTinyPerSecond = perSecond(2, TINY_TASKS);
    const tinypoolTinyPerSecond = perSecond(3, TINY_TASKS);
    const workerpoolTinyPerSecond = perSecond(4, TINY_TASKS);
    const weftCpuOneWorkerPerSecond = perSecond(5, CPU_TASKS);
    const weftCpuTwoWorkersPerSecond = perSecond(6, CPU_TASKS);
    const piscinaCpuTwoThreadsPerSecond = perSecond(7, CPU_TASKS);
    const tinypoolCpuTwoThreadsPerSecond = perSecond(8, CPU_TASKS);
    const workerpoolCpuTwoThreadsPerSecond = perSecond(9, CPU_TASKS);
    const figures: RuntimeBenchFigures = {
      threads: THREADS,
      weftTinyPerSecond,
      piscinaTinyPerSecond,
      tinypoolTinyPerSecond,
      workerpoolTinyPerSecond,
      weftTinyAsyncPerSecond,
      tinyRatio: weftTinyPerSecond / Math.max(piscinaTinyPerSecond, tinypoolTinyPerSecond, workerpoolTinyPerSecond),
      weftCpuOneWorkerPerSecond,
      weftCpuTwoWorkersPerSecond,
      piscinaCpuTwoThreadsPerSecond,
      tinypoolCpuTwoThreadsPerSecond,
      workerpoolCpuTwoThreadsPerSecond,
      cpuScaling: weftCpuTwoWorkersPerSecond / weftCpuOneWorkerPerSecond,
      bareThreadScaling: await bareThreadScaling(),
    };
    return { ...figures, rows: rowsOf(figures) };
  } finally {
    await Promise.all([two.close(), one.close(), piscinaTiny.destroy(), piscinaCpu.destroy(), tinypool.destroy(), workerpoolPool.terminate()]);
    rmSync(directory, { recursive: true, force: true });
  }
}

function print(figures: RuntimeBenchFigures): void {
  const rate = (n: number) => `${Math.round(n).toLocaleString('en-US')} tasks/s`;
  console.log(`tiny tasks, ${figures.threads} threads`);
  console.log(`  weft inMemory   ${rate(figures.weftTinyPerSecond)}`);
  console.log(`  piscina 5       ${rate(figures.piscinaTinyPerSecond)}`);
  console.log(`  tinypool 2      ${rate(figures.tinypoolTinyPerSecond)}`);
  console.log(`  workerpool 10   ${rate(figures.workerpoolTinyPerSecond)}`);
  console.log(`  ratio           ${figures.tinyRatio.toFixed(1)}x the best pool   (target >= 10x)`);
  console.log(`  weft, async op  ${rate(figures.weftTinyAsyncPerSecond)}   ${(figures.weftTinyAsyncPerSecond / figures.weftTinyPerSecond).toFixed(2)}x the sync op`);
  console.log(`CPU-bound fib(${CPU_N})`);
  console.log(`  weft 1 worker   ${rate(figures.weftCpuOneWorkerPerSecond)}   (anchor)`);
  console.log(`  weft 2 workers  ${rate(figures.weftCpuTwoWorkersPerSecond)}`);
  console.log(`  piscina 2       ${rate(figures.piscinaCpuTwoThreadsPerSecond)}`);
  console.log(`  tinypool 2      ${rate(figures.tinypoolCpuTwoThreadsPerSecond)}`);
  console.log(`  workerpool 2    ${rate(figures.workerpoolCpuTwoThreadsPerSecond)}`);
  console.log(`  scaling         ${figures.cpuScaling.toFixed(2)}x one worker   (target >= 1.8x)`);
  console.log(`  bare threads    ${figures.bareThreadScaling.toFixed(2)}x one thread   (machine ceiling)`);
}

if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  print(await runRuntimeBench());
}
