// Runtime.cluster grows while it runs: 3 processes x 2 threads whose
// hostfile marks process 2 spare. Processes 0 and 1 start; the spare is
// started when process 0 reports its first progress (not after a sleep),
// joins, authenticated like any peer, and runs tasks of the same directive.
// A spare with the wrong secret is refused and the directive completes
// without it; a spare that never starts delays nothing. `weft launch
// --spare 1` with mutual TLS: the spare, started with the command launch
// prints, is certified by `weft keys` like the others and joins.

import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { detail, freePorts, hostfile, killAll, ROOT, run, type Running } from './helpers.ts';

const SCRIPT = fileURLToPath(new URL('./fixtures/runtime-spare.ts', import.meta.url));
const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const SECRET = 'spare-test-secret';

/** A hostfile of 3 processes, the last marked spare; `start(i)` runs process i; the 'file' mode's gate is `gate`. */
async function cluster(mode: string) {
  const { dir, path: hosts } = hostfile(await freePorts(3), [2]);
  dirs.push(dir);
  const gate = join(dir, 'go');
  return {
    open: () => writeFileSync(gate, ''),
    start(i: number, secret = SECRET): Running {
      const p = run(SCRIPT, ['-n', '3', '-p', String(i), '-w', '2', '-h', hosts, mode, gate], { WEFT_SECRET: secret });
      started.push(p);
      return p;
    },
  };
}

function printed<T>(p: Running, prefix: string): T {
  const line = p.stdout.find((l) => l.startsWith(`${prefix} `));
  expect(line, detail(p)).toBeDefined();
  return JSON.parse(line!.slice(prefix.length + 1)) as T;
}

/**
 * Each exits 0. One that has not exited 45 s in fails the test with what it
 * printed, before vitest's timeout would fail it with nothing to go on.
 */
async function exitsZero(ps: Running[]): Promise<void> {
  for (const p of ps) {
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still running after 45 s'), 45_000)));
    const code = await Promise.race([p.exited.then((e) => e.code), stuck]).finally(() => clearTimeout(timer));
    expect(code, detail(p)).toBe(0);
  }
}

describe('Runtime.cluster with a spare process', () => {
  it('a spare started at the first progress joins, runs tasks of the running directive, and the answer is right', async () => {
    const c = await cluster('join');
    const since = (at: number) => () => performance.now() - at;
    const ps = [c.start(0), c.start(1)];
    // The anchor: a process of the first cluster, from its start to its first task.
    const anchor = ps[1]!.errLine(/^first task 1$/).then(since(performance.now()));
    await ps[0]!.line(/^progress$/);
    const at = performance.now();
    const spare = c.start(2);
    const connected = ps[0]!.errLine(/spare process 2 \(127\.0\.0\.1:\d+\) joined$/).then(since(at));
    const serving = ps[0]!.errLine(/Runtime\.cluster: spare process 2 joined/).then(since(at));
    const ran = await spare.errLine(/^first task 2$/);
    expect(ran, detail(spare)).toBeDefined();
    const ms = (t: number) => `${t.toFixed(0)} ms`;
    console.info(`spare started -> connected ${ms(await connected)}, all its threads ready ${ms(await serving)}, its first task ${ms(since(at)())}; ` +
      `process 1, started with the cluster -> its first task ${ms(await anchor)} (each includes node and tsx start-up and the pipes)`);
    await exitsZero([...ps, spare]);
    expect(ps[0]!.stdout, detail(ps[0]!)).toContain('answer ok');
    const by = printed<Record<string, number>>(ps[0]!, 'by process');
    expect(by['2'] ?? 0, detail(ps[0]!)).toBeGreaterThan(0);
    expect(printed<number[]>(ps[0]!, 'joined')).toEqual([2]);
    expect(printed<{ joinedProcesses: number[]; lostProcesses: number[] }>(ps[0]!, 'stats')).toMatchObject({ joinedProcesses: [2], lostProcesses: [] });
    expect(detail(ps[1]!)).toMatch(/spare process 2 \(127\.0\.0\.1:\d+\) joined/);
  });

  it('a spare with the wrong secret is refused, and the directive completes without it', async () => {
    const c = await cluster('file');
    const ps = [c.start(0), c.start(1)];
    await ps[0]!.line(/^progress$/);
    const spare = c.start(2, 'not-the-secret');
    const { code } = await spare.exited;
    expect(code, detail(spare)).not.toBe(0);
    // It dials both at once: whichever refuses first ends it.
    expect(detail(spare)).toMatch(/ConnectError: process 2 cannot join process [01] at 127\.0\.0\.1:\d+: .*wrong secret/);
    c.open();
    await exitsZero(ps);
    expect(ps[0]!.stdout, detail(ps[0]!)).toContain('answer ok');
    expect(printed<Record<string, number>>(ps[0]!, 'by process')['2']).toBeUndefined();
    expect(printed<{ joinedProcesses: number[] }>(ps[0]!, 'stats').joinedProcesses).toEqual([]);
    expect(ps.map(detail).join('\n')).toMatch(/refused .*wrong secret/);
  });

  it('a spare that never starts delays nothing: the directive completes and both processes exit 0', async () => {
    const c = await cluster('none');
    const ps = [c.start(0), c.start(1)];
    await exitsZero(ps);
    expect(ps[0]!.stdout, detail(ps[0]!)).toContain('answer ok');
    expect(Object.keys(printed<Record<string, number>>(ps[0]!, 'by process')).sort()).toEqual(['0', '1']);
  });

  it("a spare's address held by a silent stranger delays nothing: over mutual TLS the others finish and exit 0", async () => {
    // Process 1 is the spare: process 2 dials it in the background (a process dials those below it).
    const ports = await freePorts(3);
    const { dir, path: hosts } = hostfile(ports, [1]);
    dirs.push(dir);
    // Accepts, never answers: the background dial's TLS handshake must neither hang nor hold the exit.
    const held: Socket[] = [];
    const stranger = createServer((socket) => held.push(socket.on('error', () => {})));
    await new Promise<void>((resolve) => stranger.listen(ports[1], '127.0.0.1', resolve));
    try {
      const keys = run(join(ROOT, 'bin/weft.mjs'), ['keys', join(dir, 'keys'), '-n', '3']);
      started.push(keys);
      expect((await keys.exited).code, detail(keys)).toBe(0);
      const ps = [0, 2].map((i) => {
        const p = run(SCRIPT, ['-n', '3', '-p', String(i), '-w', '2', '-h', hosts, '--tls-dir', join(dir, 'keys'), 'none'], { WEFT_SECRET: SECRET });
        started.push(p);
        return p;
      });
      await exitsZero(ps);
      expect(ps[0]!.stdout, detail(ps[0]!)).toContain('answer ok');
      expect(held.length, 'the stranger was dialled').toBeGreaterThan(0);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => stranger.close(resolve));
    }
  });

  it('weft launch --spare 1 with mutual TLS: the spare, started with the command launch printed, joins and runs tasks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-spare-launch-'));
    dirs.push(dir);
    const weft = (args: string[]): Running => {
      const p = run(join(ROOT, 'bin/weft.mjs'), args);
      started.push(p);
      return p;
    };
    const keys = weft(['keys', join(dir, 'keys'), '-n', '3']);
    expect((await keys.exited).code, detail(keys)).toBe(0);
    const cluster = weft(['launch', '-n', '3', '-w', '2', '--spare', '1', '--tls-dir', join(dir, 'keys'), SCRIPT, 'join']);
    const how = await cluster.errLine(/^weft: spare process 2 joins the running cluster when started with: /);
    expect(how, detail(cluster)).toBeDefined();
    await cluster.line(/^\[0\] progress$/);
    const [node, ...argv] = how!.replace(/^.*started with: /, '').split(' ');
    expect(node).toBe(process.execPath);
    expect(argv).toEqual(expect.arrayContaining(['-p', '2', '--tls-dir', join(dir, 'keys')]));
    // run() adds tsx itself; the command's own --import of it is harmless.
    const spare = run(argv[argv.indexOf(SCRIPT)]!, argv.slice(argv.indexOf(SCRIPT) + 1));
    started.push(spare);
    await exitsZero([cluster, spare]);
    expect(cluster.stderr.join('\n')).toMatch(/launching 3 processes \(the last 1 spare\) x 2 threads of .* with mutual TLS/);
    expect(cluster.stdout, detail(cluster)).toContain('[0] answer ok');
    const by = JSON.parse(cluster.stdout.find((l) => l.startsWith('[0] by process '))!.slice('[0] by process '.length)) as Record<string, number>;
    expect(by['2'] ?? 0, `${detail(cluster)}\nspare:\n${detail(spare)}`).toBeGreaterThan(0);
  });

  it('weft launch refuses --spare that leaves no process to start, naming the option', async () => {
    const cluster = run(join(ROOT, 'bin/weft.mjs'), ['launch', '-n', '2', '--spare', '2', SCRIPT]);
    started.push(cluster);
    expect((await cluster.exited).code).toBe(2);
    expect(cluster.stderr.join('\n')).toMatch(/weft launch: --spare 2 must be from 0 to 1 for 2 processes \(process 0 is never a spare\)/);
  });
});
