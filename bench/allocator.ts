// The allocator suite: weft's channels beside MessagePort.postMessage between
// the same two worker threads, in one run, plus two single-thread ceilings
// (msgpackr's encode rate, Buffer.copy bandwidth). It runs on default
// options, as users do (large messages then go through the sender's slab);
// then its 1 MiB tasks run again on two fresh threads with rings large
// enough that a 1 MiB message is one frame, and no slab, to measure the
// ring path. Large messages (64 KiB, 1 MiB, 16 MiB) are compared with
// postMessage's clone and transfer between the same threads, and with their
// floor: a fresh buffer and one copy out of shared memory, on one thread,
// which any receiver that owns its messages pays. Every weft
// figure is printed with its anchor and the ratio; absolute numbers are this
// run's only.
//
//   npx tsx bench/allocator.ts          (alone)
//   npm run bench                       (with the other suites)

import { BroadcastChannel, MessageChannel, type Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Config, initialize } from '../src/index.ts';
import { THREADS_CHANNEL, type Measured, type Plan } from './fixtures/allocator-worker.ts';
import { printRows, rowOf, type Row } from './report.ts';

const MiB = 1 << 20;
/** Large enough that a 1 MiB message is one frame (a frame may take half the ring); with no slab, so it goes there. */
const RING_BYTES = 4 * MiB;

export const defaultPlan: Plan = {
  objects: 200_000,
  asyncPings: 20_000,
  postObjects: 100_000,
  numbers: 4_000_000,
  postNumbers: 100_000,
  pings: 20_000,
  parkedPings: 2_000,
  postPings: 2_000,
  frames: 200,
  frameBytes: MiB,
  encodeObjects: 200_000,
  large: [[64 << 10, 2_000], [MiB, 200], [16 * MiB, 12]],
  timeMs: 1_500,
  // WEFT_BENCH_ONLY=<regexp>: run only the matching tasks, e.g. 'numbers'.
  ...(process.env.WEFT_BENCH_ONLY ? { only: process.env.WEFT_BENCH_ONLY } : {}),
};

export interface AllocatorFigures {
  suite: 'allocator';
  rows: Row[];
  raw: Measured[];
}

/** The tasks run again on tuned rings; their names get TUNED appended. */
const TUNED_TASKS = ['weft 1 MiB frames', 'weft 1 MiB frames, borrowed', 'Buffer.copy 1 MiB', 'allocate + copy 1 MiB'];
const TUNED = ', 4 MiB rings, no slab';
/** On the default rings: every task but those only the tuned rows use. */
const UNTUNED_ONLY = '^(?!weft 1 MiB frames, borrowed$|allocate \\+ copy 1 MiB$)';

const exactly = (names: readonly string[]): string => `^(?:${names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`;

/**
 * Runs the suite on two fresh worker threads with default options, then
 * its 1 MiB tasks again on rings large enough that a 1 MiB message is one
 * frame, and returns its rows. `plan.only` narrows both passes.
 */
export async function runAllocatorBench(plan: Plan = defaultPlan): Promise<AllocatorFigures> {
  const raw = await measure({ ...plan, only: plan.only ?? UNTUNED_ONLY }, {});
  const tuned = TUNED_TASKS.filter((name) => plan.only === undefined || new RegExp(plan.only).test(name));
  if (tuned.length > 0) {
    const big = await measure({ ...plan, only: exactly(tuned) }, { ringBytes: RING_BYTES, slabBytes: 0 });
    raw.push(...big.map((m) => ({ ...m, name: m.name + TUNED })));
  }
  return { suite: 'allocator', rows: rows(raw, plan), raw };
}

async function measure(plan: Plan, options: { ringBytes?: number; slabBytes?: number }): Promise<Measured[]> {
  // The postMessage anchor must run between the very threads weft uses, so
  // each gets one end of a MessageChannel as soon as it exists.
  // Under tsx, its own thread starts too: weft's are the two that announce
  // their ids.
  const started: Worker[] = [];
  const collect = (w: Worker): void => void started.push(w);
  const announced = new BroadcastChannel(THREADS_CHANNEL);
  const ids = new Set<number>();
  const both = new Promise<void>((resolve) => {
    announced.onmessage = (event) => {
      ids.add((event as { data: number }).data);
      if (ids.size === 2) resolve();
    };
  });
  process.on('worker', collect);
  try {
    const guards = await initialize<Measured[] | undefined>(Config.process(2, options), {
      module: fileURLToPath(new URL('./fixtures/allocator-worker.ts', import.meta.url)),
    });
    await both;
    const threads = started.filter((w) => ids.has(w.threadId));
    if (threads.length !== 2) throw new Error(`expected 2 weft threads among ${started.length} started, found ${threads.length}`);
    const { port1, port2 } = new MessageChannel();
    threads[0]!.postMessage({ port: port1, plan }, [port1]);
    threads[1]!.postMessage({ port: port2, plan }, [port2]);
    return (await guards.join()).find((r) => r !== undefined)!;
  } finally {
    process.off('worker', collect);
    announced.close();
  }
}

function rows(raw: Measured[], plan: Plan): Row[] {
  const by = new Map(raw.map((m) => [m.name, m]));
  const get = (name: string): Measured => {
    const m = by.get(name);
    if (m === undefined) throw new Error(`bench task ${name} did not run`);
    return m;
  };
  const rate = (name: string): number => {
    const m = get(name);
    return m.perRound / (m.medianMs / 1000);
  };
  const micros = (name: string): number => {
    const m = get(name);
    return (m.medianMs * 1000) / m.perRound;
  };
  const throughput = (name: string, weft: string, anchor: string, unit: string, target: number | undefined): Row => {
    const w = rate(weft);
    const a = rate(anchor);
    return rowOf({ suite: 'allocator', name, weft: w, anchor: a, anchorName: anchor, unit, target });
  };
  const latency = (name: string, weft: string, target: number | undefined): Row => {
    const w = micros(weft);
    const a = micros('postMessage ping-pong');
    return rowOf({ suite: 'allocator', name, weft: w, anchor: a, anchorName: 'postMessage ping-pong', unit: 'us/round trip', target, higherIsBetter: false });
  };
  // Async against sync on the same work: the ratio is sync time over async time.
  const versus = (name: string, async: string, sync: string, target: number): Row => {
    const w = micros(async);
    const s = micros(sync);
    return rowOf({ suite: 'allocator', name, weft: w, anchor: s, anchorName: sync, unit: 'us/round trip', target, higherIsBetter: false });
  };
  const all: (() => Row)[] = [
    () => throughput('small objects {i, x}', 'weft objects', 'postMessage objects', 'msg/s', 8),
    () => throughput('small objects, for await receive', 'weft objects, for await', 'postMessage objects', 'msg/s', 8),
    () => throughput('for await vs the sync recv() loop', 'weft objects, for await', 'weft objects', 'msg/s', 0.7),
    () => throughput('small objects, batches() receive', 'weft objects, batches()', 'postMessage objects', 'msg/s', 8),
    () => throughput('batches() vs the sync recv() loop', 'weft objects, batches()', 'weft objects', 'msg/s', 0.7),
    () => throughput('objects vs encode ceiling', 'weft objects', 'msgpackr pack, 256 per call', 'msg/s', undefined),
    () => throughput('msgpackr pack, 1 per call', 'msgpackr pack, 1 per call', 'postMessage objects', 'msg/s', undefined),
    () => throughput('numbers', 'weft numbers', 'postMessage numbers', 'msg/s', 100),
    () => latency('ping-pong (spinning)', 'weft ping-pong (spinning)', 20),
    () => latency('ping-pong (parked)', 'weft ping-pong (parked)', undefined),
    () => latency('ping-pong (async, for await)', 'weft ping-pong (async)', 20),
    () => latency('ping-pong (async, parked)', 'weft ping-pong (async, parked)', undefined),
    () => versus('async ping-pong vs sync (spinning)', 'weft ping-pong (async)', 'weft ping-pong (spinning)', 0.7),
    () => versus('async ping-pong vs sync (parked)', 'weft ping-pong (async, parked)', 'weft ping-pong (parked)', 0.7),
    () => throughput('1 MiB messages, default options (through the slab)', 'weft 1 MiB frames', 'Buffer.copy 1 MiB', 'frames/s', undefined),
    () => throughput('1 MiB frames (4 MiB rings, no slab)', `weft 1 MiB frames${TUNED}`, `Buffer.copy 1 MiB${TUNED}`, 'frames/s', 0.5),
    () => throughput('1 MiB frames (4 MiB rings, no slab) vs owned copy', `weft 1 MiB frames${TUNED}`, `allocate + copy 1 MiB${TUNED}`, 'frames/s', undefined),
    () => throughput('1 MiB frames (4 MiB rings, no slab), borrowed (zero-copy receive)', `weft 1 MiB frames, borrowed${TUNED}`, `Buffer.copy 1 MiB${TUNED}`, 'frames/s', 0.5),
    ...plan.large.flatMap(([bytes]) => {
      const label = bytes >= MiB ? `${bytes / MiB} MiB` : `${bytes >> 10} KiB`;
      return [
        () => throughput(`${label} messages, receiver owns a copy`, `weft ${label} owned`, `postMessage ${label} clone`, 'msg/s', 2),
        () => throughput(`${label} messages, receiver owns a copy, vs its floor`, `weft ${label} owned`, `allocate + copy ${label} from shared memory`, 'msg/s', undefined),
        () => throughput(`${label} messages, receiver owns a copy, vs transfer`, `weft ${label} owned`, `postMessage ${label} transfer`, 'msg/s', bytes === MiB ? 1 : undefined),
        () => throughput(`${label} messages, loaned chunk, borrowed`, `weft ${label} loan + borrow`, `postMessage ${label} transfer`, 'msg/s', bytes === MiB ? 5 : undefined),
      ];
    }),
  ];
  // With WEFT_BENCH_ONLY some tasks did not run: print what can be computed.
  const out: Row[] = [];
  for (const make of all) {
    try {
      out.push(make());
    } catch (error) {
      if (!/did not run/.test((error as Error).message)) throw error;
    }
  }
  return out;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const figures = await runAllocatorBench();
  printRows(figures.rows);
}
