// `npm run bench`: every suite present, one after another in this process,
// then bench/results/latest.json and a bar chart of the weft/anchor ratios,
// bench/results/latest.svg. A suite file that does not exist yet is skipped
// with a note; a suite that fails is reported and the others still run.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { formatNumber, printRows, type Row } from './report.ts';

interface Suite {
  file: string;
  export: string;
}

const SUITES: Suite[] = [
  { file: 'allocator.ts', export: 'runAllocatorBench' },
  { file: 'runtime.ts', export: 'runRuntimeBench' },
  { file: 'large-output.ts', export: 'runLargeOutputBench' },
  { file: 'observability.ts', export: 'runObservabilityBench' },
  { file: 'cluster.ts', export: 'runClusterBench' },
  { file: 'amqp.ts', export: 'runAmqpBench' },
  { file: 'peers.ts', export: 'runPeersBench' },
  { file: 'cost.ts', export: 'runCostBench' },
];

/** A suite that has not settled by then is reported as failed and the rest still run. */
const SUITE_TIMEOUT_MS = Number(process.env.WEFT_BENCH_SUITE_TIMEOUT_MS ?? 10 * 60_000);

const here = new URL('./', import.meta.url);

/**
 * Awaits `p`, but never longer than `ms`. The timer also keeps this process
 * alive: a suite whose promise can no longer settle (its event sources all
 * gone) would otherwise end the process with Node's "unsettled top-level
 * await" (exit code 13) before any result is written.
 */
function settleWithin<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}
const results = new URL('./results/', here);

/** Accepts `{ rows }`, a bare array of rows, or anything else (kept as raw). */
function rowsOf(value: unknown): Row[] {
  const list = Array.isArray(value) ? value : (value as { rows?: unknown } | null)?.rows;
  if (!Array.isArray(list)) return [];
  return list.filter((r): r is Row => typeof r === 'object' && r !== null && typeof (r as Row).ratio === 'number');
}

/** Runs every suite present, prints the rows, writes latest.json and latest.svg. */
export async function main(): Promise<void> {
  const started = new Date();
  const suites: Record<string, unknown> = {};
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const s of SUITES) {
    const url = new URL(s.file, here);
    if (!existsSync(fileURLToPath(url))) {
      const note = `bench/${s.file}: not present, skipped`;
      console.log(note);
      notes.push(note);
      continue;
    }
    console.log(`bench/${s.file}: running ${s.export}() ...`);
    const t0 = performance.now();
    try {
      const mod = (await import(url.href)) as Record<string, unknown>;
      const run = mod[s.export];
      if (typeof run !== 'function') throw new Error(`bench/${s.file} has no export ${s.export}()`);
      const value = await settleWithin((run as () => Promise<unknown>)(), SUITE_TIMEOUT_MS, `bench/${s.file}`);
      suites[s.file.replace(/\.ts$/, '')] = value;
      const got = rowsOf(value);
      rows.push(...got);
      save(started, rows, notes, suites); // a later suite that hangs loses nothing of this one
      console.log(`bench/${s.file}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      if (got.length > 0) printRows(got);
      else console.log(value);
    } catch (error) {
      const note = `bench/${s.file}: failed: ${(error as Error).stack ?? String(error)}`;
      console.error(note);
      notes.push(note);
      process.exitCode = 1;
    }
  }
  if (rows.length > 0) {
    console.log('\nall suites:');
    printRows(rows);
  }
  save(started, rows, notes, suites);
  console.log(`\nwrote bench/results/latest.json and bench/results/latest.svg`);
  // Worker threads of finished suites may linger for a moment; do not wait for them.
  setTimeout(() => process.exit(), 100).unref();
}

function save(started: Date, rows: Row[], notes: string[], suites: Record<string, unknown>): void {
  mkdirSync(results, { recursive: true });
  const machine = { node: process.version, platform: process.platform, arch: process.arch, cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown' };
  const json = { date: started.toISOString(), machine, notes, rows, suites };
  writeFileSync(new URL('latest.json', results), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(new URL('latest.svg', results), chart(rows, `weft / anchor, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, Node ${process.version}, ${machine.cpus} cores`));
}

// ------------------------------------------------------------------ chart

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * One horizontal bar per row: the ratio on a log scale (ratios span 0.05x to
 * 100x), a tick at the target, a line at 1x (parity with the anchor). Green
 * when the target is met, red when missed, grey when there is none.
 */
export function chart(rows: readonly Row[], title: string): string {
  const width = 1000;
  const left = 380;
  const right = 130;
  const top = 56;
  const bar = 22;
  const gap = 12;
  const plot = width - left - right;
  const ratios = rows.flatMap((r) => [r.ratio, r.target ?? r.ratio]).filter((v) => v > 0 && Number.isFinite(v));
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(0.1, ...ratios))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(10, ...ratios))));
  const x = (v: number): number => left + (plot * (Math.log10(Math.max(v, lo)) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
  const height = top + rows.length * (bar + gap) + 50;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escape(title)}</text>`);
  out.push(`<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">ratio to the anchor measured in the same run (log scale; latencies: times faster); tick = target</text>`);
  const bottom = top + rows.length * (bar + gap);
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    const gx = x(d).toFixed(1);
    out.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${bottom}" stroke="${d === 1 ? '#333' : '#ddd'}" stroke-width="${d === 1 ? 1.5 : 1}"/>`);
    out.push(`<text x="${gx}" y="${bottom + 16}" text-anchor="middle" fill="#555">${d >= 1 ? d : d.toPrecision(1)}x</text>`);
  }
  rows.forEach((r, i) => {
    const y = top + i * (bar + gap);
    const met = r.target === undefined ? undefined : r.ratio >= r.target;
    const colour = met === undefined ? '#9aa5b1' : met ? '#2e9d5b' : '#d64541';
    const x0 = x(lo);
    const x1 = x(r.ratio);
    out.push(`<text x="${left - 8}" y="${y + bar / 2 + 4}" text-anchor="end">${escape(`${r.suite}: ${r.name}`)}</text>`);
    out.push(`<rect x="${x0.toFixed(1)}" y="${y}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${bar}" fill="${colour}"><title>${escape(`weft ${formatNumber(r.weft)} ${r.unit}; ${r.anchorName} ${formatNumber(r.anchor)}`)}</title></rect>`);
    if (r.target !== undefined) {
      const tx = x(r.target).toFixed(1);
      out.push(`<line x1="${tx}" y1="${y - 3}" x2="${tx}" y2="${y + bar + 3}" stroke="#111" stroke-width="2.5"/>`);
    }
    const label = `${r.ratio.toFixed(r.ratio < 10 ? 2 : 1)}x${r.target !== undefined ? ` (target ${r.target}x)` : ''}`;
    out.push(`<text x="${(x(hi) + 6).toFixed(1)}" y="${y + bar / 2 + 4}">${escape(label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main();
