// `weft worker --amqp <url> --operations <module...>`: one task worker
// process serving an AMQP broker until SIGINT or SIGTERM.

import { WorkerRuntime } from '../runtime/worker-runtime.ts';

export interface WorkerCommandOptions {
  amqp: string;
  operations: string[];
  prefix?: string;
  prefetch?: number;
  deliveryLimit?: number;
  connectTimeout?: number;
  quiet?: boolean;
}

/** Runs the worker; resolves with the exit code once it has stopped. */
export async function worker(options: WorkerCommandOptions): Promise<number> {
  const log = options.quiet ? undefined : (line: string) => console.error(`weft worker ${process.pid}: ${line}`);
  // TypeScript operations modules need tsx's loader, which a built weft
  // does not otherwise register.
  if (options.operations.some((module) => /\.[cm]?tsx?$/.test(module))) {
    const { register } = await import('tsx/esm/api');
    register();
  }
  const served = await WorkerRuntime.amqp({
    url: options.amqp,
    operations: options.operations,
    prefix: options.prefix,
    prefetch: options.prefetch,
    deliveryLimit: options.deliveryLimit,
    connectTimeoutMs: options.connectTimeout,
    log,
  });
  log?.(`serving ${options.operations.join(', ')} as ${served.id}`);
  await served.closeOnSignals(['SIGINT', 'SIGTERM']);
  log?.('stopped');
  return 0;
}
