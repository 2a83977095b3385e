// `weft worker --amqp <url> --operations <module...>`: one task worker
// process serving an AMQP broker until SIGINT or SIGTERM, its tasks on
// `--threads` worker threads.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WorkerRuntime } from '../runtime/worker-runtime.ts';
import { prometheusText, PROMETHEUS_CONTENT_TYPE } from '../runtime/observability/prometheus.ts';
import type { AmqpWorker } from '../runtime/backends/amqp/worker/worker.ts';

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
  metricsPort?: number;
}

/** Serves `worker.metrics()` as Prometheus text at /metrics; resolves once listening. */
async function serveMetrics(worker: AmqpWorker, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('weft worker serves /metrics only\n');
      return;
    }
    response.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(prometheusText(worker.metrics()));
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, resolve));
  return server;
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
  let metrics: Server | undefined;
  if (options.metricsPort !== undefined) {
    try {
      metrics = await serveMetrics(served, options.metricsPort);
    } catch (error) {
      console.error(`weft worker ${process.pid}: cannot serve metrics on port ${options.metricsPort}: ${(error as Error).message}`);
      await served.close();
      return 1;
    }
    log?.(`metrics at http://localhost:${(metrics.address() as AddressInfo).port}/metrics`);
  }
  log?.(`serving ${options.operations.join(', ')} as ${served.id}`);
  try {
    await served.closeOnSignals(['SIGINT', 'SIGTERM']);
  } catch (error) {
    // Said even with --quiet: the process ends with an error code.
    console.error(`weft worker ${process.pid}: stopped: its worker threads failed for good: ${(error as Error).message}`);
    return 1;
  } finally {
    metrics?.close();
  }
  log?.('stopped');
  return 0;
}
