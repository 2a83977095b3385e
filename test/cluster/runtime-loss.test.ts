// Runtime.cluster survives losing a serving process: 3 processes x 2
// threads, process 2 SIGKILLed in the middle of a map of 10^4 tasks (at a
// point its operation picks, not after a sleep); the tasks it held run on
// the survivors, the answer is right, and processes 0 and 1 exit 0; the
// same when process 2 freezes (SIGSTOP) and only heartbeats can tell. Losing
// process 0 (the orchestrator) fails the others with a clear error within 5 s.

import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { detail, freePorts, hostfile, killAll, run, type Running } from './helpers.ts';

const SCRIPT = fileURLToPath(new URL('./fixtures/runtime-loss.ts', import.meta.url));
const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** runtime.stats() after the map: process 2 lost, and at least the task it died in ran again. */
function expectStats(p: Running): void {
  const line = p.stdout.find((l) => l.startsWith('stats '));
  expect(line, detail(p)).toBeDefined();
  const stats = JSON.parse(line!.slice(6)) as { lostProcesses: number[]; redispatched: number };
  expect(stats.lostProcesses).toEqual([2]);
  expect(stats.redispatched).toBeGreaterThan(0);
}

async function cluster(victim: number, mode: string, how = '1'): Promise<Running[]> {
  const hosts = hostfile(await freePorts(3));
  dirs.push(hosts.dir);
  const ps = [0, 1, 2].map((i) => run(SCRIPT, ['-n', '3', '-p', String(i), '-w', '2', '-h', hosts.path, mode], i === victim ? { WEFT_TEST_VICTIM: how } : {}));
  started.push(...ps);
  return ps;
}

describe('Runtime.cluster after a process dies', () => {
  it.each(['close', 'leave'])('mode %s: process 2 killed mid-map; its tasks run on the others, the answer is right, processes 0 and 1 exit 0', async (mode) => {
    const ps = await cluster(2, mode);
    const victim = await ps[2]!.exited;
    expect(victim.signal, detail(ps[2]!)).toBe('SIGKILL');
    expect(ps[2]!.stderr).toContain('victim dies');
    const noticed = await ps[0]!.errLine(/lost process 2; the \d+ task\(s\) it held run on the others/);
    console.info(`process 2 died -> its tasks re-queued on process 0: ${(performance.now() - victim.at).toFixed(0)} ms (upper bound: includes the pipes)`);
    expect(noticed, detail(ps[0]!)).toBeDefined();
    for (const i of [0, 1]) {
      const { code } = await ps[i]!.exited;
      expect(code, detail(ps[i]!)).toBe(0);
    }
    expect(ps[0]!.stdout).toContain('answer ok');
    expectStats(ps[0]!);
  });

  it('process 2 frozen (SIGSTOP) mid-map: found by heartbeat, its tasks run on the others, the answer is right, processes 0 and 1 exit 0', async () => {
    const ps = await cluster(2, 'close', 'stop');
    expect(await ps[2]!.errLine(/^victim stops$/), detail(ps[2]!)).toBeDefined();
    for (const i of [0, 1]) {
      const { code } = await ps[i]!.exited;
      expect(code, detail(ps[i]!)).toBe(0);
    }
    expect(ps[0]!.stdout).toContain('answer ok');
    expectStats(ps[0]!);
    expect(detail(ps[0]!)).toMatch(/process 2 \(127\.0\.0\.1:\d+\) sent nothing for \d+ ms: it is presumed dead; the others continue/);
    expect(detail(ps[0]!)).toMatch(/lost process 2; the \d+ task\(s\) it held run on the others/);
    // Still frozen: afterEach kills it.
    expect(ps[2]!.child.exitCode).toBe(null);
  });

  it('process 0 killed mid-map: processes 1 and 2 exit non-zero within 5 s, naming the lost orchestrator', async () => {
    const ps = await cluster(0, 'close');
    const victim = await ps[0]!.exited;
    expect(victim.signal, detail(ps[0]!)).toBe('SIGKILL');
    for (const i of [1, 2]) {
      const { code, at } = await ps[i]!.exited;
      expect(code, detail(ps[i]!)).not.toBe(0);
      expect(code, detail(ps[i]!)).not.toBe(null);
      expect(at - victim.at, detail(ps[i]!)).toBeLessThan(5_000);
      expect(detail(ps[i]!)).toMatch(/PeerError: .*process 0(, the orchestrator's,)? was lost/);
    }
  });
});
