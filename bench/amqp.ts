// AMQP backend benchmark, each figure beside its anchor, in one run, on one
// RabbitMQ node the bench starts and stops (its own name, ports and data
// directory, as the tests' node: test/setup/rabbitmq-node.ts):
// - tiny tasks per second through `Runtime.amqp` and one worker, against a
//   bare amqplib round trip doing the same broker work: tasks batched into
//   the same number of messages, a quorum task queue, persistent results to
//   a durable reply queue, publisher confirms, a consumer that acks after
//   its reply is confirmed (target: weft's overhead under 20%, ratio >= 0.8);
// - the same against bare amqplib with one message per task, the way a
//   hand-rolled job queue does it;
// - the same tasks on BullMQ 6 on Redis (bench/bullmq.ts: its own
//   redis-server, one worker process) (target: weft >= 10x);
// - the same tasks on `Runtime.inMemory` (2 threads), for scale.
// Run alone with `npx tsx bench/amqp.ts`. This file is also the operations
// module of the in-memory workers, so its top level only defines.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { connect, type ConfirmChannel } from 'amqplib';
import { Packr } from 'msgpackr';
import { Runtime, WorkerRuntime, defineOperation } from '../src/runtime/index.ts';
import type { Row } from './report.ts';
import { bullmqTinyTasks } from './bullmq.ts';
import { rabbitmqScripts, startedNode, stopNode } from '../test/setup/rabbitmq-node.ts';

const increment = (n: number): number => n + 1;
const Increment = defineOperation('bench.amqp.Increment', increment);

/** The bench's own node, set by runAmqpBench. */
let URL_ = '';
// Rounds of 100 000 tasks and the best of 5 for each side: rounds of 20 000
// lasted under 100 ms and swung by 2x with the broker's mood.
const TASKS = 100_000;
const PER_MESSAGE_TASKS = 2_000;
const BATCH = 256;
/** Tasks in flight at once, as weft's default `maxInFlight`. */
const WINDOW = 4096;
const PREFETCH = 4;
const ROUNDS = 5;
/** BullMQ does a few thousand tasks/s: rounds of 5 000. */
const BULLMQ_TASKS = 5_000;

export interface AmqpBenchFigures {
  tasks: number;
  weftPerSecond: number;
  bareBatchedPerSecond: number;
  barePerMessagePerSecond: number;
  inMemoryPerSecond: number;
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

export async function weftRoundTrip(tasks: number): Promise<number> {
  const prefix = `weft-bench.weft.${process.pid}.${Date.now().toString(36)}`;
  const runtime = await Runtime.amqp({ url: URL_, prefix, maxBatch: BATCH, maxInFlight: WINDOW });
  const worker = await WorkerRuntime.amqp({ url: URL_, prefix, prefetch: PREFETCH, operations: fileURLToPath(import.meta.url) });
  try {
    const inputs = Array.from({ length: tasks }, (_, i) => i);
    // A warm-up run teaches the backend the task cost (its batch size).
    await runtime.fanout(Increment, inputs.slice(0, 2_000));
    const started = performance.now();
    const outputs = await runtime.fanout(Increment, inputs);
    const perSecond = (tasks / (performance.now() - started)) * 1000;
    if (outputs[tasks - 1] !== tasks) throw new Error('wrong outputs');
    return perSecond;
  } finally {
    await worker.close();
    await runtime.close();
    const connection = await connect(URL_);
    const channel = await connection.createChannel();
    for (const name of ['tasks', 'dead']) await channel.deleteQueue(`${prefix}.${name}`);
    for (const name of ['tasks', 'dead', 'control']) await channel.deleteExchange(`${prefix}.${name}`);
    await connection.close();
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
  const row = (name: string, anchor: number, anchorName: string, target: number | undefined, weft = f.weftPerSecond): Row => ({
    suite: 'amqp',
    name,
    weft,
    anchor,
    anchorName,
    unit: 'tasks/s',
    ratio: weft / anchor,
    target,
    higherIsBetter: true,
  });
  return [
    row('tiny tasks, 1 worker', f.bareBatchedPerSecond, `bare amqplib, ${BATCH}/message`, 0.8),
    row('tiny tasks vs one message per task', f.barePerMessagePerSecond, 'bare amqplib, 1/message', undefined),
    ...(typeof f.bullmqPerSecond === 'number'
      ? [row('tiny tasks, 1 worker vs BullMQ', f.bullmqPerSecond, 'BullMQ 6 on Redis, 1 worker process', 10)]
      : []),
    row('tiny tasks vs in-memory', f.inMemoryPerSecond, 'weft inMemory, 2 threads', undefined),
  ];
}

export async function runAmqpBench(): Promise<AmqpBenchFigures> {
  if (rabbitmqScripts() === undefined) {
    const skipped = 'rabbitmq-server is not installed (Debian/Ubuntu: sudo apt-get install rabbitmq-server)';
    console.log(`bench/amqp.ts: skipped: ${skipped}`);
    return { tasks: 0, weftPerSecond: 0, bareBatchedPerSecond: 0, barePerMessagePerSecond: 0, inMemoryPerSecond: 0, bullmqPerSecond: skipped, rows: [], skipped };
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
  for (let round = 0; round < ROUNDS; round++) {
    const bare = await bareRoundTrip(TASKS, BATCH);
    const weft = await weftRoundTrip(TASKS);
    say(`round ${round + 1}/${ROUNDS}: weft ${weft.toFixed(0)} tasks/s, bare amqplib ${bare.toFixed(0)} tasks/s`);
    bareBatchedPerSecond = Math.max(bareBatchedPerSecond, bare);
    weftPerSecond = Math.max(weftPerSecond, weft);
  }
  const barePerMessagePerSecond = await best(() => bareRoundTrip(PER_MESSAGE_TASKS, 1));
  say(`bare amqplib, one message per task: ${barePerMessagePerSecond.toFixed(0)} tasks/s`);
  const inMemoryPerSecond = await best(() => inMemory(TASKS));
  say(`Runtime.inMemory, 2 threads: ${inMemoryPerSecond.toFixed(0)} tasks/s`);
  const bullmqPerSecond = await bullmqTinyTasks(BULLMQ_TASKS, 3);
  say(`BullMQ, 1 worker process: ${typeof bullmqPerSecond === 'number' ? `${bullmqPerSecond.toFixed(0)} tasks/s` : bullmqPerSecond}`);
  const figures = { tasks: TASKS, weftPerSecond, bareBatchedPerSecond, barePerMessagePerSecond, inMemoryPerSecond, bullmqPerSecond };
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
