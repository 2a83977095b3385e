// Config.cluster spares at the allocator layer: 3 processes x 1 thread whose
// hostfile marks process 2 spare. Until it joins, a send to its worker
// throws a PeerError; it is started once both others have seen that (not
// after a sleep), joins, and exchanges with them in both directions;
// allocator.peerJoins() and present() say so. A spare that joins and dies
// is a lost peer like any other.

import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { detail, freePorts, hostfile, killAll, run, type Running } from './helpers.ts';

const SCRIPT = fileURLToPath(new URL('./fixtures/spare.ts', import.meta.url));
const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function cluster(): Promise<(i: number, env?: NodeJS.ProcessEnv) => Running> {
  const hosts = hostfile(await freePorts(3), [2]);
  dirs.push(hosts.dir);
  return (i, env = {}) => {
    const p = run(SCRIPT, ['-n', '3', '-p', String(i), '-w', '1', '-h', hosts.path], { WEFT_SECRET: 'spare-secret', ...env });
    started.push(p);
    return p;
  };
}

type Result = { heard: number[]; lost: number[]; present: boolean[] };
const result = (p: Running): Result[] => JSON.parse(p.stdout.find((l) => l.startsWith('result '))!.slice(7)) as Result[];

describe('a spare process (Config.cluster spares)', () => {
  it('is refused with a PeerError until it joins; once joined it exchanges with every worker, and every process exits 0', async () => {
    const start = await cluster();
    const ps = [start(0), start(1)];
    for (const [i, p] of ps.entries()) {
      const line = await p.line(/^refused /);
      expect(line).toMatch(new RegExp(`^refused ${i} PeerError \\(process 2\\): send to worker 2 on channel 0: its process 2 is a spare that has not joined`));
    }
    ps.push(start(2));
    for (const p of ps) expect((await p.exited).code, detail(p)).toBe(0);
    for (const i of [0, 1]) {
      expect(ps[i]!.stdout).toContain(`joined ${i} [{"process":2,"workers":[2]}]`);
      expect(result(ps[i]!), detail(ps[i]!)).toEqual([{ heard: [0, 1, 2], lost: [], present: [true, true, true] }]);
    }
    expect(result(ps[2]!), detail(ps[2]!)).toEqual([{ heard: [0, 1, 2], lost: [], present: [true, true, true] }]);
  });

  it('that joins and then dies is a lost peer: the others learn it, finish and exit 0', async () => {
    const start = await cluster();
    const ps = [start(0), start(1)];
    for (const p of ps) await p.line(/^refused /);
    const spare = start(2, { WEFT_TEST_VICTIM: '1' });
    expect((await spare.exited).signal, detail(spare)).toBe('SIGKILL');
    for (const p of ps) {
      expect((await p.exited).code, detail(p)).toBe(0);
      const [r] = result(p);
      expect(r!.lost, detail(p)).toEqual([2]);
      expect(r!.heard.slice(0, 2)).toEqual([0, 1]);
      expect(detail(p)).toMatch(/spare process 2 \(127\.0\.0\.1:\d+\) joined/);
    }
  });
});
