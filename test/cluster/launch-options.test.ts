// `weft launch` passes the cluster options a user tunes on to every
// process (--on-peer-loss, --heartbeat-timeout, --connect-timeout, or the
// environment variables they inherit), and refuses a wrong value once,
// before anything starts.

import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { detail, ROOT, run } from './helpers.ts';

const OPTIONS = fileURLToPath(new URL('./fixtures/options.ts', import.meta.url));
const launch = (args: string[], env: NodeJS.ProcessEnv = {}) => run(join(ROOT, 'bin/weft.mjs'), ['launch', ...args], env);

describe('weft launch cluster options', () => {
  it('passes --on-peer-loss, --heartbeat-timeout and --connect-timeout to every process; the environment fills what is not given', async () => {
    const cluster = launch(['-n', '2', '--on-peer-loss', 'continue', '--heartbeat-timeout', '6000', OPTIONS, 'mode', '--flag'], { WEFT_CONNECT_TIMEOUT_MS: '4000' });
    const { code } = await cluster.exited;
    expect(code, detail(cluster)).toBe(0);
    const seen = { onPeerLoss: 'continue', heartbeatTimeoutMs: 6000, connectTimeoutMs: 4000, rest: ['mode', '--flag'] };
    for (let i = 0; i < 2; i++) expect(cluster.stdout, detail(cluster)).toContain(`[${i}] ${JSON.stringify(seen)}`);
  });

  it.each([
    [['--on-peer-loss', 'never'], /^weft launch: onPeerLoss \(--on-peer-loss, WEFT_ON_PEER_LOSS\) must be 'abort' or 'continue', got "never"$/],
    [['--heartbeat-timeout', '3s'], /^weft launch: heartbeatTimeoutMs \(--heartbeat-timeout, WEFT_HEARTBEAT_TIMEOUT_MS\) must be an integer number of ms from 150 to 2147483647, got "3s"$/],
    [['--heartbeat-timeout', '20'], /^weft launch: heartbeatTimeoutMs .* got 20$/],
    [['--connect-timeout', '0'], /^weft launch: connectTimeoutMs \(--connect-timeout, WEFT_CONNECT_TIMEOUT_MS\) must be an integer number of ms from 1 to 2147483647, got 0$/],
  ])('refuses %j once, before starting anything', async (flags, message) => {
    const cluster = launch(['-n', '2', ...flags, OPTIONS]);
    const { code } = await cluster.exited;
    expect(code, detail(cluster)).toBe(2);
    expect(cluster.stderr, detail(cluster)).toEqual([expect.stringMatching(message)]);
    expect(cluster.stdout).toEqual([]);
  });
});
