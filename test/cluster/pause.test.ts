// A pause of the whole machine (a suspended laptop, a virtual machine its
// host stops for a while) stops every process of a local cluster at once.
// Each wakes with its heartbeat timer overdue and its peers' frames unread:
// that must not read as "every peer died".

import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { detail, gatedCluster, killAll, PROGRAM, ROOT, run, type Running } from './helpers.ts';

const started: Running[] = [];
const clusters: { remove(): void }[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const c of clusters.splice(0)) c.remove();
});

describe('a cluster paused as a whole', () => {
  it('for longer than the heartbeat timeout goes on when it wakes, and completes', async () => {
    const c = await gatedCluster(3, {}, started);
    clusters.push(c);
    const ps = [0, 1, 2].map((i) => c.start(i));
    await Promise.all(ps.map((p, i) => p.line(new RegExp(`^ready ${i}$`))));
    for (const p of ps) p.child.kill('SIGSTOP');
    // The pause itself: twice the gated program's heartbeatTimeoutMs (3 s).
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    for (const p of ps) p.child.kill('SIGCONT');
    await c.completes();
    for (const p of ps) expect(p.stderr.join('\n')).not.toMatch(/presumed dead/);
  });
});

describe('a worker that reads nothing for longer than the heartbeat timeout', () => {
  // Its router stops reading the sockets once it holds 8 MiB the worker has
  // not taken (docs/cluster.md, "Backpressure"): the peer's heartbeats wait
  // unread behind its frames, and that silence is not the peer's.
  it('while a peer streams to it: the peer waits on ready() past the timeout, is not presumed dead, and everything arrives', async () => {
    const cluster = run(join(ROOT, 'bin/weft.mjs'), ['launch', '-n', '2', '-w', '1', PROGRAM, 'slowReader']);
    started.push(cluster);
    const { code } = await cluster.exited;
    const d = detail(cluster);
    expect(code, d).toBe(0);
    expect(cluster.stdout.join('\n'), d).not.toMatch(/presumed dead/);
    expect(cluster.stdout, d).toContain('[1] result [40]');
    // The sender was held by backpressure for longer than the timeout (2 s): the pause spanned a verdict.
    const waited = Number(/^\[0\] result \[(\d+)\]$/.exec(cluster.stdout.find((l) => l.startsWith('[0] result')) ?? '')?.[1]);
    expect(waited, d).toBeGreaterThan(2_000);
  });
});
