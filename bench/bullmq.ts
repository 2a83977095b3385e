// BullMQ on Redis, the peer of bench/amqp.ts for distributed tiny tasks:
// this process adds the tasks (addBulk, in chunks) and counts their
// completions (QueueEvents); one worker process (fixtures/bullmq-worker.mjs)
// runs them. The Redis server is started here and stopped after.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Queue, QueueEvents } from 'bullmq';
import { redis } from './services.ts';

const WORKER = fileURLToPath(new URL('./fixtures/bullmq-worker.mjs', import.meta.url));
const ROOT = fileURLToPath(new URL('../', import.meta.url));
/** BullMQ's worker concurrency: tasks in flight in the worker at once. */
const CONCURRENCY = 256;
const CHUNK = 1_000;

/** Best tasks/s of `rounds` rounds of `tasks` tiny tasks, or why BullMQ could not run. */
export async function bullmqTinyTasks(tasks: number, rounds: number): Promise<number | string> {
  const started = redis();
  if (typeof started === 'string') return started;
  const server = await started;
  const connection = { host: '127.0.0.1', port: server.port };
  const name = `weft-bench-${process.pid}`;
  const worker = spawn(process.execPath, [WORKER, String(server.port), name, String(CONCURRENCY)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  let queue: Queue | undefined;
  let events: QueueEvents | undefined;
  try {
    queue = new Queue(name, { connection });
    events = new QueueEvents(name, { connection });
    await events.waitUntilReady();
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: worker.stdout! }).once('line', () => resolve());
      worker.once('exit', (code) => reject(new Error(`the BullMQ worker exited with ${code}`)));
    });
    let best = 0;
    for (let round = 0; round < rounds; round++) {
      let done = 0;
      const finished = new Promise<void>((resolve) => {
        const onCompleted = (): void => {
          if (++done === tasks) {
            events!.off('completed', onCompleted);
            resolve();
          }
        };
        events!.on('completed', onCompleted);
      });
      const t0 = performance.now();
      for (let from = 0; from < tasks; from += CHUNK) {
        const count = Math.min(CHUNK, tasks - from);
        await queue.addBulk(Array.from({ length: count }, (_, i) => ({ name: 'increment', data: from + i, opts: { removeOnComplete: true } })));
      }
      await finished;
      best = Math.max(best, (tasks / (performance.now() - t0)) * 1000);
    }
    return best;
  } finally {
    worker.kill('SIGTERM');
    await events?.close();
    await queue?.close();
    await server.stop();
  }
}
