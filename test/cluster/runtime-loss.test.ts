// Runtime.cluster is fail-stop: when a process dies mid-directive, process
// 0's directive rejects and every surviving process exits, non-zero, within
// seconds, whether or not the program closes the runtime.

import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePorts, hostfile, killAll, run, type Running } from './helpers.ts';

const SCRIPT = fileURLToPath(new URL('./fixtures/runtime-loss.ts', import.meta.url));
const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('Runtime.cluster after a process dies', () => {
  it.each(['close', 'leave'])('mode %s: process 1 killed mid-directive; processes 0 and 2 exit non-zero within 10 s', async (mode) => {
    const hosts = hostfile(await freePorts(3));
    dirs.push(hosts.dir);
    const ps = [0, 1, 2].map((i) => run(SCRIPT, ['-n', '3', '-p', String(i), '-w', '1', '-h', hosts.path, mode], i === 1 ? { WEFT_TEST_VICTIM: '1' } : {}));
    started.push(...ps);
    const victim = await ps[1]!.exited;
    expect(victim.signal).toBe('SIGKILL');
    for (const i of [0, 2]) {
      const { code, at } = await ps[i]!.exited;
      const detail = `stdout:\n${ps[i]!.stdout.join('\n')}\nstderr:\n${ps[i]!.stderr.join('\n')}`;
      expect(code, detail).not.toBe(0);
      expect(code, detail).not.toBe(null);
      expect(at - victim.at, detail).toBeLessThan(10_000);
      expect(detail).toMatch(/process 1/);
    }
  });
});
