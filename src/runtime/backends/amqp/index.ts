// The AMQP (RabbitMQ) backend: `Runtime.amqp` for the orchestrator,
// `AmqpWorker` (or `weft worker --amqp`) for each worker process.

export { AmqpBackend } from './backend.ts';
export { AmqpWorker } from './worker.ts';
export type { AmqpBackendOptions, AmqpConnectOptions, AmqpWorkerOptions, AmqpWorkerStats, BackoffOptions } from './options.ts';
export { BrokerUnavailableError, DeadLetterError } from './errors.ts';
export { namesOf, type Names } from './topology.ts';
