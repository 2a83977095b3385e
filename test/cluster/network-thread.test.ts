// The network runs on a thread of its own in each process: user code that
// holds the main thread (a monoid's combine in the orchestrator, a
// synchronous loop after initialize) delays no frame and no heartbeat. Both
// run with weft 0.2's heartbeat timeout (3 s) and block for 10 s; on a main
// thread router the peer was declared dead after 3.3 s.

import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { detail, freePorts, hostfile, killAll, run, runProcess, type Running } from './helpers.ts';

/** Messages each worker sends each worker in the fixture's exchange (its EXCHANGE). */
const EXCHANGE = 20_000;

const BLOCK = fileURLToPath(new URL('./fixtures/runtime-block.ts', import.meta.url));
const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function hosts(n: number): Promise<string> {
  const h = hostfile(await freePorts(n));
  dirs.push(h.dir);
  return h.path;
}

describe('a network thread per process', () => {
  it('a Runtime.cluster fold whose combine blocks process 0\'s main thread for 10 s completes with the right answer', async () => {
    const path = await hosts(2);
    const ps = [0, 1].map((i) => run(BLOCK, ['-n', '2', '-p', String(i), '-w', '2', '-h', path]));
    started.push(...ps);
    // The block happened, and the run outlived it.
    expect(await ps[0]!.errLine(/^combine unblocks$/), detail(ps[0]!)).toBeDefined();
    for (const p of ps) expect((await p.exited).code, detail(p)).toBe(0);
    const n = 2_000;
    const expected = ((n - 1) * n * (2 * n - 1)) / 6;
    expect(ps[0]!.stdout, detail(ps[0]!)).toContain(`total ${expected}`);
    for (const p of ps) expect(detail(p)).not.toMatch(/presumed dead|was lost/);
  }, 90_000);

  it('a synchronous 10 s loop on process 1\'s main thread after initialize does not get it declared dead', async () => {
    const path = await hosts(2);
    const ps = [0, 1].map((i) => runProcess(i, 2, 2, path, ['busy', '1']));
    started.push(...ps);
    for (const p of ps) expect((await p.exited).code, detail(p)).toBe(0);
    expect(ps[1]!.stdout, detail(ps[1]!)).toContain('busy done');
    const all = new Array(4).fill(EXCHANGE);
    for (const p of ps) expect(p.stdout, detail(p)).toContain(`result ${JSON.stringify([all, all])}`);
    for (const p of ps) expect(detail(p)).not.toMatch(/presumed dead/);
  }, 90_000);
});
