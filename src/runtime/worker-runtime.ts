// The public face of the worker side: what a user calls to serve tasks in a
// process of their own. Backends use the Executor underneath directly.

import { Executor } from './core/executor.ts';
import type { AmqpWorker, AmqpWorkerOptions } from './backends/amqp/worker.ts';

export class WorkerRuntime extends Executor {
  /**
   * Serves tasks from an AMQP broker (RabbitMQ) until closed: imports
   * `options.operations`, connects with reconnection, and consumes the task
   * queue that `Runtime.amqp` publishes to. What `weft worker --amqp` runs.
   */
  static async amqp(options: AmqpWorkerOptions): Promise<AmqpWorker> {
    const { AmqpWorker } = await import('./backends/amqp/worker.ts');
    return AmqpWorker.start(options);
  }
}
