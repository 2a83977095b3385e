// weft:peer-lost and weft:peer-joined, subscribed to in a Runtime.cluster
// orchestrator (the runtime-spare fixture of test/cluster, which prints
// each message): process 2 is SIGKILLed mid-map and started again, and
// rejoins under its index.

import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { PeerMessage } from '../../src/index.ts';
import { detail, freePorts, hostfile, killAll, run, type Running } from '../cluster/helpers.ts';

const SCRIPT = fileURLToPath(new URL('../cluster/fixtures/runtime-spare.ts', import.meta.url));
const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The messages process 0 printed for `channel`. */
function messages(p: Running, channel: string): PeerMessage[] {
  return p.stdout.filter((line) => line.startsWith(`${channel} `)).map((line) => JSON.parse(line.slice(channel.length + 1)) as PeerMessage);
}

describe('peer channels', () => {
  it('weft:peer-lost names the lost process and the tasks run again elsewhere; weft:peer-joined names the process that came back', async () => {
    const { dir, path: hosts } = hostfile(await freePorts(3));
    dirs.push(dir);
    const gate = join(dir, 'go');
    const start = (i: number): Running => {
      const p = run(SCRIPT, ['-n', '3', '-p', String(i), '-w', '2', '-h', hosts, 'file', gate], { WEFT_SECRET: 'peers-test-secret', WEFT_TEST_PEER_EVENTS: '1' });
      started.push(p);
      return p;
    };
    const ps = [0, 1, 2].map(start);
    expect(await ps[2]!.errLine(/^first task 2$/), detail(ps[2]!)).toBeDefined();
    ps[2]!.child.kill('SIGKILL');
    expect(await ps[0]!.line(/^weft:peer-lost /), detail(ps[0]!)).toBeDefined();
    const again = start(2);
    expect(await ps[0]!.line(/^weft:peer-joined /), detail(ps[0]!)).toBeDefined();
    writeFileSync(gate, '');
    for (const p of [ps[0]!, ps[1]!, again]) expect((await p.exited).code, detail(p)).toBe(0);
    expect(ps[0]!.stdout, detail(ps[0]!)).toContain('answer ok');
    const stats = JSON.parse(ps[0]!.stdout.find((line) => line.startsWith('stats '))!.slice(6)) as { lostProcesses: number[]; joinedProcesses: number[]; redispatched: number };
    const lost = messages(ps[0]!, 'weft:peer-lost');
    // The only loss: it held the task it died in, at least; its tasks run again are all the runtime ran again.
    expect(stats.redispatched).toBeGreaterThan(0);
    expect(lost).toEqual([{ process: 2, redispatched: stats.redispatched }]);
    expect(messages(ps[0]!, 'weft:peer-joined')).toEqual([{ process: 2, redispatched: 0 }]);
    expect(stats).toMatchObject({ lostProcesses: [2], joinedProcesses: [2] });
  }, 120_000);
});
