// The runtime's public surface. `src/index.ts` re-exports this list.

export { Runtime, type RuntimeOptions, type InMemoryOptions, type AmqpRuntimeOptions, type ClusterRuntimeOptions } from './runtime.ts';
export { IndexedStream, Fold, Literal, type RunOptions, type Source, type StreamOptions } from './core/directives.ts';
export { defineOperation, defineMonoid, type Operation, type OperationFn, type Monoid } from './core/registry.ts';
export type { TaskContext } from './core/context.ts';
export { Retry, type RetryPolicy } from './core/retry.ts';
export { WorkerRuntime } from './worker-runtime.ts';
export type { BackendStats } from './core/backend.ts';
export type { Progress, TaskProgressDetail } from './core/execution/progress.ts';
export type { Task, TaskResult, TaskFailure } from './core/task.ts';
export type { RuntimeMetrics, OperationMetrics, WorkerMetrics } from './observability/metrics.ts';
export type { DurationSummary } from './observability/histogram.ts';
export { prometheusText, PROMETHEUS_CONTENT_TYPE } from './observability/prometheus.ts';
export { progressBar, type ProgressBarOptions, type LiveStream } from './observability/live.ts';
export type { DirectiveMessage, TaskBatchMessage, RetryMessage, TraceCarrier, PeerMessage, ThreadReplacedMessage, DeadLetterMessage } from './observability/channels.ts';
export {
  TransientError,
  ArgumentError,
  OperationError,
  RetriesExhaustedError,
  FoldError,
  AbortError,
  UnknownOperationError,
  TaskTimeoutError,
  TaskCancelledError,
  TaskStuckError,
  WorkerLostError,
  InputError,
  OutputError,
  DuplicateDefinitionError,
  RuntimeClosedError,
} from './core/errors.ts';
// Types only: amqplib loads when `Runtime.amqp` or `WorkerRuntime.amqp` is
// called. Named from the files that declare them, whose declarations do not
// reach amqplib's types (a user's strict tsc would need @types/amqplib).
export type { AmqpWorker } from './backends/amqp/worker/worker.ts';
export type { AmqpBackendOptions, AmqpConnectOptions, AmqpWorkerOptions, AmqpWorkerStats, BackoffOptions } from './backends/amqp/shared/options.ts';
export { BrokerUnavailableError, DeadLetterError } from './backends/amqp/shared/errors.ts';
