// The AMQP (RabbitMQ) backend: `Runtime.amqp` for the orchestrator,
// `AmqpWorker` (or `weft worker --amqp`) for each worker process.

export { AmqpBackend } from './orchestrator/backend.ts';
export { AmqpWorker } from './worker/worker.ts';
export type { AmqpBackendOptions, AmqpConnectOptions, AmqpWorkerOptions, AmqpWorkerStats, BackoffOptions } from './shared/options.ts';
export { BrokerUnavailableError, DeadLetterError } from './shared/errors.ts';
export { namesOf, type Names } from './shared/topology.ts';
