// `weft worker`'s live view: on a terminal (a pseudo-terminal from
// script(1)), one line of the tasks it served, rewritten in place below its
// log and left as the last line when it stops; piped, none.

import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Runtime } from '../../src/runtime/index.ts';
import { AMQP_URL, brokerAvailable, brokerSession, OPERATIONS, range, ROOT } from '../amqp/helpers.ts';
import { Increment } from '../amqp/fixtures/operations.ts';

const available = brokerAvailable('test/observability/worker-live.test.ts');
const hasScript = spawnSync('script', ['--version']).status === 0;
const TASKS = 40;

describe.runIf(available && hasScript)('weft worker live view', () => {
  const session = brokerSession();

  it('keeps a line of the tasks served on a terminal, and leaves it as its last line when it stops', async () => {
    const prefix = session.prefix('live');
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
    const command = [process.execPath, join(ROOT, 'bin/weft.mjs'), 'worker', '--amqp', AMQP_URL, '--operations', OPERATIONS, '--prefix', prefix, '--threads', '1']
      .map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    // script runs the command on a pseudo-terminal and copies what it writes to its own stdout.
    const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    try {
      await expect.poll(() => /serving /.test(output), { timeout: 60_000 }).toBe(true);
      expect(await runtime.fanout(Increment, range(1, TASKS))).toEqual(range(2, TASKS + 1));
      // Redrawn every 500 ms: the served count shows up on the line.
      await expect.poll(() => output.includes(`: ${TASKS} tasks served · `), { timeout: 30_000 }).toBe(true);
      // The line is drawn in place: back to its start, the line, the rest of the old one erased.
      expect(output).toMatch(/\rweft worker \d+: \d+ tasks served[^\r\n]*\x1b\[K/);
      const pid = Number(/weft worker (\d+): serving/.exec(output)![1]);
      process.kill(pid, 'SIGTERM');
      expect(await exited).toBe(0);
      // What the terminal shows line by line: a carriage return starts a line anew.
      const lines = output.split(/\r\n|\n|\r/).map((line) => line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').trim()).filter(Boolean);
      const served = lines.filter((line) => line.includes('tasks served'));
      expect(served.at(-1)).toMatch(new RegExp(`^weft worker ${pid}: ${TASKS} tasks served · [\\d.]+ tasks/s · 0 failed · 0 dead-lettered$`));
      expect(lines.at(-1)).toBe(`weft worker ${pid}: stopped`);
    } finally {
      child.kill('SIGKILL');
    }
  }, 120_000);

  it('draws no such line when its stderr is a pipe', async () => {
    const prefix = session.prefix('live-piped');
    await using runtime = await Runtime.amqp({ url: AMQP_URL, prefix });
    const worker = session.worker(prefix, ['--threads', '1']);
    await worker.serving;
    await runtime.fanout(Increment, range(1, TASKS));
    worker.child.kill('SIGTERM');
    await worker.exited;
    expect(worker.stderr.some((line) => line.includes('tasks served'))).toBe(false);
    expect(worker.stderr.at(-1)).toMatch(/: stopped$/);
  }, 120_000);
});
