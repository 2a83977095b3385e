// The AMQP (RabbitMQ) backend: `Runtime.amqp` for the orchestrator,
// `AmqpWorker` (or `weft worker --amqp`) for each worker process.

export { AmqpBackend, type AmqpBackendOptions, type AmqpConnectOptions } from './backend.ts';
export { AmqpWorker, type AmqpWorkerOptions, type AmqpWorkerStats } from './worker.ts';
export { BrokerUnavailableError, DeadLetterError } from './errors.ts';
export { namesOf, type Names } from './topology.ts';
