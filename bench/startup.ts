// Start-up: how long the smallest weft program takes from `node` to exit,
// beside two plain worker threads doing the same, all in the same run:
//   plain            two worker threads, each posts its index (node:worker_threads)
//   weft             initialize(Config.process(2), (a) => a.index), from 'weft'
//   weft/channels    the same from the lean entry 'weft/channels'
//   weft.ts node     the same program as .ts, run by Node's type stripping
//   weft.ts tsx      the same .ts under `tsx` (its CLI: `npx tsx weft.ts`)
//   weft.ts import   the same .ts under `node --import tsx`: tsx's loader
//                    without its CLI, which starts a second process
//   bare.ts ...      a .ts that starts no thread, run the same three ways:
//                    what tsx costs by itself (the floor of weft.ts tsx /
//                    weft.ts node)
//   plain.ts ...     the plain program as .ts, run the same three ways: its
//                    workers run JavaScript, but tsx's CLI and --import
//                    preload tsx in every worker thread as well
// The last lines are weft's own cost (weft.ts less plain.ts, per round) under
// each of node, tsx's CLI and --import tsx, and the ratio of the medians:
// whether tsx makes weft's own start-up dearer than node does.
// Each round runs every variant once, in turn, so load drifts hit them alike;
// the ratios are per round (weft / plain, tsx / node), then their median
// and spread. The programs import the built package (dist/) through an app
// folder whose node_modules/weft links to this checkout, as an installed
// weft resolves. Usage: npm run build && node bench/startup.ts [rounds]
// (Node 22.18+; or npx tsx bench/startup.ts). WEFT_STARTUP_BASE=<a built
// checkout> adds that weft's program, beside, for an A/B in the same run.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const rounds = Number(process.argv[2] ?? 15);

const plain = `import { Worker } from 'node:worker_threads';
const code = "import { parentPort, workerData } from 'node:worker_threads'; parentPort.postMessage(workerData);";
const results = await Promise.all([0, 1].map((i) => new Promise((resolve, reject) => {
  const worker = new Worker(new URL('data:text/javascript,' + encodeURIComponent(code)), { workerData: i });
  worker.once('message', resolve);
  worker.once('error', reject);
})));
console.log(results);
`;
const program = (from: string, typed: boolean) => `import { Config, initialize${typed ? ', type Allocator' : ''} } from '${from}';
const guards = await initialize(Config.process(2), (allocator${typed ? ': Allocator' : ''}) => allocator.index);
console.log(await guards.join());
`;

const app = mkdtempSync(join(tmpdir(), 'weft-startup-'));
mkdirSync(join(app, 'node_modules'));
symlinkSync(root, join(app, 'node_modules', 'weft'));
writeFileSync(join(app, 'package.json'), JSON.stringify({ type: 'module' }));
writeFileSync(join(app, 'plain.mjs'), plain);
writeFileSync(join(app, 'plain.ts'), plain.replace('new Promise((resolve', 'new Promise<unknown>((resolve').replace('(i) =>', '(i: number) =>'));
writeFileSync(join(app, 'weft.mjs'), program('weft', false));
writeFileSync(join(app, 'channels.mjs'), program('weft/channels', false));
writeFileSync(join(app, 'weft.ts'), program('weft', true));
writeFileSync(join(app, 'bare.ts'), "const indices: number[] = [0, 1];\nconsole.log(indices);\n");
const base = process.env.WEFT_STARTUP_BASE;
if (base !== undefined) {
  mkdirSync(join(app, 'base', 'node_modules'), { recursive: true });
  symlinkSync(base, join(app, 'base', 'node_modules', 'weft'));
  writeFileSync(join(app, 'base', 'package.json'), JSON.stringify({ type: 'module' }));
  writeFileSync(join(app, 'base', 'weft.mjs'), program('weft', false));
}

// tsx's CLI on this node, not on whatever node its #! line finds on PATH.
const tsx = join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs');
// `--import tsx` as an app that installed tsx resolves it.
const tsxLoader = pathToFileURL(join(root, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const variants: [string, string, string[]][] = [
  ['plain', process.execPath, ['plain.mjs']],
  ['weft', process.execPath, ['weft.mjs']],
  ['weft/channels', process.execPath, ['channels.mjs']],
  ['weft.ts node', process.execPath, ['weft.ts']],
  ['weft.ts tsx', process.execPath, [tsx, 'weft.ts']],
  ['weft.ts import', process.execPath, ['--import', tsxLoader, 'weft.ts']],
  // tsx's own floor: a .ts program that prints the same and starts no thread.
  ['bare.ts node', process.execPath, ['bare.ts']],
  ['bare.ts tsx', process.execPath, [tsx, 'bare.ts']],
  ['bare.ts import', process.execPath, ['--import', tsxLoader, 'bare.ts']],
  ['plain.ts node', process.execPath, ['plain.ts']],
  ['plain.ts tsx', process.execPath, [tsx, 'plain.ts']],
  ['plain.ts import', process.execPath, ['--import', tsxLoader, 'plain.ts']],
  ...(base === undefined ? [] : [['base weft', process.execPath, [join('base', 'weft.mjs')]] as [string, string, string[]]]),
];

function once(file: string, args: string[]): number {
  const start = performance.now();
  const r = spawnSync(file, args, { cwd: app, encoding: 'utf8' });
  const ms = performance.now() - start;
  if (r.status !== 0 || !r.stdout.includes('[ 0, 1 ]')) throw new Error(`${file} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return ms;
}

const times = new Map<string, number[]>(variants.map(([name]) => [name, []]));
try {
  for (const [, file, args] of variants) once(file, args); // warm the file cache
  for (let round = 0; round < rounds; round++) {
    for (const [name, file, args] of variants) times.get(name)!.push(once(file, args));
  }
} finally {
  rmSync(app, { recursive: true, force: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const spread = (xs: number[], digits: number) => `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`;
const perRound = (a: string, b: string) => times.get(a)!.map((t, i) => t / times.get(b)![i]!);

console.log(`start-up, ${rounds} rounds, Node ${process.version}`);
for (const [name] of variants) {
  const xs = times.get(name)!;
  console.log(`  ${name.padEnd(14)} median ${median(xs).toFixed(0)} ms (${spread(xs, 0)})`);
}
const pairs: [string, string, number | undefined][] = [
  ['weft', 'plain', 1.5],
  ['weft/channels', 'plain', 1.5],
  ['weft.ts tsx', 'weft.ts node', 1.2],
  ['weft.ts import', 'weft.ts node', 1.2],
  ['bare.ts tsx', 'bare.ts node', undefined],
  ['bare.ts import', 'bare.ts node', undefined],
];
if (base !== undefined) pairs.push(['base weft', 'plain', undefined], ['weft', 'base weft', undefined]);
for (const [a, b, target] of pairs) {
  const ratios = perRound(a, b);
  console.log(`  ${a} / ${b}: median ${median(ratios).toFixed(2)}x (${spread(ratios, 2)})${target === undefined ? '' : `, target <= ${target}x`}`);
}
// weft's own cost, the weft program less its plain-threads twin (both .ts),
// under each runner: the same under tsx as under node when tsx makes
// nothing of weft's dearer.
const at = (name: string, i: number) => times.get(name)![i]!;
const own = (how: string) => times.get('plain')!.map((_, i) => at(`weft.ts ${how}`, i) - at(`plain.ts ${how}`, i));
const underNode = median(own('node'));
for (const how of ['node', 'tsx', 'import']) {
  const xs = own(how);
  const ratio = how === 'node' ? '' : `, ${(median(xs) / underNode).toFixed(2)}x its cost under node`;
  console.log(`  weft's own cost (weft.ts - plain.ts) under ${how === 'node' ? 'node' : how === 'tsx' ? "tsx's CLI" : '--import tsx'}: median ${median(xs).toFixed(0)} ms (${spread(xs, 0)})${ratio}`);
}
