// AMQP backend benchmark, each figure beside its anchor, in one run, on one
// RabbitMQ node the bench starts and stops (its own name, ports and data
// directory, as the tests' node: test/setup/rabbitmq-node.ts):
// - tiny tasks per second through `Runtime.amqp` and one worker, against a
//   bare amqplib round trip doing the same broker work: tasks batched into
//   the same number of messages, a quorum task queue, persistent results to
//   a durable reply queue, publisher confirms, a consumer that acks after
//   its reply is confirmed, as many messages prefetched as weft's worker
//   holds by default (target: weft's overhead under 20%, ratio >= 0.8).
//   Both sides are timed warm: one runtime and one worker serve every
//   round, as a worker lives on between directives, after WARMUP_TASKS on
//   each side (see WARMUP_TASKS);
// - the same against bare amqplib with one message per task, the way a
//   hand-rolled job queue does it;
// - the same tasks on BullMQ 6 on Redis (bench/bullmq.ts: its own
//   redis-server, one worker process) (target: weft >= 10x);
// - the same tasks on `Runtime.inMemory` (2 threads), for scale;
// - CPU-bound tasks on one `weft worker --threads 2` process beside two
//   `--threads 1` processes, rounds interleaved (target: about 1x: a
//   process's threads serve as well as as many processes);
// - how long a directive's abort takes to reach a running task's
//   `ctx.signal` on a worker process (docs/runtime.md promises 1 s on AMQP):
//   a few observations, printed, not a row (it has no anchor).
// Run alone with `npx tsx bench/amqp.ts`. This file is also the operations
// module of the in-memory workers, so its top level only defines.

import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { connect, type ConfirmChannel } from 'amqplib';
import { Packr } from 'msgpackr';
import { Runtime, WorkerRuntime, defineOperation } from '../src/runtime/index.ts';
import { rowOf, type Row } from './report.ts';
import { bullmqTinyTasks } from './bullmq.ts';
import { rabbitmqScripts, startedNode, stopNode } from '../test/setup/rabbitmq-node.ts';

const increment = (n: number): number => n + 1;
const Increment = defineOperation('bench.amqp.Increment', increment);
/** Busy for `ms` milliseconds: a CPU-bound task. */
const Spin = defineOperation('bench.amqp.Spin', (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
  return ms;
});
/** Appends `started` to `log`, then on its signal's abort appends `aborted <Date.now()>` and rejects. */
const AwaitAbort = defineOperation('bench.amqp.AwaitAbort', async (log: string, ctx) => {
  appendFileSync(log, 'started\n');
  await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
  appendFileSync(log, `aborted ${Date.now()}\n`);
  throw ctx.signal.reason;
});

/** The bench's own node, set by runAmqpBench. */
let URL_ = '';
// Rounds of 100 000 tasks and the best of 5 for each side: rounds of 20 000
// lasted under 100 ms and swung by 2x with the broker's mood.
const TASKS = 100_000;
const PER_MESSAGE_TASKS = 2_000;
const BATCH = 256;
/** Tasks in flight at once, as weft's default `maxInFlight`. */
const WINDOW = 4096;
/**
 * Messages a consumer holds unacked: weft's default for a worker of one
 * thread (4 per thread, at least 8), on both sides. With 4 (this bench's
 * figure before 2026-12-07), weft's worker, whose messages cross to a
 * thread and back, waited on its pipeline: 55-65 k tasks/s warm where 8
 * made 159-228 k and the bare loop 110-216 k either way.
 */
const PREFETCH = 8;
/**
 * Tasks each side runs before its rounds are timed. A fresh worker thread
 * compiles its code as it goes: over its first 100 000 tiny tasks V8's
 * compiler threads took 0.6 ms of CPU per message (the task thread itself
 * 0.28), on 2 cores the broker shares, and the round measured mostly that;
 * after 200 000 they took 0.13. A worker serves for hours, so its warm
 * rate is its rate; the bare loop is warmed as much.
 */
const WARMUP_TASKS = 200_000;
const ROUNDS = 5;
/** BullMQ does a few thousand tasks/s: rounds of 5 000. */
const BULLMQ_TASKS = 5_000;
/** CPU-bound tasks per round of the threads-beside-processes figure, and their cost. */
const SPIN_TASKS = 1_000;
const SPIN_MS = 2;
const SPIN_ROUNDS = 3;
const ABORT_OBSERVATIONS = 5;
const OPERATIONS = fileURLToPath(import.meta.url);
const WEFT = fileURLToPath(new URL('../bin/weft.mjs', import.meta.url));

export interface AmqpBenchFigures {
  tasks: number;
  weftPerSecond: number;
  bareBatchedPerSecond: number;
  barePerMessagePerSecond: number;
  inMemoryPerSecond: number;
  /** CPU-bound tasks per second: one worker process of 2 threads, and two of 1 thread each (best of the rounds). */
  twoThreadsPerSecond: number;
  twoProcessesPerSecond: number;
  /** Each round's ratio of the two above. */
  threadRatios: number[];
  /** Milliseconds from `abort()` to the running task's signal, per observation (Infinity: not within 5 s). */
  abortToSignalMs: number[];
  /** Or why BullMQ was not measured. */
  bullmqPerSecond: number | string;
  rows: Row[];
  skipped?: string;
}

const packr = new Packr({ useRecords: true });

/** A bare producer/consumer pair on its own queues; resolves to tasks per second for `tasks` tasks in messages of `batch`. */
export async function bareRoundTrip(tasks: number, batch: number): Promise<number> {
  const prefix = `weft-bench.bare.${process.pid}.${Date.now().toString(36)}`;
  const taskQueue = `${prefix}.tasks`;
  const replyQueue = `${prefix}.replies`;
  const producer = await connect(URL_, { noDelay: true });
  const consumer = await connect(URL_, { noDelay: true });
  try {
    const pch = await producer.createConfirmChannel();
    const cch = await consumer.createConfirmChannel();
    await pch.assertQueue(taskQueue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await pch.assertQueue(replyQueue, { durable: true });
    await cch.prefetch(PREFETCH);
    await cch.consume(taskQueue, (message) => {
      if (message === null) return;
      const inputs = packr.unpack(message.content) as number[];
      const outputs = inputs.map(increment);
      cch.publish('', replyQueue, packr.pack(outputs), { persistent: true }, (error: unknown) => {
        if (!error) cch.ack(message);
      });
    });
    const publish = (channel: ConfirmChannel, inputs: number[]) =>
      channel.publish('', taskQueue, packr.pack(inputs), { persistent: true, replyTo: replyQueue }, () => {});
    const started = performance.now();
    let sent = 0;
    let received = 0;
    await new Promise<void>((resolve) => {
      const refill = () => {
        while (sent < tasks && sent - received < WINDOW) {
          const count = Math.min(batch, tasks - sent);
          publish(pch, Array.from({ length: count }, (_, i) => sent + i));
          sent += count;
        }
      };
      void pch.consume(replyQueue, (message) => {
        if (message === null) return;
        received += (packr.unpack(message.content) as number[]).length;
        pch.ack(message);
        if (received >= tasks) resolve();
        else refill();
      });
      refill();
    });
    const perSecond = (tasks / (performance.now() - started)) * 1000;
    await pch.deleteQueue(taskQueue);
    await pch.deleteQueue(replyQueue);
    return perSecond;
  } finally {
    await consumer.close().catch(() => {});
    await producer.close().catch(() => {});
  }
}

/** `Runtime.amqp` and one worker (in this process, one thread, default prefetch) on their own prefix, warmed up: `round` times one fanout. */
export async function weftSide(): Promise<{ round(tasks: number): Promise<number>; close(): Promise<void> }> {
  const prefix = `weft-bench.weft.${process.pid}.${Date.now().toString(36)}`;
  const runtime = await Runtime.amqp({ url: URL_, prefix, maxBatch: BATCH, maxInFlight: WINDOW });
  // One worker thread: one worker, as the bare consumer is one.
  const worker = await WorkerRuntime.amqp({ url: URL_, prefix, threads: 1, operations: OPERATIONS });
  const close = async () => {
    await worker.close();
    await runtime.close();
    await deleteTopology(prefix);
  };
  const round = async (tasks: number) => {
    const inputs = Array.from({ length: tasks }, (_, i) => i);
    const started = performance.now();
    const outputs = await runtime.fanout(Increment, inputs);
    const perSecond = (tasks / (performance.now() - started)) * 1000;
    if (outputs[tasks - 1] !== tasks) throw new Error('wrong outputs');
    return perSecond;
  };
  try {
    await round(WARMUP_TASKS);
  } catch (error) {
    await close();
    throw error;
  }
  return { round, close };
}

async function deleteTopology(prefix: string): Promise<void> {
  const connection = await connect(URL_);
  const channel = await connection.createChannel();
  for (const name of ['tasks', 'dead']) await channel.deleteQueue(`${prefix}.${name}`);
  for (const name of ['tasks', 'dead', 'control']) await channel.deleteExchange(`${prefix}.${name}`);
  await connection.close();
}

/** `weft worker --amqp` as a child process; resolves once it serves. */
async function workerProcess(prefix: string, threads: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [WEFT, 'worker', '--amqp', URL_, '--operations', OPERATIONS, '--prefix', prefix, '--threads', String(threads)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (/serving /.test(line)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`weft worker exited (${code}) before serving`)));
  });
  return child;
}

async function stopProcesses(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map((child) => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      return exited;
    }),
  );
}

/** CPU-bound tasks per second on worker processes of `threads` threads each. */
async function spinRound(processes: number, threads: number): Promise<number> {
  const prefix = `weft-bench.spin.${process.pid}.${Date.now().toString(36)}`;
  const runtime = await Runtime.amqp({ url: URL_, prefix });
  const children = await Promise.all(Array.from({ length: processes }, () => workerProcess(prefix, threads)));
  try {
    const inputs = Array.from({ length: SPIN_TASKS }, () => SPIN_MS);
    await runtime.fanout(Spin, inputs.slice(0, 100));
    const started = performance.now();
    await runtime.fanout(Spin, inputs);
    return (SPIN_TASKS / (performance.now() - started)) * 1000;
  } finally {
    await stopProcesses(children);
    await runtime.close();
    await deleteTopology(prefix);
  }
}

/** Milliseconds from a directive's abort to its running task's signal on a worker process, per observation. */
async function abortToSignal(observations: number): Promise<number[]> {
  const prefix = `weft-bench.abort.${process.pid}.${Date.now().toString(36)}`;
  const runtime = await Runtime.amqp({ url: URL_, prefix });
  const child = await workerProcess(prefix, 1);
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-abort-'));
  const latencies: number[] = [];
  const lines = (log: string) => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
  /** Waits for `done`; false if it is still not after `ms`. */
  const until = async (done: () => boolean, ms: number) => {
    const end = performance.now() + ms;
    while (!done()) {
      if (performance.now() > end) return false;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    return true;
  };
  try {
    for (let n = 0; n < observations; n++) {
      const log = join(dir, `run-${n}`);
      const controller = new AbortController();
      const directive = runtime.call(AwaitAbort, log, { signal: controller.signal }).catch(() => {});
      if (!(await until(() => lines(log).length > 0, 30_000))) throw new Error('the task never started');
      const abortedAt = Date.now();
      controller.abort();
      await directive;
      // The task writes the moment its signal aborted; waiting for the line costs nothing measured.
      // A signal not reached within 5 s counts as Infinity (and no more are tried).
      if (!(await until(() => lines(log).length > 1, 5_000))) {
        latencies.push(Infinity);
        break;
      }
      latencies.push(Number(lines(log)[1]!.split(' ')[1]) - abortedAt);
    }
    return latencies;
  } finally {
    await stopProcesses([child]);
    await runtime.close();
    await deleteTopology(prefix);
  }
}

export async function inMemory(tasks: number): Promise<number> {
  const runtime = await Runtime.inMemory({ workers: 2, operations: fileURLToPath(import.meta.url) });
  try {
    const inputs = Array.from({ length: tasks }, (_, i) => i);
    await runtime.fanout(Increment, inputs.slice(0, 2_000));
    const started = performance.now();
    await runtime.fanout(Increment, inputs);
    return (tasks / (performance.now() - started)) * 1000;
  } finally {
    await runtime.close();
  }
}

const best = async (run: () => Promise<number>) => {
  let top = 0;
  for (let round = 0; round < ROUNDS; round++) top = Math.max(top, await run());
  return top;
};

function rowsOf(f: Omit<AmqpBenchFigures, 'rows'>): Row[] {
  const row = (name: string, anchor: number, anchorName: string, target: number | undefined, weft = f.weftPerSecond): Row =>
    rowOf({ suite: 'amqp', name, weft, anchor, anchorName, unit: 'tasks/s', target });
  return [
    row('tiny tasks, 1 worker', f.bareBatchedPerSecond, `bare amqplib, ${BATCH}/message`, 0.8),
    row('tiny tasks vs one message per task', f.barePerMessagePerSecond, 'bare amqplib, 1/message', undefined),
    ...(typeof f.bullmqPerSecond === 'number'
      ? [row('tiny tasks, 1 worker vs BullMQ', f.bullmqPerSecond, 'BullMQ 6 on Redis, 1 worker process', 10)]
      : []),
    row('tiny tasks vs in-memory', f.inMemoryPerSecond, 'weft inMemory, 2 threads', undefined),
    row(`${SPIN_MS} ms tasks, 1 worker process x 2 threads`, f.twoProcessesPerSecond, '2 worker processes x 1 thread', 1, f.twoThreadsPerSecond),
  ];
}

export async function runAmqpBench(): Promise<AmqpBenchFigures> {
  if (rabbitmqScripts() === undefined) {
    const skipped = 'rabbitmq-server is not installed (Debian/Ubuntu: sudo apt-get install rabbitmq-server)';
    console.log(`bench/amqp.ts: skipped: ${skipped}`);
    return {
      tasks: 0,
      weftPerSecond: 0,
      bareBatchedPerSecond: 0,
      barePerMessagePerSecond: 0,
      inMemoryPerSecond: 0,
      twoThreadsPerSecond: 0,
      twoProcessesPerSecond: 0,
      threadRatios: [],
      abortToSignalMs: [],
      bullmqPerSecond: skipped,
      rows: [],
      skipped,
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-rabbitmq-'));
  try {
    URL_ = (await startedNode(dir)).url;
    return await measure();
  } finally {
    await stopNode(dir);
  }
}

async function measure(): Promise<AmqpBenchFigures> {
  // Interleaved rounds, so that a slow moment of the broker hits both sides.
  let weftPerSecond = 0;
  let bareBatchedPerSecond = 0;
  const say = (line: string) => console.log(`bench/amqp.ts: ${line}`);
  // Each round's ratio too: on a shared machine the best of each side can
  // come from different moments, and the rounds' ratios show how far apart.
  const roundRatios: number[] = [];
  await bareRoundTrip(WARMUP_TASKS, BATCH);
  const weftRounds = await weftSide();
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const bare = await bareRoundTrip(TASKS, BATCH);
      const weft = await weftRounds.round(TASKS);
      roundRatios.push(weft / bare);
      say(`round ${round + 1}/${ROUNDS}: weft ${weft.toFixed(0)} tasks/s, bare amqplib ${bare.toFixed(0)} tasks/s (${(weft / bare).toFixed(2)}x)`);
      bareBatchedPerSecond = Math.max(bareBatchedPerSecond, bare);
      weftPerSecond = Math.max(weftPerSecond, weft);
    }
  } finally {
    await weftRounds.close();
  }
  const sorted = [...roundRatios].sort((a, b) => a - b);
  say(`weft / bare amqplib per round: median ${sorted[sorted.length >> 1]!.toFixed(2)}x, ${sorted[0]!.toFixed(2)}x-${sorted.at(-1)!.toFixed(2)}x`);
  const barePerMessagePerSecond = await best(() => bareRoundTrip(PER_MESSAGE_TASKS, 1));
  say(`bare amqplib, one message per task: ${barePerMessagePerSecond.toFixed(0)} tasks/s`);
  const inMemoryPerSecond = await best(() => inMemory(TASKS));
  say(`Runtime.inMemory, 2 threads: ${inMemoryPerSecond.toFixed(0)} tasks/s`);
  const bullmqPerSecond = await bullmqTinyTasks(BULLMQ_TASKS, 3);
  say(`BullMQ, 1 worker process: ${typeof bullmqPerSecond === 'number' ? `${bullmqPerSecond.toFixed(0)} tasks/s` : bullmqPerSecond}`);
  let twoThreadsPerSecond = 0;
  let twoProcessesPerSecond = 0;
  const threadRatios: number[] = [];
  for (let round = 0; round < SPIN_ROUNDS; round++) {
    const threads = await spinRound(1, 2);
    const processes = await spinRound(2, 1);
    say(`round ${round + 1}/${SPIN_ROUNDS}: ${SPIN_MS} ms tasks, 1 process x 2 threads ${threads.toFixed(0)} tasks/s, 2 processes x 1 thread ${processes.toFixed(0)} tasks/s`);
    threadRatios.push(threads / processes);
    twoThreadsPerSecond = Math.max(twoThreadsPerSecond, threads);
    twoProcessesPerSecond = Math.max(twoProcessesPerSecond, processes);
  }
  const abortToSignalMs = await abortToSignal(ABORT_OBSERVATIONS);
  say(`abort to ctx.signal on a worker process: ${abortToSignalMs.join(', ')} ms`);
  const figures = {
    tasks: TASKS,
    weftPerSecond,
    bareBatchedPerSecond,
    barePerMessagePerSecond,
    inMemoryPerSecond,
    twoThreadsPerSecond,
    twoProcessesPerSecond,
    threadRatios,
    abortToSignalMs,
    bullmqPerSecond,
  };
  return { ...figures, rows: rowsOf(figures) };
}

// Worker threads of the in-memory runtime import this file too: only the
// main thread runs the bench. Not awaited at top level: the in-process AMQP
// worker imports this module, which must have finished evaluating first.
if (isMainThread && process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  void (async () => {
    const { printRows } = await import('./report.ts');
    const figures = await runAmqpBench();
    if (figures.rows.length > 0) printRows(figures.rows);
    console.log(JSON.stringify({ ...figures, rows: undefined }, null, 2));
    setTimeout(() => process.exit(), 100).unref();
  })();
}
