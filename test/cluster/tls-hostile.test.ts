// Mutual TLS against peers that check nothing themselves: a hostile TLS
// client and a hostile TLS server (rejectUnauthorized: false on their side)
// bring a self-signed certificate naming a member, another CA's, an expired
// one, one not yet valid, a CA certificate as a leaf, a revoked one (weft
// keys revoke), or none. The weft end refuses each before it writes
// anything of the cluster (no HELLO, no SHAPE, no frame), says why, and the
// cluster runs on and delivers nothing forged.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as connectTls, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detail, freePorts, hostfile, killAll, refusalsLogged, ROOT, run, runProcess, type Running } from './helpers.ts';
import { MAGIC_HELLO, MAGIC_REFUSE, hello, shape } from './stranger.ts';
import { makeKeys, revoke } from '../../src/cli/keys.ts';
import { forgeIdentity, type Identity } from './forged.ts';

const started: Running[] = [];
const dirs: string[] = [];
let keys = '';
let parent = '';
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

beforeAll(async () => {
  parent = mkdtempSync(join(tmpdir(), 'weft-tls-hostile-'));
  keys = join(parent, 'keys');
  for (const args of [['keys', keys, '-n', '3'], ['keys', 'revoke', keys, '2']]) {
    const made = run(join(ROOT, 'bin/weft.mjs'), args);
    const { code } = await made.exited;
    expect(code, detail(made)).toBe(0);
  }
}, 60_000);
afterAll(() => rmSync(parent, { recursive: true, force: true }));

const read = (name: string): string => readFileSync(join(keys, name), 'utf8');

/** What each hostile peer presents, and the reason the weft end gives. */
function hostile(member: number): [string, Identity | undefined, RegExp][] {
  const ca = { key: read('ca.key'), cert: read('ca.crt') };
  const otherCa = forgeIdentity({ name: 'another CA', ca: true });
  const name = `weft process ${member}`;
  return [
    [`a self-signed certificate naming process ${member}`, forgeIdentity({ name }), /^certificate not signed by the cluster CA$/],
    ['another CA\'s certificate', forgeIdentity({ name, issuer: otherCa }), /^certificate not signed by the cluster CA$/],
    ['an expired certificate of the cluster CA', forgeIdentity({ name, issuer: ca, from: -30, to: -1 }), /^certificate expired on \w{3} +\d+ [\d:]+ \d{4} GMT$/],
    ['a certificate of the cluster CA not yet valid', forgeIdentity({ name, issuer: ca, from: 1, to: 30 }), /^certificate not valid before \w{3} +\d+ [\d:]+ \d{4} GMT$/],
    ['a CA certificate of the cluster CA as a leaf', forgeIdentity({ name, issuer: ca, ca: true }), /^a CA certificate, not a process's$/],
    ['a revoked certificate (weft keys revoke)', { key: read('process-2.key'), cert: read('process-2.crt') }, /^certificate revoked on /],
    ['no certificate', undefined, /^no certificate$/],
  ];
}

/** A forged DATA frame from worker 1 to worker 0 on channel 0: one msgpack number, 1 000 000. */
function forgedData(): Buffer {
  const payload = Buffer.from([0xce, 0x00, 0x0f, 0x42, 0x40]);
  const header = Buffer.alloc(32);
  [payload.length, 0, 1, 0, 0].forEach((v, k) => header.writeUInt32LE(v, 4 * k));
  header.writeUInt8(1, 20); // DATA
  header.writeUInt8(1, 21); // msgpack
  header.writeUInt32LE(1, 24);
  header.writeUInt32LE(payload.length, 28);
  return Buffer.concat([header, payload]);
}

/**
 * A TLS client that trusts anything connects with `id`, and as soon as its
 * side of TLS is done sends what process 1 would (HELLO, SHAPE) and a
 * forged frame; resolves with every byte it received once closed.
 */
function visit(port: number, id: Identity | undefined): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connectTls({ host: '127.0.0.1', port, ...id, rejectUnauthorized: false });
    s.on('secureConnect', () => s.write(Buffer.concat([hello({ secret: false }), shape({ sender: 1, receiver: 0, threads: 1 }), forgedData()])));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {}); // a reset is a close too
    s.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

describe('mutual TLS against hostile peers that check nothing', () => {
  it('a hostile client is refused for each bad certificate before any byte of the cluster, told why, and logged; the cluster completes with nothing forged delivered', async () => {
    const ports = await freePorts(2);
    const hosts = hostfile(ports);
    dirs.push(hosts.dir);
    const go = join(hosts.dir, 'go');
    const ps = [0, 1].map((i) => runProcess(i, 2, 1, hosts.path, ['--tls-dir', keys, 'gated', go]));
    started.push(...ps);
    await Promise.all(ps.map((p, i) => p.line(new RegExp(`^ready ${i}$`))));
    for (const [what, id, reason] of hostile(1)) {
      const received = await visit(ports[0]!, id);
      // Only a REFUSE with the reason: no HELLO, nothing else.
      expect(received.length, what).toBeGreaterThanOrEqual(8);
      expect(received.readUInt32LE(0), what).toBe(MAGIC_REFUSE);
      const len = received.readUInt32LE(4);
      expect(received.length, what).toBe(8 + len);
      expect(received.subarray(8).toString('utf8'), what).toMatch(reason);
    }
    writeFileSync(go, '');
    for (const p of ps) {
      const { code } = await p.exited;
      expect(code, detail(p)).toBe(0);
      expect(p.stdout, detail(p)).toContain('result [500500]');
    }
    const p0 = ps[0]!;
    expect(p0.stderr.find((l) => /refused a connection from/.test(l)), detail(p0)).toMatch(/: TLS: certificate not signed by the cluster CA$/);
    expect(refusalsLogged(p0.stderr), detail(p0)).toBe(7);
  }, 120_000);

  it('weft keys revoke reaches a running cluster: a member\'s certificate that got HELLO is refused once revoked, before any byte of the cluster; the cluster completes', async () => {
    const dir = join(parent, 'live');
    makeKeys({ dir, processes: 2, days: 30 });
    const ports = await freePorts(2);
    const hosts = hostfile(ports);
    dirs.push(hosts.dir);
    const go = join(hosts.dir, 'go');
    const ps = [0, 1].map((i) => runProcess(i, 2, 1, hosts.path, ['--tls-dir', dir, 'gated', go]));
    started.push(...ps);
    await Promise.all(ps.map((p, i) => p.line(new RegExp(`^ready ${i}$`))));
    const one = { key: readFileSync(join(dir, 'process-1.key'), 'utf8'), cert: readFileSync(join(dir, 'process-1.crt'), 'utf8') };
    // Process 1's own key, a second time: a member, told the slot is taken after the handshake.
    const before = await visit(ports[0]!, one);
    expect(before.readUInt32LE(0)).toBe(MAGIC_HELLO);
    revoke(dir, 1);
    const after = await visit(ports[0]!, one);
    expect(after.readUInt32LE(0)).toBe(MAGIC_REFUSE);
    expect(after.subarray(8).toString('utf8')).toMatch(/^certificate revoked on /);
    writeFileSync(go, '');
    for (const p of ps) {
      const { code } = await p.exited;
      expect(code, detail(p)).toBe(0);
      expect(p.stdout, detail(p)).toContain('result [500500]');
    }
  }, 120_000);

  it('a hostile server at process 0\'s address is refused by the dialling process for each bad certificate, which fails with the reason and sends it nothing', async () => {
    const cases = hostile(0).filter(([, id]) => id !== undefined);
    const results = await Promise.all(cases.map(async ([what, id, reason]) => {
      const received: Buffer[] = [];
      const server = createServer({ ...id!, requestCert: false }, (s: TLSSocket) => {
        s.on('data', (c: Buffer) => received.push(c));
        s.on('error', () => {});
      });
      server.on('tlsClientError', () => {});
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const [spare] = await freePorts(1);
      const hosts = hostfile([(server.address() as AddressInfo).port, spare!]);
      dirs.push(hosts.dir);
      const p1 = runProcess(1, 2, 1, hosts.path, ['--tls-dir', keys, 'idle']);
      started.push(p1);
      const { code } = await p1.exited;
      server.close();
      return { what, reason, code, p1, received: Buffer.concat(received) };
    }));
    for (const { what, reason, code, p1, received } of results) {
      expect(code, `${what}\n${detail(p1)}`).not.toBe(0);
      const line = p1.stderr.find((l) => /^ConnectError: process 1 cannot join process 0 at /.test(l)) ?? '';
      const why = /TLS: refused the listener: (.*)$/.exec(line)?.[1];
      expect(why ?? `no refusal in: ${detail(p1)}`, what).toMatch(reason);
      expect(received.length, what).toBe(0);
    }
  }, 180_000);
});
