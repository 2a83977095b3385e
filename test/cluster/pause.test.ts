// A pause of the whole machine (a suspended laptop, a virtual machine its
// host stops for a while) stops every process of a local cluster at once.
// Each wakes with its heartbeat timer overdue and its peers' frames unread:
// that must not read as "every peer died".

import { afterEach, describe, expect, it } from 'vitest';
import { gatedCluster, killAll, type Running } from './helpers.ts';

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
