// `weft/otel`: OpenTelemetry spans and metrics from weft's diagnostics
// channels, following OpenTelemetry's messaging conventions (weft is the
// messaging system, an operation name the destination). A directive is a
// PRODUCER span ("send <operation>") under the caller's active span; it puts
// its trace context (W3C `traceparent` with the SDK's propagator) on every
// task; each batch of tasks a worker runs is a CONSUMER span ("process
// <operation>", `messaging.batch.message_count`) whose parent is, and whose
// link names, the directive's span. So one trace goes from the caller's
// span to the tasks, on threads, in cluster processes and AMQP workers.
//
// Workers are other threads and processes: call `instrument()` there too,
// with their own SDK (in the operations module, which every worker
// imports). A worker thread's spans could be left in its SDK's queue as
// its process ends it, so `instrument()` has weft flush its providers as a
// worker thread stops (observability/flush.ts). `@opentelemetry/api` is an
// optional peer dependency of weft: only this entry needs it.

import diagnostics from 'node:diagnostics_channel';
import {
  context,
  metrics,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Counter,
  type Histogram,
  type MeterProvider,
  type Span,
  type TextMapPropagator,
  type TracerProvider,
} from '@opentelemetry/api';
import type { DirectiveMessage, TaskBatchMessage, TraceCarrier } from './runtime/observability/channels.ts';
import { beforeThreadEnd } from './runtime/observability/flush.ts';

export type { DirectiveMessage, TaskBatchMessage, TraceCarrier } from './runtime/observability/channels.ts';

/** What `instrument` reports to; each defaults to OpenTelemetry's global one. */
export interface OtelOptions {
  tracerProvider?: TracerProvider;
  meterProvider?: MeterProvider;
  /** How trace context travels with tasks; default: the global propagator (W3C trace context with the Node SDK). */
  propagator?: TextMapPropagator;
}

/** What `instrument` returns: stop reporting (and flushing as worker threads stop). */
export interface Instrumentation {
  disable(): void;
}

const SCOPE = 'weft';
const SYSTEM = 'weft';

interface Instruments {
  readonly sent: Counter;
  readonly consumed: Counter;
  readonly operationDuration: Histogram;
  readonly processDuration: Histogram;
}

function instrumentsOf(provider: MeterProvider): Instruments {
  const meter = provider.getMeter(SCOPE);
  return {
    sent: meter.createCounter('messaging.client.sent.messages', { unit: '{message}', description: 'Tasks dispatched by directives.' }),
    consumed: meter.createCounter('messaging.client.consumed.messages', { unit: '{message}', description: 'Tasks run by workers.' }),
    operationDuration: meter.createHistogram('messaging.client.operation.duration', { unit: 's', description: 'How long directives took, from run() to their outcome.' }),
    processDuration: meter.createHistogram('messaging.process.duration', { unit: 's', description: 'How long workers took to run a batch of tasks.' }),
  };
}

/**
 * Subscribes to `weft:directive` and `weft:task` in this thread: spans and
 * metrics for the directives started here and the task batches run here.
 */
export function instrument(options: OtelOptions = {}): Instrumentation {
  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(SCOPE);
  const instruments = instrumentsOf(options.meterProvider ?? metrics.getMeterProvider());
  const propagator: Pick<TextMapPropagator, 'inject' | 'extract'> = options.propagator ?? propagation;
  const spans = new WeakMap<object, { span: Span; started: number }>();

  const directives = diagnostics.tracingChannel<unknown, DirectiveMessage>('weft:directive');
  const directiveHandlers = {
    start(message: DirectiveMessage) {
      const destination = message.operations.join(' ') || (message.fold ?? 'fold');
      const span = tracer.startSpan(`send ${destination}`, {
        kind: SpanKind.PRODUCER,
        attributes: {
          'messaging.system': SYSTEM,
          'messaging.operation.type': 'send',
          'messaging.operation.name': 'run',
          'messaging.destination.name': destination,
          'weft.backend': message.backend,
          'weft.operations': [...message.operations],
          ...(message.fold === undefined ? {} : { 'weft.fold': message.fold }),
        },
      });
      spans.set(message, { span, started: performance.now() });
      const carrier: TraceCarrier = {};
      propagator.inject(trace.setSpan(context.active(), span), carrier, { set: (c, key, value) => (c[key] = value) });
      if (Object.keys(carrier).length > 0) message.traceContext = carrier;
    },
    end() {},
    asyncStart() {},
    asyncEnd(message: DirectiveMessage) {
      const entry = spans.get(message);
      if (entry === undefined) return;
      spans.delete(message);
      const destination = { 'messaging.system': SYSTEM, 'messaging.destination.name': message.operations.join(' ') || (message.fold ?? 'fold') };
      entry.span.setAttribute('messaging.batch.message_count', message.tasks);
      if (message.error === undefined) entry.span.setStatus({ code: SpanStatusCode.OK });
      entry.span.end();
      instruments.sent.add(message.tasks, destination);
      instruments.operationDuration.record((performance.now() - entry.started) / 1000, {
        ...destination,
        'messaging.operation.type': 'send',
        ...(message.error === undefined ? {} : { 'error.type': errorType(message.error) }),
      });
    },
    error(message: DirectiveMessage) {
      const span = spans.get(message)?.span;
      if (span === undefined) return;
      const error = message.error;
      if (error instanceof Error) span.recordException(error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      span.setAttribute('error.type', errorType(error));
    },
  };

  // A directive's batches on this thread share its carrier (see
  // TaskBatches): its context is extracted once, not per batch.
  const parents = new WeakMap<TraceCarrier, Context>();
  const parentOf = (carrier: TraceCarrier | undefined): Context => {
    if (carrier === undefined) return ROOT_CONTEXT;
    let parent = parents.get(carrier);
    if (parent === undefined) {
      parent = propagator.extract(ROOT_CONTEXT, carrier, { get: (c, key) => c[key], keys: (c) => Object.keys(c) });
      parents.set(carrier, parent);
    }
    return parent;
  };
  const tasks = diagnostics.tracingChannel<unknown, TaskBatchMessage>('weft:task');
  const finish = (message: TaskBatchMessage) => {
    const entry = spans.get(message);
    if (entry === undefined) return;
    spans.delete(message);
    entry.span.setAttribute('messaging.batch.message_count', message.tasks);
    if (message.failed > 0) {
      entry.span.setAttribute('weft.failed', message.failed);
      entry.span.setStatus({ code: SpanStatusCode.ERROR, message: `${message.failed} of ${message.tasks} tasks failed` });
    }
    entry.span.end();
    const attributes = { 'messaging.system': SYSTEM, 'messaging.destination.name': message.operation, 'messaging.operation.type': 'process' };
    instruments.consumed.add(message.tasks, attributes);
    instruments.processDuration.record((performance.now() - entry.started) / 1000, attributes);
  };
  const taskHandlers = {
    start(message: TaskBatchMessage) {
      const parent = parentOf(message.traceContext);
      const producer = trace.getSpanContext(parent);
      const span = tracer.startSpan(
        `process ${message.operation}`,
        {
          kind: SpanKind.CONSUMER,
          attributes: {
            'messaging.system': SYSTEM,
            'messaging.operation.type': 'process',
            'messaging.operation.name': 'process',
            'messaging.destination.name': message.operation,
            'weft.worker': message.worker,
          },
          links: producer === undefined ? [] : [{ context: producer }],
        },
        parent,
      );
      spans.set(message, { span, started: performance.now() });
      const active = trace.setSpan(parent, span);
      message.wrap = (task) => context.with(active, task);
    },
    end(message: TaskBatchMessage) {
      if (!message.async) finish(message);
    },
    asyncStart() {},
    asyncEnd: finish,
    error() {},
  };

  directives.subscribe(directiveHandlers);
  tasks.subscribe(taskHandlers);
  const flushable = [options.tracerProvider ?? trace.getTracerProvider(), options.meterProvider ?? metrics.getMeterProvider()].map(sdkOf);
  const stopFlushing = beforeThreadEnd(() => Promise.all(flushable.map((provider) => provider.forceFlush?.())));
  return {
    disable() {
      directives.unsubscribe(directiveHandlers);
      tasks.unsubscribe(taskHandlers);
      stopFlushing();
    },
  };
}

/** A provider as an SDK makes it: the global tracer provider is a proxy of the registered one. */
function sdkOf(provider: TracerProvider | MeterProvider): { forceFlush?: () => Promise<void> } {
  const delegate = (provider as { getDelegate?: () => TracerProvider }).getDelegate?.() ?? provider;
  return delegate as { forceFlush?: () => Promise<void> };
}

function errorType(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}
