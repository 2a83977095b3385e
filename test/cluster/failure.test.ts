// Crashes: a process killed mid-run makes every survivor fail, within 5 s,
// with a PeerError naming it; a process with the wrong secret cannot join.

import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { freePorts, hostfile, killAll, runProcess, type Running } from './helpers.ts';

const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('cluster failure', () => {
  it('SIGKILL of process 1 mid-run: processes 0 and 2 exit non-zero within 5 s with a PeerError naming process 1', async () => {
    const hosts = hostfile(await freePorts(3));
    dirs.push(hosts.dir);
    const ps = [0, 1, 2].map((i) => runProcess(i, 3, 2, hosts.path, ['hang']));
    started.push(...ps);
    // Every process has its workers running and waiting for messages.
    await Promise.all(ps.map((p, i) => p.line(new RegExp(`^ready ${i}$`))));
    const killedAt = performance.now();
    ps[1]!.child.kill('SIGKILL');
    for (const i of [0, 2]) {
      const { code, at } = await ps[i]!.exited;
      const detail = ps[i]!.stderr.join('\n');
      expect(code, detail).not.toBe(0);
      expect(at - killedAt, detail).toBeLessThan(5_000);
      expect(detail).toMatch(/^failed PeerError: .*process 1 \(127\.0\.0\.1:\d+\)/m);
    }
  });

  it("a worker thread that exits names its global index, in its own process's failure as in the worker it blames", async () => {
    const hosts = hostfile(await freePorts(2));
    dirs.push(hosts.dir);
    // Global worker 3 is process 1's second thread (local index 1).
    const ps = [0, 1].map((i) => runProcess(i, 2, 2, hosts.path, ['exits', '3']));
    started.push(...ps);
    const { code } = await ps[1]!.exited;
    const detail = ps[1]!.stderr.join('\n');
    expect(code, detail).toBe(1);
    expect(detail).toMatch(/^failed WorkerError: worker 3 failed: Error: worker 3 exited with code 3 before returning$/m);
  });

  it('a process started with a different secret is refused and fails with a clear error', async () => {
    const hosts = hostfile(await freePorts(2));
    dirs.push(hosts.dir);
    const good = runProcess(0, 2, 1, hosts.path, ['hang'], { WEFT_SECRET: 'right secret' });
    const bad = runProcess(1, 2, 1, hosts.path, ['hang'], { WEFT_SECRET: 'wrong secret' });
    started.push(good, bad);
    const { code } = await bad.exited;
    const detail = bad.stderr.join('\n');
    expect(code, detail).not.toBe(0);
    expect(detail).toMatch(/ConnectError: process 1 cannot join process 0 at 127\.0\.0\.1:\d+: .*wrong secret/);
    // Process 0 logged the refusal and is still waiting for a real process 1.
    expect(await good.errLine(/refused a connection .*wrong secret/)).toBeDefined();
    expect(good.child.exitCode).toBe(null);
  });
});
