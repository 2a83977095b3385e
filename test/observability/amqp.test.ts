// Observability through RabbitMQ: the orchestrator's metrics carry the AMQP
// workers' run times, one trace goes from the caller's span through a
// `weft worker` process to the task batches on its threads, a worker's
// thread that dies is told on `weft:thread-replaced` in its main thread, and
// a dead letter of a directive is told on `weft:dead-letter`.

import { spawn } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { SpanKind } from '@opentelemetry/api';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { defineOperation, OperationError, prometheusText, Runtime, WorkerRuntime, type DeadLetterMessage, type ThreadReplacedMessage } from '../../src/runtime/index.ts';
import { backendOf } from '../../src/runtime/runtime.ts';
import { decodeTasks, encodeResults, FORMAT, HEADER_FORMAT, HEADER_KEY, HEADER_WORKER } from '../../src/runtime/backends/amqp/shared/messages.ts';
import { namesOf } from '../../src/runtime/backends/amqp/shared/topology.ts';
import { AMQP_URL, brokerAvailable, brokerSession, rawConnection, ROOT, stopWorkers, type WorkerProcess } from '../amqp/helpers.ts';
import { Busy, ExitOnce, Increment } from './fixtures/operations.ts';
import { FileNested } from './fixtures/file-traced-operations.ts';
import { recordOf, type SpanRecord } from './fixtures/span-records.ts';
import { traceInMemory } from './fixtures/tracing.ts';

// Defined here only: the worker processes never import this file.
const Unregistered = defineOperation('obs.test.Unregistered', (n: number) => n);

const available = brokerAvailable('test/observability/amqp.test.ts');
const OPERATIONS = fileURLToPath(new URL('./fixtures/file-traced-operations.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'weft-obs-amqp-'));
const spansFile = join(dir, 'spans.jsonl');

/** `weft worker` serving OPERATIONS, its threads' spans appended to spansFile. */
function tracedWorker(prefix: string): WorkerProcess {
  const child = spawn(process.execPath, [join(ROOT, 'bin/weft.mjs'), 'worker', '--amqp', AMQP_URL, '--operations', OPERATIONS, '--prefix', prefix, '--threads', '2'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, WEFT_TEST_SPANS: spansFile },
  });
  const stderr: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  const serving = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderr.push(line);
      if (/serving /.test(line)) resolve();
    });
    void exited.then(({ code, signal }) => reject(new Error(`worker exited (${code ?? signal}) before serving:\n${stderr.join('\n')}`)));
  });
  return { child, stderr, serving, exited };
}

describe.runIf(available)('observability on Runtime.amqp', () => {
  const session = brokerSession();
  const prefix = session.prefix('observability');
  const workers: WorkerProcess[] = [];

  afterAll(async () => {
    await stopWorkers(workers);
    rmSync(dir, { recursive: true, force: true });
  });

  it('metrics: the run times the worker measured, and waits, per operation', async () => {
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
    const worker = tracedWorker(prefix);
    workers.push(worker);
    await worker.serving;
    await runtime.fanout(Busy, [20, 20, 20, 20]);
    const busy = runtime.metrics().operations['obs.Busy']!;
    expect(busy.completed).toBe(4);
    expect(busy.runTime.count).toBe(4);
    expect(busy.runTime.min).toBeGreaterThanOrEqual(20 - 0.001);
    expect(busy.waitTime.count).toBe(4);
  });

  it('metrics: per-worker busy time and utilization of two AMQP workers, each under its AmqpWorker.id', async () => {
    const own = session.prefix('observability-workers');
    // One task per message, and one message at a time per worker: both take tasks.
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix: own, maxBatch: 1 });
    const operations = new URL('./fixtures/operations.ts', import.meta.url);
    const served = await Promise.all([1, 2].map(() => WorkerRuntime.amqp({ url: AMQP_URL, prefix: own, operations, threads: 1, prefetch: 1 })));
    try {
      const MS = 30;
      const TASKS = 12;
      await runtime.fanout(Busy, Array.from({ length: TASKS }, () => MS));
      const metrics = runtime.metrics();
      expect(metrics.workers.map((worker) => worker.id).sort()).toEqual(served.map((worker) => worker.id).sort());
      expect(metrics.workers.reduce((sum, worker) => sum + worker.completed, 0)).toBe(TASKS);
      for (const worker of metrics.workers) {
        expect(worker.completed).toBeGreaterThan(0);
        // Each task spun MS on its thread: busy time is at least that per task.
        expect(worker.busyMs).toBeGreaterThanOrEqual(worker.completed * MS - 0.001);
        // One thread, synchronous tasks: at most one task running at a time.
        expect(worker.busyMs).toBeLessThanOrEqual(metrics.elapsedMs);
        expect(worker.utilization).toBeCloseTo(worker.busyMs / metrics.elapsedMs, 6);
        expect(worker.utilization).toBeGreaterThan(0);
        expect(worker.utilization).toBeLessThanOrEqual(1);
      }
      // Prometheus text labels each worker with its name, as a real parser reads it.
      const families = parsePrometheusTextFormat(prometheusText(metrics)) as { name: string; metrics: { labels?: Record<string, string>; value?: string }[] }[];
      const busySeconds = families.find((family) => family.name === 'weft_worker_busy_seconds_total')!.metrics;
      expect(busySeconds.map((sample) => sample.labels?.worker_id).sort()).toEqual(served.map((worker) => worker.id).sort());
      for (const sample of busySeconds) {
        expect(Number(sample.value)).toBeCloseTo(metrics.workers.find((worker) => worker.id === sample.labels?.worker_id)!.busyMs / 1000, 9);
      }
      // The orchestrator's operation figures agree with the workers'.
      const busy = metrics.operations['obs.Busy']!;
      expect(busy.runTime.count).toBe(TASKS);
      expect(busy.runTime.mean * TASKS).toBeCloseTo(
        metrics.workers.reduce((sum, worker) => sum + worker.busyMs, 0),
        0,
      );
    } finally {
      await Promise.all(served.map((worker) => worker.close()));
    }
  });

  it('metrics: a worker that names itself not, or not plausibly, has its results counted but no worker entry', async () => {
    const own = session.prefix('observability-anonymous');
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix: own, maxBatch: 1 });
    // A hand-made worker: answers each task message with a result that ran 5 ms, its
    // x-weft-worker by the task's index: none, a number, a name too long, a name.
    const names: unknown[] = [undefined, 42, 'x'.repeat(1_000), 'hostile-worker'];
    const connection = await rawConnection();
    try {
      const channel = await connection.createChannel();
      const { taskQueue } = namesOf(own);
      await channel.consume(taskQueue, (message) => {
        if (message === null) return;
        const key = message.properties.headers![HEADER_KEY] as string;
        const tasks = decodeTasks(message.content, key);
        const results = tasks.map((task) => ({ key, index: task.index, stage: task.stage, attempt: task.attempt, output: (task.input as number) + 1, us: 5_000 }));
        const name = names[tasks[0]!.index];
        const headers: Record<string, unknown> = { [HEADER_FORMAT]: FORMAT, [HEADER_KEY]: key };
        if (name !== undefined) headers[HEADER_WORKER] = name;
        channel.sendToQueue(message.properties.replyTo as string, encodeResults(results), { headers, type: 'weft.results' });
        channel.ack(message);
      });
      expect(await runtime.fanout(Increment, [0, 1, 2, 3])).toEqual([1, 2, 3, 4]);
      const metrics = runtime.metrics();
      expect(metrics.operations['obs.Increment']).toMatchObject({ completed: 4, runTime: { count: 4, min: 5, max: 5 } });
      expect(metrics.workers).toEqual([expect.objectContaining({ id: 'hostile-worker', completed: 1, busyMs: 5 })]);
    } finally {
      await connection.close();
    }
  });

  it('one trace from the caller through the AMQP worker process to its task batches', async () => {
    const { exporter, provider, stop } = traceInMemory();
    try {
      await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
      const traceId = await provider.getTracer('test').startActiveSpan('request', async (span) => {
        await runtime.fanout(Busy, [1, 1, 1, 1, 1]);
        span.end();
        return span.spanContext().traceId;
      });
      const local = exporter.getFinishedSpans().map(recordOf).filter((span) => span.traceId === traceId);
      const request = local.find((span) => span.name === 'request')!;
      const directive = local.find((span) => span.kind === SpanKind.PRODUCER)!;
      expect(directive).toMatchObject({ name: 'send obs.Busy', parentSpanId: request.spanId });
      expect(directive.attributes).toMatchObject({ 'weft.backend': 'amqp', 'messaging.batch.message_count': 5 });
      // The worker process's threads append their spans as they finish them.
      const all = () => (existsSync(spansFile) ? readFileSync(spansFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as SpanRecord) : []);
      const remote = () => all().filter((span) => span.traceId === traceId);
      const counted = () => remote().reduce((sum, span) => sum + (span.attributes['messaging.batch.message_count'] as number), 0);
      await expect.poll(counted, { timeout: 30_000 }).toBe(5);
      for (const batch of remote()) {
        expect(batch).toMatchObject({ name: 'process obs.Busy', kind: SpanKind.CONSUMER, parentSpanId: directive.spanId, links: [directive.spanId] });
      }
      // A task message runs on a thread as one internal task: it is no batch of its own, in this trace or any other.
      expect(new Set(all().map((span) => span.name))).toEqual(new Set(['process obs.Busy']));
    } finally {
      stop();
    }
  });

  it('spans an operation starts on the AMQP worker\'s threads are children of their batch\'s span, for every task of a message', async () => {
    const { provider, stop } = traceInMemory();
    try {
      await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
      const inputs = [1, 2, 3, 4, 5, 6];
      const traceId = await provider.getTracer('test').startActiveSpan('request', async (span) => {
        expect(await runtime.fanout(FileNested, inputs)).toEqual(inputs);
        span.end();
        return span.spanContext().traceId;
      });
      const mine = () => (existsSync(spansFile) ? readFileSync(spansFile, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as SpanRecord) : []).filter((span) => span.traceId === traceId);
      const own = () => mine().filter((span) => /^(a?sync) \d$/.test(span.name));
      const batched = () => mine().filter((span) => span.kind === SpanKind.CONSUMER).reduce((sum, span) => sum + (span.attributes['messaging.batch.message_count'] as number), 0);
      await expect.poll(() => [own().length, batched()], { timeout: 30_000 }).toEqual([2 * inputs.length, inputs.length]);
      const batches = new Map(mine().filter((span) => span.kind === SpanKind.CONSUMER).map((span) => [span.spanId, span]));
      for (const span of own()) expect(batches.get(span.parentSpanId!), `${span.name}'s parent is a batch`).toMatchObject({ name: 'process obs.FileNested' });
      expect(new Set(own().map((span) => span.name))).toEqual(new Set(inputs.flatMap((n) => [`sync ${n}`, `async ${n}`])));
    } finally {
      stop();
    }
  });

  it('weft:thread-replaced tells, in the AMQP worker\'s main thread, of a thread that died running a task', async () => {
    const replaced: ThreadReplacedMessage[] = [];
    const listener = (message: unknown) => replaced.push(message as ThreadReplacedMessage);
    diagnostics.subscribe('weft:thread-replaced', listener);
    // A prefix of its own: the worker processes of the other tests serve the other.
    const own = session.prefix('observability-replaced');
    try {
      await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix: own });
      // This process is the worker: its main thread replaces its thread.
      const worker = await WorkerRuntime.amqp({ url: AMQP_URL, prefix: own, operations: new URL('./fixtures/operations.ts', import.meta.url), threads: 1 });
      try {
        // The thread exits running the task; the task runs again on its replacement.
        expect(await runtime.call(ExitOnce, { value: 7, marker: join(dir, 'exited') })).toBe(7);
        expect(replaced).toEqual([expect.objectContaining({ worker: 0, reason: 'died' })]);
      } finally {
        await worker.close();
      }
    } finally {
      diagnostics.unsubscribe('weft:thread-replaced', listener);
    }
  });

  it('weft:dead-letter names the directive and why its task was dead-lettered: an operation no worker has', async () => {
    const letters: DeadLetterMessage[] = [];
    const listener = (message: unknown) => letters.push(message as DeadLetterMessage);
    diagnostics.subscribe('weft:dead-letter', listener);
    try {
      await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
      const worker = tracedWorker(prefix);
      workers.push(worker);
      await worker.serving;
      const failure = await runtime.call(Unregistered, 7).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(OperationError);
      // The worker answers with an error and dead-letters the message; the letter reaches the orchestrator on its own queue.
      await expect.poll(() => letters.length, { timeout: 20_000 }).toBe(1);
      const id = (backendOf(runtime) as unknown as { id: string }).id;
      expect(letters[0]!.key.startsWith(`${id}.`)).toBe(true);
      expect(letters[0]!.reason).toMatch(/^unknown-operation: 'obs\.test\.Unregistered' not registered/);
    } finally {
      diagnostics.unsubscribe('weft:dead-letter', listener);
    }
  });
});
