// `weft launch`: a local cluster of one script, output prefixed by process
// index. The program is test/cluster/fixtures/program.ts.

import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detail as detailOf, PROGRAM, ROOT, run } from './helpers.ts';

const RUNTIME_LOSS = fileURLToPath(new URL('./fixtures/runtime-loss.ts', import.meta.url));
const RUNTIME_SPARE = fileURLToPath(new URL('./fixtures/runtime-spare.ts', import.meta.url));

const EXCHANGE = 20_000;
/** maxMessageBytes of the program's limit mode. */
const LIMIT = 5_000_000;
const launch = (args: string[]) => run(join(ROOT, 'bin/weft.mjs'), ['launch', ...args]);

describe('weft launch', () => {
  it('3 processes x 2 threads: all-to-all with per-sender sequences, iteration ends on close, every process exits 0', async () => {
    const cluster = launch(['-n', '3', '-w', '2', PROGRAM, 'exchange']);
    const { code } = await cluster.exited;
    const detail = detailOf(cluster);
    expect(code, detail).toBe(0);
    // Every worker got EXCHANGE messages, in sequence, from each of the 6 workers.
    const perWorker = Array.from({ length: 6 }, () => EXCHANGE);
    for (let i = 0; i < 3; i++) {
      expect(cluster.stdout, detail).toContain(`[${i}] ready ${i}`);
      expect(cluster.stdout, detail).toContain(`[${i}] result ${JSON.stringify([perWorker, perWorker])}`);
    }
    // Every line is prefixed; nothing failed.
    for (const l of cluster.stdout) expect(l).toMatch(/^\[[0-2]\] /);
    expect(cluster.stderr.filter((l) => /failed|error/i.test(l)), detail).toEqual([]);
  });

  it('a clean shutdown is not a crash: workers that return at once, exit 0, no error printed', async () => {
    const cluster = launch(['-n', '3', '-w', '2', PROGRAM, 'idle']);
    const { code } = await cluster.exited;
    const detail = detailOf(cluster);
    expect(code, detail).toBe(0);
    for (let i = 0; i < 3; i++) expect(cluster.stdout, detail).toContain(`[${i}] result ${JSON.stringify([2 * i, 2 * i + 1])}`);
    // The only stderr line is launch's own banner.
    expect(cluster.stderr, detail).toEqual([expect.stringMatching(/^weft: launching 3 processes x 2 threads/)]);
  });

  it('bulk: 64 frames of 1 MiB between 2 processes, enough to block the socket, arrive whole and in order', async () => {
    const cluster = launch(['-n', '2', '-w', '1', PROGRAM, 'bulk']);
    const { code } = await cluster.exited;
    const detail = detailOf(cluster);
    expect(code, detail).toBe(0);
    expect(cluster.stdout, detail).toContain('[0] result [0]');
    expect(cluster.stdout, detail).toContain('[1] result [64]');
  });

  it('large: batches of 100 KiB to 3 MiB, a loaned chunk and msgpack objects with a large field between 2 processes on default options (through both slabs, as one DATA frame or PART runs) arrive byte for byte and in order', async () => {
    const cluster = launch(['-n', '2', '-w', '1', PROGRAM, 'large']);
    const { code } = await cluster.exited;
    const detail = detailOf(cluster);
    expect(code, detail).toBe(0);
    expect(cluster.stdout, detail).toContain('[0] result [0]');
    expect(cluster.stdout, detail).toContain('[1] result [34]');
  });

  it('limit: between 2 processes, batches one byte under maxMessageBytes and exactly at it arrive byte for byte; one byte over is refused at the sender\'s send(), naming the limit, and the run completes', async () => {
    const cluster = launch(['-n', '2', '-w', '1', PROGRAM, 'limit']);
    const { code } = await cluster.exited;
    const detail = detailOf(cluster);
    expect(code, detail).toBe(0);
    expect(cluster.stdout, detail).toContain(`[0] result ${JSON.stringify([`ChannelError: channel 0: a batch of ${LIMIT + 1} bytes exceeds maxMessageBytes (${LIMIT})`])}`);
    expect(cluster.stdout, detail).toContain(`[1] result ${JSON.stringify([[LIMIT - 1, LIMIT]])}`);
  });

  it('keeps the survivors running when the program survives a loss: Runtime.cluster loses process 2 mid-map, completes, and launch exits 0', async () => {
    const cluster = run(join(ROOT, 'bin/weft.mjs'), ['launch', '-n', '3', '-w', '2', RUNTIME_LOSS, 'close'], { WEFT_TEST_VICTIM_PROCESS: '2' });
    const { code } = await cluster.exited;
    const detail = detailOf(cluster);
    expect(cluster.stderr, detail).toContain('[2] victim dies');
    expect(cluster.stderr.join('\n'), detail).toMatch(/weft: process 2 was killed by SIGKILL; the others run on/);
    expect(cluster.stderr.join('\n'), detail).toMatch(/lost process 2; the \d+ task\(s\) it held run on the others/);
    expect(cluster.stdout, detail).toContain('[0] answer ok');
    expect(cluster.stderr.join('\n'), detail).toMatch(/survived the loss of process\(es\) 2/);
    expect(code, detail).toBe(0);
  });

  it('--restart 1: Runtime.cluster loses process 2 at its first task; launch starts it again, it comes back and serves, and the directive completes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-restart-'));
    try {
      // 'join': process 0 holds the second half of its map until a process joins (here: comes back).
      const cluster = run(join(ROOT, 'bin/weft.mjs'), ['launch', '-n', '3', '-w', '2', '--restart', '1', RUNTIME_SPARE, 'join'], { WEFT_TEST_DIE_ONCE: join(dir, 'died') });
      const { code } = await cluster.exited;
      const detail = detailOf(cluster);
      expect(cluster.stderr, detail).toContain('[2] victim dies');
      expect(cluster.stderr.join('\n'), detail).toMatch(/weft: process 2 was killed by SIGKILL; starting it again \(restart 1 of 1\)/);
      expect(cluster.stderr.join('\n'), detail).toMatch(/\[0\] weft: Runtime\.cluster: lost process 2 came back/);
      // The event: back, process 2 runs tasks again.
      const back = cluster.stderr.findIndex((l) => /\[0\] weft: Runtime\.cluster: lost process 2 came back/.test(l));
      expect(cluster.stderr.slice(back), detail).toContain('[2] first task 2');
      expect(cluster.stdout, detail).toContain('[0] answer ok');
      expect(code, detail).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops every process when one fails, and exits non-zero', async () => {
    const cluster = launch(['-n', '2', '-w', '1', PROGRAM, 'no-such-mode']);
    const { code } = await cluster.exited;
    expect(code).not.toBe(0);
    expect(cluster.stderr.join('\n')).toMatch(/unknown mode no-such-mode/);
  });
});
