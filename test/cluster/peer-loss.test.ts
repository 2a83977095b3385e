// Config.cluster with onPeerLoss 'continue': a process killed mid-exchange
// is reported to the survivors, who run to the end; what its workers sent
// arrives as a whole, in-order prefix, and between the survivors every
// message arrives once, in order. The default stays fail-stop (failure.test.ts).

import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Config, ConfigError } from '../../src/index.ts';
import { checkConfig } from '../../src/allocator/config.ts';
import { freePorts, hostfile, killAll, run, type Running } from './helpers.ts';

const SCRIPT = fileURLToPath(new URL('./fixtures/peer-loss.ts', import.meta.url));
const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('onPeerLoss', () => {
  it.each([['stop'], [''], [null], [1], ['Continue']])('refuses %j with a ConfigError naming the option', (value) => {
    const make = () => Config.cluster({ threads: 1, process: 0, addresses: ['127.0.0.1:1'], onPeerLoss: value as 'continue' });
    expect(make).toThrow(ConfigError);
    expect(make).toThrow(/onPeerLoss \(--on-peer-loss, WEFT_ON_PEER_LOSS\) must be 'abort' or 'continue'/);
  });

  it("defaults to 'abort' (fail-stop)", () => {
    const c = Config.cluster({ threads: 1, process: 0, addresses: ['127.0.0.1:1'] });
    const settings = checkConfig(c);
    expect(settings.kind === 'cluster' && settings.cluster.onPeerLoss).toBe('abort');
  });

  it("'continue': process 2 killed mid-exchange; processes 0 and 1 learn it, run to the end and exit 0", async () => {
    const hosts = hostfile(await freePorts(3));
    dirs.push(hosts.dir);
    const ps = [0, 1, 2].map((i) => run(SCRIPT, ['-n', '3', '-p', String(i), '-w', '2', '-h', hosts.path], i === 2 ? { WEFT_TEST_VICTIM: '1' } : {}));
    started.push(...ps);
    expect((await ps[2]!.exited).signal).toBe('SIGKILL');
    for (const i of [0, 1]) {
      const { code } = await ps[i]!.exited;
      const out = ps[i]!.stdout;
      const detail = `stdout:\n${out.join('\n')}\nstderr:\n${ps[i]!.stderr.join('\n')}`;
      expect(code, detail).toBe(0);
      const results = out.filter((l) => l.startsWith('result ')).map((l) => JSON.parse(l.slice(7)) as number[]);
      expect(results, detail).toHaveLength(2);
      for (const counts of results) {
        // Survivors' messages all arrived (the fixture checked their order).
        expect(counts.slice(0, 4)).toEqual([5000, 5000, 5000, 5000]);
        // The victim's: a prefix of what it sent, never more than it sent before dying.
        for (const n of counts.slice(4)) expect(n).toBeLessThanOrEqual(2500);
      }
      expect(out.filter((l) => l === 'lost [4,5]'), detail).toHaveLength(2);
      for (const l of out.filter((x) => x.startsWith('refused '))) expect(l).toMatch(/^refused PeerError: send to worker [45] on channel 0: its process 2 was lost \(.*\) and has not been restarted$/);
      expect(ps[i]!.stderr.join('\n')).toMatch(/process 2 .*the others continue/);
    }
  });
});
