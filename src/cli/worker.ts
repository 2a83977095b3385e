// `weft worker --amqp <url> --operations <module...>`: one task worker
// process serving an AMQP broker until SIGINT or SIGTERM, its tasks on
// `--threads` worker threads.

import { WorkerRuntime } from '../runtime/worker-runtime.ts';

export interface WorkerCommandOptions {
  amqp: string;
  operations: string[];
  prefix?: string;
  threads?: number;
  prefetch?: number;
  cancelGrace?: number;
  deliveryLimit?: number;
  connectTimeout?: number;
  quiet?: boolean;
}

/** Runs the worker; resolves with the exit code once it has stopped: 1 if its threads failed for good. */
export async function worker(options: WorkerCommandOptions): Promise<number> {
  const log = options.quiet ? undefined : (line: string) => console.error(`weft worker ${process.pid}: ${line}`);
  // The threads import the operations (with tsx for TypeScript, see
  // allocator/thread.ts); this thread holds the broker connection.
  const served = await WorkerRuntime.amqp({
    url: options.amqp,
    operations: options.operations,
    prefix: options.prefix,
    threads: options.threads,
    prefetch: options.prefetch,
    cancelGraceMs: options.cancelGrace,
    deliveryLimit: options.deliveryLimit,
    connectTimeoutMs: options.connectTimeout,
    log,
  });
  log?.(`serving ${options.operations.join(', ')} as ${served.id}`);
  try {
    await served.closeOnSignals(['SIGINT', 'SIGTERM']);
  } catch (error) {
    // Said even with --quiet: the process ends with an error code.
    console.error(`weft worker ${process.pid}: stopped: its worker threads failed for good: ${(error as Error).message}`);
    return 1;
  }
  log?.('stopped');
  return 0;
}
