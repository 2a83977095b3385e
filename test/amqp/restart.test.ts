// The broker restarted mid-directive: orchestrator and workers reconnect
// with backoff and the directive completes with the right answer. The
// directive cannot end before the broker is stopped (most of its tasks wait
// for a file written only then), and the workers say they reconnected. And when
// the broker stays away longer than `reconnectTimeoutMs`, the directive
// fails with BrokerUnavailableError instead of hanging.
//
// Restarts the broker application (`rabbitmqctl stop_app` / `start_app`)
// of the run's own node (test/setup/rabbitmq.ts), never another broker.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BrokerUnavailableError, Runtime } from '../../src/runtime/index.ts';
import { Gated, Spin } from './fixtures/operations.ts';
import { AMQP_URL, brokerAvailable, brokerSession, rabbitmqctl, range, type WorkerProcess } from './helpers.ts';

const available = brokerAvailable('test/amqp/restart.test.ts');

// How long the broker may take to stop or start. Beside a CPU hog (load
// 20) `stop_app` took 34 s, `start_app` 59 s and `await_startup` 71 s more:
// the directive, its runtime's reconnectTimeoutMs and the tests wait that
// long, so what they observe is the reconnection, not the broker's pace.
const BROKER_MS = 300_000;

async function startBroker(): Promise<void> {
  await rabbitmqctl('start_app');
  await rabbitmqctl('await_startup', '--timeout', String(BROKER_MS / 1000));
}

describe.runIf(available)('Runtime.amqp across a broker restart', () => {
  const session = brokerSession({
    // Whatever happened, leave the broker running for the next suite.
    teardown: () => startBroker().catch(() => {}),
    teardownTimeout: 2 * BROKER_MS,
  });

  it('completes a directive when the broker restarts in the middle of it', async () => {
    const prefix = session.prefix('restart');
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix, maxBatch: 4, reconnectTimeoutMs: 2 * BROKER_MS });
    const started = [session.worker(prefix), session.worker(prefix)];
    await Promise.all(started.map((worker) => worker.serving));

    // Tasks from `free` on wait for the gate, which opens once the broker is down.
    const gate = join(mkdtempSync(join(tmpdir(), 'weft-amqp-restart-')), 'open');
    const total = 600;
    const free = 50;
    let done = 0;
    let doneWhenStopped: number | undefined;
    let restart: Promise<void> | undefined;
    const outputs = runtime.fanout(
      Gated,
      range(0, total - 1).map((value) => (value < free ? { value } : { value, gate })),
      {
        onProgress: (progress) => {
          done = progress.done;
          if (restart === undefined && done >= free / 2) {
            restart = rabbitmqctl('stop_app').then(() => {
              doneWhenStopped = done;
              writeFileSync(gate, '');
              return startBroker();
            });
          }
        },
      },
    );
    expect(await outputs).toEqual(range(0, total - 1));
    await restart;
    expect(doneWhenStopped).toBeLessThan(total);
    // A worker lost the broker and connected again.
    const reconnected = (worker: WorkerProcess) => {
      const lost = worker.stderr.findIndex((line) => /lost the broker/.test(line));
      return lost >= 0 && worker.stderr.slice(lost).some((line) => /connected to /.test(line));
    };
    await expect.poll(() => started.some(reconnected), { timeout: 60_000 }).toBe(true);
  }, 3 * BROKER_MS);

  it('fails with BrokerUnavailableError when the broker stays away past reconnectTimeoutMs', async () => {
    const prefix = session.prefix('outage');
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix, reconnectTimeoutMs: 1_500 });
    // No workers: the directive waits on the queue until the broker goes.
    const failure = runtime.call(Spin, { value: 1, ms: 1 }).then(
      () => undefined,
      (error: unknown) => error,
    );
    await rabbitmqctl('stop_app');
    try {
      const error = await failure;
      expect(error).toBeInstanceOf(BrokerUnavailableError);
      expect((error as Error).message).toMatch(/could not reconnect within 1500 ms/);
    } finally {
      await startBroker();
    }
  }, 3 * BROKER_MS);
});
