// The soak: memory stays bounded under a flood. Worker 0 sends as many
// messages as it can to worker 1, a slow receiver (the README's loop: one
// receive() per recv(), and a little work per message), once ignoring
// send()'s answer and once waiting on push.ready() when it says false. Each
// run is a child process of its own, so its peak RSS (the kernel's maxRSS,
// both threads and the main thread together) is that run's alone.
//
//   npx tsx bench/soak.ts                      (10^8 small, 10^7 x 1 KiB)
//   npx tsx bench/soak.ts --scale 0.1          (a tenth of each)
//
// Without backpressure the sender's backlog grows until maxBacklogBytes
// (256 MiB by default) and it fails with an OverflowError: bounded, and
// fail-stop, where weft 0.1 grew until the machine ran out of memory. With
// backpressure the run completes within a few MiB of backlog.

import { spawnSync } from 'node:child_process';
import { isMainThread } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Config, codecs, initialize, type Allocator, type Push } from '../src/index.ts';

type Kind = 'small' | 'kib';
type Mode = 'ignore' | 'ready';

interface Outcome {
  kind: Kind;
  mode: Mode;
  messages: number;
  received: number;
  outcome: string;
  seconds: number;
  peakRssMiB: number;
}

const KIB = 1024;
/** Work per received message, so the receiver is the slower side. */
const WORK = 20;

function env(): { kind: Kind; mode: Mode; messages: number } {
  return { kind: process.env.SOAK_KIND as Kind, mode: process.env.SOAK_MODE as Mode, messages: Number(process.env.SOAK_MESSAGES) };
}

async function flood<T>(push: Push<T>, mode: Mode, messages: number, make: (i: number) => T): Promise<void> {
  for (let i = 0; i < messages; i++) {
    if (!push.send(make(i)) && mode === 'ready') await push.ready();
  }
  push.close();
}

/** One worker of a soak run (module form). */
export async function soakWorker(a: Allocator): Promise<number> {
  const { kind, mode, messages } = env();
  const [pushes, pull] = kind === 'small' ? a.allocate<unknown>(1) : a.allocate<unknown>(1, codecs.typedArray(Uint8Array) as never);
  if (a.index === 0) {
    const payload = new Uint8Array(KIB);
    if (kind === 'small') await flood(pushes[1]!, mode, messages, (i) => ({ i, x: i + 0.5 }));
    else await flood(pushes[1]!, mode, messages, (i) => ((payload[0] = i & 255), payload));
    return 0;
  }
  // The README's loop, with a little work per message.
  let received = 0;
  let sink = 0;
  while (!pull.done) {
    a.receive();
    const m = pull.recv();
    if (m === undefined) {
      if (!pull.done) a.awaitEvents(100);
      continue;
    }
    for (let k = 0; k < WORK; k++) sink += k * received;
    received++;
  }
  if (sink < 0) throw new Error('unreachable');
  return received;
}

/** In the child: one run, its outcome printed as JSON. */
async function child(): Promise<void> {
  const { kind, mode, messages } = env();
  const t0 = performance.now();
  let outcome = 'completed';
  let received = 0;
  try {
    const guards = await initialize<number>(Config.process(2), { module: fileURLToPath(import.meta.url), export: 'soakWorker' });
    received = (await guards.join())[1]!;
  } catch (error) {
    const cause = (error as Error).cause as Error | undefined;
    outcome = `${cause?.name ?? (error as Error).name}: ${(cause ?? (error as Error)).message.slice(0, 90)}`;
  }
  const seconds = (performance.now() - t0) / 1000;
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  const result: Outcome = { kind, mode, messages, received, outcome, seconds, peakRssMiB };
  console.log(JSON.stringify(result));
}

function run(kind: Kind, mode: Mode, messages: number): Outcome {
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child'], {
    env: { ...process.env, SOAK_KIND: kind, SOAK_MODE: mode, SOAK_MESSAGES: String(messages) },
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{')) throw new Error(`soak run ${kind}/${mode} exited with ${r.status}: ${r.stderr.slice(-2000)}`);
  return JSON.parse(line) as Outcome;
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--scale');
  const scale = at > 0 ? Number(process.argv[at + 1]) : 1;
  if (!(scale > 0)) throw new Error('--scale needs a positive number');
  // What two weft threads cost with no messages at all: the floor of every row.
  const rows: Outcome[] = [run('small', 'ready', 0)];
  for (const [kind, count] of [['small', 1e8], ['kib', 1e7]] as const) {
    for (const mode of ['ignore', 'ready'] as const) {
      const o = run(kind, mode, Math.round(count * scale));
      console.error(`${kind} ${mode}: ${o.outcome}, ${o.received} received in ${o.seconds.toFixed(1)} s, peak RSS ${o.peakRssMiB.toFixed(0)} MiB`);
      rows.push(o);
    }
  }
  console.table(
    rows.map((o) => ({
      messages: `${o.messages.toExponential(0)} x ${o.kind === 'small' ? '{i, x}' : '1 KiB'}`,
      sender: o.mode === 'ready' ? 'waits on ready()' : 'ignores send()',
      outcome: o.outcome,
      received: o.received,
      seconds: o.seconds.toFixed(1),
      'peak RSS MiB': o.peakRssMiB.toFixed(0),
    })),
  );
}

// The workers import this file too (module form): only the main thread runs.
if (isMainThread && process.argv.includes('--child')) await child();
else if (isMainThread && process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main();
