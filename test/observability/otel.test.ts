// weft/otel with a real OpenTelemetry SDK: one trace from the caller's span
// through the directive to the task batches on worker threads (each thread
// runs its own SDK, see fixtures/traced-operations.ts), and through the
// processes of a cluster.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel } from 'node:worker_threads';
import { SpanKind, trace } from '@opentelemetry/api';
import { DataPointType, MeterProvider, MetricReader, type HistogramMetricData, type MetricData, type SumMetricData } from '@opentelemetry/sdk-metrics';
import { Config } from '../../src/allocator/index.ts';
import { freePorts } from '../../src/cli/ports.ts';
import { instrument } from '../../src/otel.ts';
import { IndexedStream, Retry, Runtime } from '../../src/runtime/index.ts';
import { Busy, FlakyOnce, Nested, recordOf, SPANS_CHANNEL, type SpanRecord } from './fixtures/traced-operations.ts';
import { traceInMemory } from './fixtures/tracing.ts';

const operations = new URL('./fixtures/traced-operations.ts', import.meta.url);
const { exporter, provider, stop } = traceInMemory();
const tracer = provider.getTracer('test');
let remote: BroadcastChannel;
const remoteSpans: SpanRecord[] = [];

beforeAll(() => {
  remote = new BroadcastChannel(SPANS_CHANNEL);
  remote.onmessage = (event) => remoteSpans.push(...((event as { data: SpanRecord[] }).data));
});

afterAll(() => {
  stop();
  remote.close();
});

/** The worker spans of `traceId`, once they account for `tasks` tasks (spans come as workers finish them). */
async function workerSpans(traceId: string, tasks: number): Promise<SpanRecord[]> {
  const mine = () => remoteSpans.filter((span) => span.traceId === traceId);
  const counted = () => mine().reduce((sum, span) => sum + (span.attributes['messaging.batch.message_count'] as number), 0);
  const deadline = Date.now() + 30_000;
  while (counted() < tasks) {
    if (Date.now() > deadline) throw new Error(`worker spans of trace ${traceId} account for ${counted()} of ${tasks} tasks`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return mine();
}

/** Runs `inputs` through Busy under a parent span; returns the parent, the directive span and the task spans. */
async function tracedRun(runtime: Runtime, inputs: number[]) {
  const parent = await tracer.startActiveSpan('request', async (span) => {
    await runtime.fanout(Busy, inputs);
    span.end();
    return recordOf(exporter.getFinishedSpans().find((s) => s.spanContext().spanId === span.spanContext().spanId) ?? (span as never));
  });
  const local = exporter.getFinishedSpans().map(recordOf).filter((span) => span.traceId === parent.traceId);
  const directive = local.find((span) => span.kind === SpanKind.PRODUCER)!;
  return { parent, directive, tasks: await workerSpans(parent.traceId, inputs.length) };
}

function expectOneTrace(run: Awaited<ReturnType<typeof tracedRun>>, backend: string, tasks: number): void {
  const { parent, directive, tasks: batches } = run;
  expect(directive).toMatchObject({ name: 'send obs.Busy', parentSpanId: parent.spanId });
  expect(directive.attributes).toMatchObject({
    'messaging.system': 'weft',
    'messaging.operation.type': 'send',
    'messaging.destination.name': 'obs.Busy',
    'messaging.batch.message_count': tasks,
    'weft.backend': backend,
  });
  expect(batches.length).toBeGreaterThanOrEqual(1);
  for (const batch of batches) {
    expect(batch).toMatchObject({ name: 'process obs.Busy', kind: SpanKind.CONSUMER, parentSpanId: directive.spanId, links: [directive.spanId] });
    expect(batch.attributes).toMatchObject({ 'messaging.system': 'weft', 'messaging.operation.type': 'process', 'messaging.destination.name': 'obs.Busy' });
  }
}

describe('weft/otel', () => {
  it('one trace from the caller through the directive to the task batches on worker threads', async () => {
    await using runtime = await Runtime.inMemory({ workers: 2, operations });
    const run = await tracedRun(runtime, [1, 1, 1, 1, 1, 1]);
    expectOneTrace(run, 'threads', 6);
    // Each thread ran its own batches, and said which it was.
    for (const batch of run.tasks) expect([0, 1]).toContain(batch.attributes['weft.worker']);
  });

  it('two directives at once, one retrying every task: each batch on the threads is a child of its own directive', async () => {
    await using runtime = await Runtime.inMemory({ workers: 2, operations, retry: Retry.immediate(1) });
    const inputs = Array.from({ length: 300 }, (_, i) => i);
    const traced = (name: string, work: () => Promise<unknown>) =>
      tracer.startActiveSpan(name, async (span) => {
        await work();
        span.end();
        return span.spanContext().traceId;
      });
    // Their tasks share the dispatcher's queue and the threads' batches, and
    // the retries go out after the directive's first tasks did.
    const [busy, flaky] = await Promise.all([
      traced('busy', () => runtime.fanout(Busy, inputs.map(() => 0))),
      traced('flaky', () => runtime.fanout(FlakyOnce, inputs)),
    ]);
    const local = exporter.getFinishedSpans().map(recordOf);
    // Every task of each accounted for in its own trace (a batch without the
    // context would start a trace of its own), FlakyOnce's twice: failed, then retried.
    for (const [traceId, tasks, operation] of [[busy, inputs.length, 'obs.Busy'], [flaky, 2 * inputs.length, 'obs.FlakyOnce']] as const) {
      const directive = local.find((span) => span.traceId === traceId && span.kind === SpanKind.PRODUCER)!;
      expect(directive.name).toBe(`send ${operation}`);
      for (const batch of await workerSpans(traceId, tasks)) expect(batch).toMatchObject({ name: `process ${operation}`, parentSpanId: directive.spanId, links: [directive.spanId] });
    }
  });

  it('one trace through the workers of a cluster', async () => {
    const runtime = (await Runtime.cluster(Config.process(3), { operations }))!;
    try {
      expectOneTrace(await tracedRun(runtime, [1, 1, 1, 1]), 'cluster', 4);
    } finally {
      await runtime.close();
    }
  });

  it('a stream is a directive span in its consumer\'s trace, its task batches children of it', async () => {
    const runtime = Runtime.local();
    exporter.reset();
    const traceId = await tracer.startActiveSpan('request', async (span) => {
      for await (const pair of IndexedStream.from([1, 1, 1]).map(Busy).stream(runtime)) void pair;
      span.end();
      return span.spanContext().traceId;
    });
    const spans = exporter.getFinishedSpans().map(recordOf).filter((span) => span.traceId === traceId);
    const request = spans.find((span) => span.name === 'request')!;
    const directive = spans.find((span) => span.kind === SpanKind.PRODUCER)!;
    expect(directive).toMatchObject({ name: 'send obs.Busy', parentSpanId: request.spanId });
    expect(directive.attributes).toMatchObject({ 'weft.backend': 'local', 'messaging.batch.message_count': 3 });
    const batches = spans.filter((span) => span.kind === SpanKind.CONSUMER);
    expect(batches.reduce((sum, span) => sum + (span.attributes['messaging.batch.message_count'] as number), 0)).toBe(3);
    for (const batch of batches) expect(batch).toMatchObject({ name: 'process obs.Busy', parentSpanId: directive.spanId, links: [directive.spanId] });
    await runtime.close();
  });

  it('a failed directive ends its span with an error status and the error recorded', async () => {
    const runtime = Runtime.local({ retry: { retries: 0, delayMs: () => 0 } });
    exporter.reset();
    await expect(runtime.fanout(FlakyOnce, [1])).rejects.toThrow(/first attempt/);
    const directive = exporter.getFinishedSpans().map(recordOf).find((span) => span.name === 'send obs.FlakyOnce')!;
    expect(directive.attributes['error.type']).toBe('RetriesExhaustedError');
    const span = exporter.getFinishedSpans().find((s) => s.name === 'send obs.FlakyOnce')!;
    expect(span.status.code).toBe(2);
    expect(span.events.map((event) => event.name)).toContain('exception');
    await runtime.close();
  });
});

/** A reader that exports nothing: the test collects from it. */
class CollectingReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

describe('weft/otel metrics', () => {
  it('counts tasks sent and consumed, and times directives and task batches, in seconds, with a real SDK', async () => {
    const reader = new CollectingReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const metered = instrument({ tracerProvider: provider, meterProvider });
    // Runtime.local runs the batches in this thread, under this meter provider.
    const runtime = Runtime.local({ retry: { retries: 0, delayMs: () => 0 } });
    try {
      await runtime.fanout(Busy, [20, 20, 20]);
      await expect(runtime.fanout(FlakyOnce, [1])).rejects.toThrow(/first attempt/);
    } finally {
      metered.disable();
      await runtime.close();
    }
    const { resourceMetrics } = await reader.collect();
    const all = resourceMetrics.scopeMetrics.filter((scope) => scope.scope.name === 'weft').flatMap((scope) => scope.metrics);
    const metric = (name: string): MetricData => all.find((m) => m.descriptor.name === name)!;
    const points = (name: string, destination: string) => metric(name).dataPoints.filter((point) => point.attributes['messaging.destination.name'] === destination);

    const sent = metric('messaging.client.sent.messages') as SumMetricData;
    expect(sent.dataPointType).toBe(DataPointType.SUM);
    expect(points('messaging.client.sent.messages', 'obs.Busy').map((point) => point.value)).toEqual([3]);
    expect(points('messaging.client.consumed.messages', 'obs.Busy').map((point) => point.value)).toEqual([3]);
    expect(points('messaging.client.consumed.messages', 'obs.FlakyOnce').map((point) => point.value)).toEqual([1]);

    const operation = metric('messaging.client.operation.duration') as HistogramMetricData;
    expect(operation.descriptor.unit).toBe('s');
    const [busy] = points('messaging.client.operation.duration', 'obs.Busy') as HistogramMetricData['dataPoints'];
    // One directive of three tasks of 20 ms on one thread: 60 ms at least.
    expect(busy!.value.count).toBe(1);
    expect(busy!.value.sum).toBeGreaterThanOrEqual(0.06 - 1e-4);
    const [failed] = points('messaging.client.operation.duration', 'obs.FlakyOnce') as HistogramMetricData['dataPoints'];
    expect(failed!.attributes['error.type']).toBe('RetriesExhaustedError');

    const processed = points('messaging.process.duration', 'obs.Busy') as HistogramMetricData['dataPoints'];
    expect(processed.reduce((sum, point) => sum + point.value.count, 0)).toBeGreaterThanOrEqual(1);
    expect(processed.reduce((sum, point) => sum + (point.value.sum ?? 0), 0)).toBeGreaterThanOrEqual(0.06 - 1e-4);
    await meterProvider.shutdown();
  });
});

describe('weft/otel inside operations', () => {
  it('a span an operation starts, before or after an await, is a child of its batch\'s span', async () => {
    await using runtime = await Runtime.inMemory({ workers: 2, operations });
    const inputs = [1, 2, 3, 4, 5, 6];
    const traceId = await tracer.startActiveSpan('request', async (span) => {
      expect(await runtime.fanout(Nested, inputs)).toEqual(inputs);
      span.end();
      return span.spanContext().traceId;
    });
    const mine = () => remoteSpans.filter((span) => span.traceId === traceId);
    const own = () => mine().filter((span) => /^(a?sync) \d$/.test(span.name));
    const consumers = () => mine().filter((span) => span.kind === SpanKind.CONSUMER);
    // A batch's span ends after its tasks' own spans: wait for the batches to account for every task too.
    const batched = () => consumers().reduce((sum, span) => sum + (span.attributes['messaging.batch.message_count'] as number), 0);
    await expect.poll(() => [own().length, batched()], { timeout: 30_000 }).toEqual([2 * inputs.length, inputs.length]);
    const batches = new Map(consumers().map((span) => [span.spanId, span]));
    for (const span of own()) {
      const batch = batches.get(span.parentSpanId!);
      expect(batch, `${span.name}'s parent is a batch of obs.Nested`).toMatchObject({ name: 'process obs.Nested' });
    }
    expect(new Set(own().map((span) => span.name))).toEqual(new Set(inputs.flatMap((n) => [`sync ${n}`, `async ${n}`])));
  });
});

describe('weft/otel inside operations on Runtime.local', () => {
  it('a span an operation starts, before or after an await, is a child of its batch\'s span, for every task of a batch', async () => {
    // Nested starts its spans with the global tracer provider in this thread.
    trace.setGlobalTracerProvider(provider);
    const runtime = Runtime.local();
    try {
      exporter.reset();
      const inputs = [1, 2, 3, 4, 5, 6];
      const traceId = await tracer.startActiveSpan('request', async (span) => {
        expect(await runtime.fanout(Nested, inputs)).toEqual(inputs);
        span.end();
        return span.spanContext().traceId;
      });
      const mine = exporter.getFinishedSpans().map(recordOf).filter((span) => span.traceId === traceId);
      const batches = new Map(mine.filter((span) => span.kind === SpanKind.CONSUMER).map((span) => [span.spanId, span]));
      expect([...batches.values()].reduce((sum, span) => sum + (span.attributes['messaging.batch.message_count'] as number), 0)).toBe(inputs.length);
      // One drain of the queue runs them all: a batch of several tasks.
      expect(Math.max(...[...batches.values()].map((span) => span.attributes['messaging.batch.message_count'] as number))).toBeGreaterThan(1);
      const own = mine.filter((span) => /^(a?sync) \d$/.test(span.name));
      expect(new Set(own.map((span) => span.name))).toEqual(new Set(inputs.flatMap((n) => [`sync ${n}`, `async ${n}`])));
      for (const span of own) expect(batches.get(span.parentSpanId!), `${span.name}'s parent is a batch`).toMatchObject({ name: 'process obs.Nested' });
    } finally {
      trace.disable();
      await runtime.close();
    }
  });
});

describe('weft/otel on a cluster of 2 processes', () => {
  it('one trace from process 0 through the worker threads of both processes, each thread flushing its spans as it stops', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-obs-cluster-'));
    const spans = join(dir, 'spans.jsonl');
    const hostfile = join(dir, 'hosts');
    writeFileSync(hostfile, (await freePorts(2)).map((port) => `127.0.0.1:${port}\n`).join(''));
    const script = fileURLToPath(new URL('./fixtures/cluster-traced.ts', import.meta.url));
    const run = (index: number) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', script, '-w', '2', '-n', '2', '-p', String(index), '-h', hostfile], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, WEFT_TEST_SPANS: spans, WEFT_TEST_SPANS_BATCHED: '1' },
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
        child.once('error', reject);
        child.once('close', (code) => resolve({ code, stdout, stderr }));
      });
    try {
      const [orchestrator, server] = await Promise.all([run(0), run(1)]);
      expect(orchestrator.code, orchestrator.stderr).toBe(0);
      expect(server.code, server.stderr).toBe(0);
      const { traceId } = JSON.parse(orchestrator.stdout.trim().split('\n').at(-1)!) as { traceId: string };
      const all = readFileSync(spans, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as SpanRecord);
      const mine = all.filter((span) => span.traceId === traceId);
      const request = mine.find((span) => span.name === 'request')!;
      const directive = mine.find((span) => span.kind === SpanKind.PRODUCER)!;
      expect(directive).toMatchObject({ name: 'send obs.Busy', parentSpanId: request.spanId });
      expect(directive.attributes['weft.backend']).toBe('cluster');
      const batches = mine.filter((span) => span.kind === SpanKind.CONSUMER);
      // The worker threads' spans wait in a batching processor until weft
      // flushes it as each thread stops: all 8 tasks are in the file.
      const tasks = batches.reduce((sum, span) => sum + (span.attributes['messaging.batch.message_count'] as number), 0);
      expect(tasks).toBe(8);
      for (const batch of batches) expect(batch).toMatchObject({ parentSpanId: directive.spanId, links: [directive.spanId] });
      // Worker 0 relays; workers 1 (process 0) and 2, 3 (process 1) run tasks.
      const workers = new Set(batches.map((span) => span.attributes['weft.worker'] as number));
      expect([...workers].some((worker) => worker >= 2)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
