// `weft worker --amqp <url> --operations <module...>`: one task worker
// process serving an AMQP broker until SIGINT or SIGTERM, its tasks on
// `--threads` worker threads.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WorkerRuntime } from '../runtime/worker-runtime.ts';
import { prometheusText, PROMETHEUS_CONTENT_TYPE } from '../runtime/observability/prometheus.ts';
import type { AmqpWorker } from '../runtime/backends/amqp/worker/worker.ts';
import { Rate, StatusLine } from '../runtime/observability/live.ts';

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

/** How often the live view reads the worker's metrics. */
const VIEW_INTERVAL_MS = 500;

/**
 * The worker's live view on a TTY: the tasks it served, their rate, the
 * failed attempts and dead letters, on one line kept below the log. Returns
 * its stop, which leaves the last figures as a line of the log.
 */
function liveView(served: AmqpWorker, status: StatusLine): () => void {
  const rate = new Rate();
  const line = (): string => {
    let completed = 0;
    let failed = 0;
    for (const operation of Object.values(served.metrics().operations)) {
      completed += operation.completed;
      failed += operation.failed;
    }
    const perSecond = rate.sample(completed, performance.now());
    return `weft worker ${process.pid}: ${completed} tasks served · ${perSecond.toFixed(1)} tasks/s · ${failed} failed · ${served.stats().deadLettered} dead-lettered`;
  };
  status.update(line);
  const timer = setInterval(() => status.update(line), VIEW_INTERVAL_MS).unref();
  return () => {
    clearInterval(timer);
    status.end(line());
  };
}

/** Runs the worker; resolves with the exit code once it has stopped: 1 if its threads failed for good. */
export async function worker(options: WorkerCommandOptions): Promise<number> {
  // The live view: on a terminal only (a pipe or a log file gets the log lines alone), and not with --quiet.
  const status = !options.quiet && process.stderr.isTTY ? new StatusLine(process.stderr, VIEW_INTERVAL_MS) : undefined;
  const log = options.quiet
    ? undefined
    : (line: string) => {
        const text = `weft worker ${process.pid}: ${line}`;
        if (status === undefined) console.error(text);
        else status.above(text);
      };
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
  const stopView = status === undefined ? undefined : liveView(served, status);
  try {
    await served.closeOnSignals(['SIGINT', 'SIGTERM']);
  } catch (error) {
    stopView?.();
    // Said even with --quiet: the process ends with an error code.
    console.error(`weft worker ${process.pid}: stopped: its worker threads failed for good: ${(error as Error).message}`);
    return 1;
  } finally {
    metrics?.close();
  }
  stopView?.();
  log?.('stopped');
  return 0;
}
