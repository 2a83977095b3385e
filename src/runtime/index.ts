// The runtime's public surface. `src/index.ts` re-exports this list.

export { Runtime, type RuntimeOptions, type InMemoryOptions, type AmqpRuntimeOptions, type ClusterRuntimeOptions } from './runtime.ts';
export { IndexedStream, Fold, Literal, type RunOptions } from './directives.ts';
export { defineOperation, defineMonoid, type Operation, type Monoid } from './registry.ts';
export { Retry, type RetryPolicy } from './retry.ts';
export { WorkerRuntime } from './worker-runtime.ts';
export { LoopbackBackend } from './loopback.ts';
export { routeResults, LeaseTable, type Backend, type BackendStats, type Lease, type LeaseHandlers } from './backend.ts';
export type { Progress } from './execution.ts';
export type { Task, TaskResult, TaskFailure } from './task.ts';
export {
  TransientError,
  ArgumentError,
  OperationError,
  RetriesExhaustedError,
  FoldError,
  AbortError,
  UnknownOperationError,
  TaskTimeoutError,
  WorkerLostError,
  OutputError,
  DuplicateDefinitionError,
  RuntimeClosedError,
} from './errors.ts';
// Types only: amqplib loads when `Runtime.amqp` or `WorkerRuntime.amqp` is
// called. Named from the files that declare them, whose declarations do not
// reach amqplib's types (a user's strict tsc would need @types/amqplib).
export type { AmqpWorker, AmqpWorkerOptions, AmqpWorkerStats } from './amqp/worker.ts';
export type { AmqpBackendOptions, AmqpConnectOptions } from './amqp/backend.ts';
export { BrokerUnavailableError, DeadLetterError } from './amqp/errors.ts';
