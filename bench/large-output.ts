// A large task output on Runtime.inMemory(2) against its anchor: a worker
// thread that makes the same bytes and sends them back with postMessage.
// Time from request to arrival (target: at most 1.5x the anchor, a ratio of
// 0.67 or more), and the process's peak RSS over its RSS
// before, each measured in a process of its own (peak RSS is per process).
//
//   npx tsx bench/large-output.ts [MB]        (default 200)
//   npm run bench                             (with the other suites)

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Runtime } from '../src/index.ts';
import { LargeOutput, make } from './fixtures/large-output.ts';
import { printRows, rowOf, type Row } from './report.ts';

const MB = 1e6;
const ops = new URL('./fixtures/large-output.ts', import.meta.url);

interface One {
  ms: number;
  peakOverBaseMB: number;
}

async function weft(bytes: number): Promise<One> {
  await using runtime = await Runtime.inMemory({ workers: 2, operations: ops });
  // Once small, so that start-up is not in the figure.
  await runtime.fanout(LargeOutput, [1024]);
  const base = process.memoryUsage().rss;
  const t0 = performance.now();
  const [out] = await runtime.fanout(LargeOutput, [bytes]);
  const ms = performance.now() - t0;
  if ((out as Uint8Array).length !== bytes) throw new Error('short output');
  return { ms, peakOverBaseMB: (process.resourceUsage().maxRSS * 1024 - base) / MB };
}

async function anchor(bytes: number): Promise<One> {
  // Plain JavaScript: Node 20 does not carry tsx into a bare worker. `make` is the operation's own code.
  const w = new Worker(`const { parentPort } = require('node:worker_threads'); const make = ${make.toString()}; parentPort.on('message', (n) => parentPort.postMessage(make(n)));`, { eval: true });
  const ask = (n: number): Promise<Uint8Array> => {
    const p = new Promise<Uint8Array>((resolve) => w.once('message', resolve));
    w.postMessage(n);
    return p;
  };
  await ask(1024);
  const base = process.memoryUsage().rss;
  const t0 = performance.now();
  const out = await ask(bytes);
  const ms = performance.now() - t0;
  if (out.length !== bytes) throw new Error('short output');
  await w.terminate();
  return { ms, peakOverBaseMB: (process.resourceUsage().maxRSS * 1024 - base) / MB };
}

/**
 * The suite for `npm run bench`: each side in a process of its own, the
 * anchor first; `mb` megabytes (default 200).
 */
export async function runLargeOutputBench(mb = 200): Promise<{ suite: 'large-output'; rows: Row[]; raw: { weft: One; anchor: One } }> {
  const self = fileURLToPath(import.meta.url);
  const run = (m: string): One => JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', self, m, String(mb)], { encoding: 'utf8' })) as One;
  const a = run('anchor');
  const w = run('weft');
  const rows = [
    rowOf({ suite: 'runtime', name: `${mb} MB task output, time`, weft: w.ms, anchor: a.ms, anchorName: 'worker makes it, postMessage back', unit: 'ms', target: 0.67, higherIsBetter: false }),
    // The bound is on weft alone (<= 3x the payload); the ratio to postMessage's peak is shown beside it.
    rowOf({ suite: 'runtime', name: `${mb} MB task output, peak RSS over idle (MB)`, weft: w.peakOverBaseMB, anchor: a.peakOverBaseMB, anchorName: 'same, postMessage', unit: 'MB', target: undefined, higherIsBetter: false }),
  ];
  return { suite: 'large-output', rows, raw: { weft: w, anchor: a } };
}

const [, , mode, size] = process.argv;
if (mode === 'weft' || mode === 'anchor') {
  const bytes = Number(size) * MB;
  const r = mode === 'weft' ? await weft(bytes) : await anchor(bytes);
  process.stdout.write(JSON.stringify(r));
} else if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const mb = Number(mode ?? 200);
  const { rows, raw } = await runLargeOutputBench(mb);
  printRows(rows);
  console.log(`weft peak RSS over idle: ${(raw.weft.peakOverBaseMB / mb).toFixed(2)}x the payload (target <= 3x); postMessage: ${(raw.anchor.peakOverBaseMB / mb).toFixed(2)}x`);
}
