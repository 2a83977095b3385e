// A mesh that survives blips: a dial that breaks during its handshake is
// retried, and strangers that connect and say nothing cannot fill the
// listener (the oldest handshakes are dropped), while real peers get in.

import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { MAX_HANDSHAKING } from '../../src/transport/mesh.ts';
import { gatedCluster, killAll, type Running } from './helpers.ts';
import { HELLO_BYTES, Stranger, hello } from './stranger.ts';

const SECRET = 'blip test secret';
const started: Running[] = [];
const clusters: { remove(): void }[] = [];
const servers: Server[] = [];
const strangers: Stranger[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const s of strangers.splice(0)) s.close();
  for (const s of servers.splice(0)) s.close();
  for (const c of clusters.splice(0)) c.remove();
});

async function cluster() {
  const c = await gatedCluster(2, { WEFT_SECRET: SECRET }, started);
  clusters.push(c);
  return c;
}

describe('a mesh that survives blips', () => {
  it('dials that close, reset, or end mid-handshake without a refusal are retried until process 0 answers', async () => {
    const c = await cluster();
    // Process 0's address answers process 1's first dials and breaks each
    // in a different way, as a restarting process or a flaky network would.
    const breaks = [
      (s: Stranger) => s.close(), // closed before any byte
      (s: Stranger) => s.socket.resetAndDestroy(), // reset
      (s: Stranger) => {
        s.write(hello()); // a HELLO, then the end, no REFUSE
        s.socket.end();
      },
    ];
    let n = 0;
    let allBroken!: () => void;
    const broken = new Promise<void>((r) => (allBroken = r));
    const flaky = createServer((socket) => {
      const s = new Stranger(socket);
      strangers.push(s);
      void s.take(HELLO_BYTES).then(() => {
        breaks[n++]!(s);
        if (n === breaks.length) {
          flaky.close();
          allBroken();
        }
      }, () => {});
    });
    servers.push(flaky);
    await new Promise<void>((resolve) => flaky.listen(c.ports[0], '127.0.0.1', resolve));
    const p1 = c.start(1);
    await broken;
    await new Promise((resolve) => flaky.close(resolve));
    c.start(0);
    await c.completes();
    expect(p1.stderr.join('\n')).not.toMatch(/ConnectError/);
  });

  it(`at most ${MAX_HANDSHAKING} + processes connections wait in their handshake: the oldest silent strangers are dropped, process 1 gets in`, async () => {
    const c = await cluster();
    c.start(0);
    const cap = MAX_HANDSHAKING + 2;
    const extra = 8;
    const silent: Stranger[] = [];
    silent.push(await Stranger.connect(c.ports[0]!));
    for (let k = 1; k < cap + extra; k++) silent.push(await Stranger.connect(c.ports[0]!));
    strangers.push(...silent);
    // The oldest `extra` are closed by process 0 as the newest arrive, long
    // before their handshake deadline: when they are all closed, none of
    // the others is.
    await Promise.all(silent.slice(0, extra).map((s) => s.closed));
    const closedSoFar = silent.filter((s) => s.socket.destroyed || s.socket.readableEnded);
    expect(closedSoFar.length).toBe(extra);
    // None got more than process 0's HELLO.
    for (const s of silent.slice(0, extra)) expect(s.all().length).toBeLessThanOrEqual(HELLO_BYTES);
    c.start(1);
    await c.completes();
    expect(started[0]!.stderr.join('\n')).toContain(`dropped, the oldest of ${cap} connections still in their handshake`);
  });
});
