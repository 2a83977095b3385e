// Processes that come back: under Runtime.cluster (which continues past a
// lost serving process), process 2 is SIGKILLed mid-directive and started
// again with the same command line; it rejoins under its index, through
// the same handshake as any join, and gets tasks again. A spare started
// with --replaces 1 takes SIGKILLed process 1's index from its own address
// and runs tasks; one started while process 1 is connected is refused with
// that reason. (A process that claims an index still connected is refused
// with that reason: test/cluster/hostile.test.ts.)

import { afterEach, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detail, freePorts, hostfile, killAll, run, type Running } from './helpers.ts';

const SCRIPT = fileURLToPath(new URL('./fixtures/runtime-spare.ts', import.meta.url));
const COMEBACK = fileURLToPath(new URL('./fixtures/comeback.ts', import.meta.url));
const SECRET = 'rejoin-test-secret';
const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** 3 processes x 2 threads of the runtime-spare fixture, in its 'file' mode: the second half of the map waits for `open()`. */
async function cluster() {
  const { dir, path: hosts } = hostfile(await freePorts(3));
  dirs.push(dir);
  const gate = join(dir, 'go');
  return {
    open: () => writeFileSync(gate, ''),
    start(i: number): Running {
      const p = run(SCRIPT, ['-n', '3', '-p', String(i), '-w', '2', '-h', hosts, 'file', gate], { WEFT_SECRET: SECRET });
      started.push(p);
      return p;
    },
  };
}

describe('a lost process that comes back', () => {
  it('Runtime.cluster: process 2, killed mid-map and restarted with the same command line, rejoins under its index and runs tasks again', async () => {
    const c = await cluster();
    const ps = [0, 1, 2].map((i) => c.start(i));
    expect(await ps[2]!.errLine(/^first task 2$/), detail(ps[2]!)).toBeDefined();
    ps[2]!.child.kill('SIGKILL');
    expect(await ps[0]!.errLine(/Runtime\.cluster lost process 2/), detail(ps[0]!)).toBeDefined();
    const again = c.start(2);
    expect(await ps[0]!.errLine(/lost process 2 \(127\.0\.0\.1:\d+\) came back$/), detail(ps[0]!)).toBeDefined();
    expect(await ps[0]!.errLine(/Runtime\.cluster: lost process 2 came back; it gets tasks from now on/), detail(ps[0]!)).toBeDefined();
    c.open();
    // The event: the new process 2 ran a task of the same directive.
    expect(await again.errLine(/^first task 2$/), detail(again)).toBeDefined();
    for (const p of [ps[0]!, ps[1]!, again]) expect((await p.exited).code, detail(p)).toBe(0);
    expect(ps[0]!.stdout, detail(ps[0]!)).toContain('answer ok');
    const stats = JSON.parse(ps[0]!.stdout.find((l) => l.startsWith('stats '))!.slice(6)) as { lostProcesses: number[]; joinedProcesses: number[] };
    expect(stats.lostProcesses).toEqual([2]);
    expect(stats.joinedProcesses).toEqual([2]);
  }, 120_000);
});

describe('a lost process that comes back, under initialize', () => {
  it('process 2 dies, is started again with the same command line, and every worker exchanges with it in order: peerLosses then peerJoins, every process exits 0', async () => {
    const { dir, path: hosts } = hostfile(await freePorts(3));
    dirs.push(dir);
    const env = { WEFT_SECRET: SECRET, WEFT_TEST_DIE_ONCE: join(dir, 'died') };
    const start = (i: number): Running => {
      const p = run(COMEBACK, ['-n', '3', '-p', String(i), '-w', '1', '-h', hosts], env);
      started.push(p);
      return p;
    };
    const ps = [0, 1, 2].map(start);
    expect((await ps[2]!.exited).signal, detail(ps[2]!)).toBe('SIGKILL');
    expect(ps[2]!.stderr).toContain('victim dies');
    for (const i of [0, 1]) expect(await ps[i]!.errLine(/process 2 .*; the others continue$/), detail(ps[i]!)).toBeDefined();
    const again = start(2);
    for (const i of [0, 1]) expect(await ps[i]!.errLine(new RegExp(`^back ${i}$`)), detail(ps[i]!)).toBeDefined();
    for (const p of [ps[0]!, ps[1]!, again]) expect((await p.exited).code, detail(p)).toBe(0);
    type Result = { heard: number[]; lost: number[]; joined: number[]; before: number; reconnects: number[] };
    const result = (p: Running): Result => {
      const line = p.stdout.find((l) => l.startsWith('result '));
      expect(line, detail(p)).toBeDefined();
      return (JSON.parse(line!.slice(7)) as Result[])[0]!;
    };
    const all = [5_000, 5_000, 5_000];
    for (const i of [0, 1]) {
      const r = result(ps[i]!);
      // Its links: to the other survivor, and to process 2, which connected once more.
      expect(r, detail(ps[i]!)).toMatchObject({ heard: all, lost: [2], joined: [2], reconnects: [0, 1] });
      // Early numbers: all from processes 0 and 1 and from the new process 2, some from the old one.
      expect(r.before).toBeGreaterThanOrEqual(15_000);
      expect(r.before).toBeLessThanOrEqual(20_000);
    }
    // The new process 2 saw nobody lost or joined; the others' early numbers went to the old one.
    expect(result(again), detail(again)).toEqual({ heard: all, lost: [], joined: [], before: 5_000, reconnects: [0, 0] });
  }, 120_000);
});

describe('a spare that takes a lost process\'s place', () => {
  /** 4 processes x 2 threads of the runtime-spare fixture ('file' mode), process 3 marked spare; `start(i, ...flags)`. */
  async function withSpare() {
    const ports = await freePorts(4);
    const { dir, path: hosts } = hostfile(ports, [3]);
    dirs.push(dir);
    const gate = join(dir, 'go');
    return {
      ports,
      open: () => writeFileSync(gate, ''),
      start(i: number, ...flags: string[]): Running {
        const p = run(SCRIPT, ['-n', '4', '-p', String(i), '-w', '2', '-h', hosts, ...flags, 'file', gate], { WEFT_SECRET: SECRET });
        started.push(p);
        return p;
      },
    };
  }

  it('Runtime.cluster: process 1 is SIGKILLed mid-map; spare 3 started with --replaces 1 dials the survivors below and above it, takes index 1 and runs tasks', async () => {
    const c = await withSpare();
    const ps = [0, 1, 2].map((i) => c.start(i));
    expect(await ps[1]!.errLine(/^first task 1$/), detail(ps[1]!)).toBeDefined();
    ps[1]!.child.kill('SIGKILL');
    for (const i of [0, 2]) expect(await ps[i]!.errLine(/process 1 .*; the others continue$/), detail(ps[i]!)).toBeDefined();
    const spare = c.start(3, '--replaces', '1');
    // Process 2 is above 1: it took the replacement's dial in, which only a lost index may make.
    for (const i of [0, 2]) expect(await ps[i]!.errLine(/lost process 1 \(127\.0\.0\.1:\d+\) came back$/), detail(ps[i]!)).toBeDefined();
    expect(await ps[0]!.errLine(/Runtime\.cluster: lost process 1 came back; it gets tasks from now on/), detail(ps[0]!)).toBeDefined();
    c.open();
    // The event: the replacement (the fixture labels its tasks with its -p, 3) ran tasks of the same directive.
    expect(await spare.errLine(/^first task 3$/), detail(spare)).toBeDefined();
    for (const p of [ps[0]!, ps[2]!, spare]) expect((await p.exited).code, detail(p)).toBe(0);
    // It listens on spare 3's line of the hostfile, and so never dials it (itself).
    expect(spare.stderr.join('\n'), detail(spare)).not.toMatch(/spare process 3/);
    expect(ps[0]!.stdout, detail(ps[0]!)).toContain('answer ok');
    const by = JSON.parse(ps[0]!.stdout.find((l) => l.startsWith('by process '))!.slice(11)) as Record<string, number>;
    expect(by['3'], detail(ps[0]!)).toBeGreaterThan(0);
    const stats = JSON.parse(ps[0]!.stdout.find((l) => l.startsWith('stats '))!.slice(6)) as { lostProcesses: number[]; joinedProcesses: number[] };
    expect(stats.lostProcesses).toEqual([1]);
    expect(stats.joinedProcesses).toEqual([1]);
  }, 120_000);

  it('a replacement for a process that is still connected is refused with that reason, and the cluster completes without it', async () => {
    const c = await withSpare();
    const ps = [0, 1, 2].map((i) => c.start(i));
    expect(await ps[0]!.line(/^progress$/), detail(ps[0]!)).toBeDefined();
    const spare = c.start(3, '--replaces', '1', '--connect-timeout', '2000');
    const { code } = await spare.exited;
    expect(code, detail(spare)).not.toBe(0);
    expect(spare.stderr.join('\n'), detail(spare)).toMatch(/ConnectError: process 1 cannot (join|reach) process [02] at .*process 1 is still connected: a second process cannot take its index/);
    c.open();
    for (const p of ps) expect((await p.exited).code, detail(p)).toBe(0);
    const stats = JSON.parse(ps[0]!.stdout.find((l) => l.startsWith('stats '))!.slice(6)) as { lostProcesses: number[]; joinedProcesses: number[] };
    expect(stats).toMatchObject({ lostProcesses: [], joinedProcesses: [] });
  }, 120_000);
});
