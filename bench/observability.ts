// What observability costs, each figure beside its anchor, in one run:
// - tiny tasks with metrics on (the default: workers time every task, the
//   orchestrator records run and wait times), nobody subscribed to the
//   diagnostics channels, vs the same with `recordTiming: false`
//   (target: >= 0.97x);
// - the same tiny tasks with weft/otel and a real OpenTelemetry SDK (an
//   in-memory exporter) in the main thread and in every worker thread, vs
//   no OpenTelemetry (target: >= 0.85x).
// Each pair runs on two runtimes started side by side, in alternating
// rounds, each first in every other round (the second meets the garbage of
// the first), so the load of a shared machine falls on both alike; a
// figure is the best round (on a machine shared with other work, one round
// of the same configuration varies tenfold; the best is the least
// disturbed), and again as the median of the round-by-round ratios. Each figure is read twice: tasks per second of wall time,
// and per second of this process's CPU time (all its threads; the idle
// runtime's threads are parked), which other processes on a loaded
// machine disturb less. A control pair of two runtimes alike shows how far
// apart the same thing reads in this run. Run alone with `npx tsx bench/observability.ts`. This file is
// also the operations module its weft workers import, so its top
// level only defines.

import { isMainThread } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { context, propagation } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { IndexedStream, Runtime, defineOperation } from '../src/runtime/index.ts';
import { rowOf, printRows, type Row } from './report.ts';

const Increment = defineOperation('bench.obs.Increment', (n: number) => n + 1);

const TINY_TASKS = 20_000;
const THREADS = 2;
const ROUNDS = Number(process.env.WEFT_BENCH_OBS_ROUNDS ?? 30);

/** One round's figures: tasks per second of wall time, and per second of this process's CPU time (every thread). */
interface Rates {
  wall: number;
  cpu: number;
}

/** One directive of TINY_TASKS tiny tasks on `runtime`. */
async function round(runtime: Runtime, tiny: number[]): Promise<Rates> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await IndexedStream.from(tiny).map(Increment).run(runtime);
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { wall: (TINY_TASKS * 1000) / wallMs, cpu: (TINY_TASKS * 1e6) / (used.user + used.system) };
}

/** The best of each figure over `rounds`. */
function best(rounds: Rates[]): Rates {
  return { wall: Math.max(...rounds.map((r) => r.wall)), cpu: Math.max(...rounds.map((r) => r.cpu)) };
}

/** The median of `values`. */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** `b` over `a`, round by round (the two rounds of a pair run back to back), at the median. */
function pairedRatio(as: readonly Rates[], bs: readonly Rates[]): Rates {
  return { wall: median(bs.map((b, i) => b.wall / as[i]!.wall)), cpu: median(bs.map((b, i) => b.cpu / as[i]!.cpu)) };
}

/** One pair's figures: the best of each, and `b` over `a` round by round. */
interface Paired {
  a: Rates;
  b: Rates;
  ratio: Rates;
}

/** Figures of `a` and `b`, in alternating rounds (`around` each of `b`'s). */
async function pair(a: Runtime, b: Runtime, around: { before?: () => void; after?: () => void } = {}): Promise<Paired> {
  const tiny = Array.from({ length: TINY_TASKS }, (_, i) => i);
  // Warm-up: both runtimes' threads compiled and their tables grown.
  for (let i = 0; i < 3; i++) {
    await round(a, tiny);
    around.before?.();
    await round(b, tiny);
    around.after?.();
  }
  const as: Rates[] = [];
  const bs: Rates[] = [];
  const roundOfB = async () => {
    around.before?.();
    bs.push(await round(b, tiny));
    around.after?.();
  };
  // Each goes first in every other round: the one that runs second meets
  // the garbage of the first.
  for (let i = 0; i < ROUNDS; i++) {
    if (i % 2 === 1) await roundOfB();
    as.push(await round(a, tiny));
    if (i % 2 === 0) await roundOfB();
  }
  return { a: best(as), b: best(bs), ratio: pairedRatio(as, bs) };
}

export interface ObservabilityBenchFigures {
  /** Metrics on (default), no subscribers (b), vs recordTiming: false (a). */
  metrics: Paired;
  /** weft/otel and a real SDK, main thread and workers (b), vs the same runtime setup without OpenTelemetry (a). */
  otel: Paired;
  /** Two runtimes alike (metrics on), as a pair is measured: how far apart the same thing reads on this machine now. */
  control: Paired;
  rows: Row[];
}

export async function runObservabilityBench(): Promise<ObservabilityBenchFigures> {
  const plain = new URL(import.meta.url);
  const traced = new URL('./fixtures/otel-operations.ts', import.meta.url);
  const on = await Runtime.inMemory({ workers: THREADS, operations: plain });
  const off = await Runtime.inMemory({ workers: THREADS, operations: plain, recordTiming: false });
  const again = await Runtime.inMemory({ workers: THREADS, operations: plain });
  let metrics: Paired;
  let control: Paired;
  try {
    metrics = await pair(off, on);
    control = await pair(again, on);
  } finally {
    await Promise.all([on.close(), off.close(), again.close()]);
  }

  const none = await Runtime.inMemory({ workers: THREADS, operations: plain });
  const withOtel = await Runtime.inMemory({ workers: THREADS, operations: traced });
  const manager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(manager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const { instrument } = await import('../src/otel.ts');
  let instrumentation: { disable(): void } | undefined;
  let otel: Paired;
  try {
    otel = await pair(none, withOtel, {
      before: () => (instrumentation = instrument({ tracerProvider: provider })),
      after: () => {
        instrumentation?.disable();
        exporter.reset();
      },
    });
  } finally {
    context.disable();
    propagation.disable();
    await Promise.all([none.close(), withOtel.close()]);
  }
  // Each figure twice: the best round of each side, and the median of the
  // round-by-round ratios (the two rounds of a pair share the machine's
  // load of the moment, so a drift of the load over the run, which can
  // hand one side's best round a quieter minute, cancels out).
  const rows = (name: string, { a, b, ratio }: Paired, anchorName: string, target?: number) => [
    rowOf({ suite: 'observability', name, weft: b.wall, anchor: a.wall, anchorName, unit: 'tasks/s', target }),
    rowOf({ suite: 'observability', name: `${name}, per CPU second`, weft: b.cpu, anchor: a.cpu, anchorName, unit: 'tasks/CPU-s', target }),
    rowOf({ suite: 'observability', name: `${name}, round by round`, weft: ratio.wall, anchor: 1, anchorName: `${anchorName}, same round`, unit: 'x', target }),
    rowOf({ suite: 'observability', name: `${name}, round by round, per CPU second`, weft: ratio.cpu, anchor: 1, anchorName: `${anchorName}, same round`, unit: 'x', target }),
  ];
  return {
    metrics,
    otel,
    control,
    rows: [
      ...rows(`tiny tasks, ${THREADS} threads, metrics on, no subscribers`, metrics, 'recordTiming: false', 0.97),
      ...rows(`tiny tasks, ${THREADS} threads, weft/otel + SDK (in-memory exporter)`, otel, 'no OpenTelemetry', 0.85),
      ...rows(`control: tiny tasks, ${THREADS} threads, metrics on`, control, 'the same, another runtime'),
    ],
  };
}

if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(`load average ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  printRows((await runObservabilityBench()).rows);
}
