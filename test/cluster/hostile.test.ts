// Hostile input: strangers connect to a running 2-process cluster that uses
// a secret and send what a confused or malicious peer would. Each connection
// is refused (logged, then closed by the cluster), and the cluster goes on to
// finish its work correctly. Bytes are built by hand here, so this file also
// shows the handshake's layout (docs/cluster.md).

import { afterEach, describe, expect, it } from 'vitest';
import { createHmac, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, hostfile, killAll, runProcess, type Running } from './helpers.ts';

const SECRET = 'hostile test secret';
const THREADS = 2;
const RING_BYTES = 1 << 20; // the default
const MAGIC_HELLO = 0x54464557;
const MAGIC_PROOF = 0x46504657;
const MAGIC_REFUSE = 0x4f4e4657;

function hello(o: { magic?: number; version?: number; process: number; processes?: number; secret?: boolean }): Buffer {
  const b = Buffer.alloc(40);
  b.writeUInt32LE(o.magic ?? MAGIC_HELLO, 0);
  b.writeUInt16LE(o.version ?? 1, 4);
  b.writeUInt16LE(o.secret === false ? 0 : 1, 6);
  b.writeUInt32LE(o.process, 8);
  b.writeUInt32LE(o.processes ?? 2, 12);
  b.writeUInt32LE(THREADS, 16);
  b.writeUInt32LE(RING_BYTES, 20);
  randomBytes(16).copy(b, 24);
  return b;
}

function proof(secret: string, theirHello: Buffer, process: number): Buffer {
  const idx = Buffer.alloc(4);
  idx.writeUInt32LE(process);
  const b = Buffer.alloc(36);
  b.writeUInt32LE(MAGIC_PROOF, 0);
  createHmac('sha256', secret).update(theirHello.subarray(24, 40)).update(idx).digest().copy(b, 4);
  return b;
}

interface Visit {
  /** Everything the cluster sent before closing. */
  received: Buffer;
  /** The reason in the cluster's REFUSE message, if it sent one. */
  refusal: string | undefined;
}

/**
 * Connects to `port`, sends `first`, then (if given) `then(helloFromCluster)`
 * once the cluster's 40-byte HELLO is in; resolves when the cluster closed
 * the connection.
 */
function visit(port: number, first: Buffer, then?: (theirs: Buffer) => Buffer): Promise<Visit> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let sent = false;
    const s = connect({ host: '127.0.0.1', port }, () => s.write(first));
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      const all = Buffer.concat(chunks);
      if (then && !sent && all.length >= 40) {
        sent = true;
        s.write(then(all.subarray(0, 40)));
      }
    });
    s.on('error', () => {}); // a reset is a close too
    s.on('close', () => {
      const received = Buffer.concat(chunks);
      let refusal: string | undefined;
      for (let at = 0; at + 8 <= received.length; at++) {
        if (received.readUInt32LE(at) === MAGIC_REFUSE) {
          refusal = received.subarray(at + 8, at + 8 + received.readUInt32LE(at + 4)).toString('utf8');
          break;
        }
      }
      resolve({ received, refusal });
    });
  });
}

const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('hostile connections to a running cluster', () => {
  it('refuses and logs garbage, wrong magic, wrong version, wrong secret, duplicate index, oversized lengths, silence; the cluster completes correctly', async () => {
    const ports = await freePorts(2);
    const hosts = hostfile(ports);
    dirs.push(hosts.dir);
    const go = join(hosts.dir, 'go');
    const ps = [0, 1].map((i) => runProcess(i, 2, THREADS, hosts.path, ['gated', go], { WEFT_SECRET: SECRET }));
    started.push(...ps);
    await Promise.all(ps.map((p, i) => p.line(new RegExp(`^ready ${i}$`))));
    const [p0, p1] = ports as [number, number];

    const oversizedFrame = Buffer.alloc(32);
    oversizedFrame.writeUInt32LE(0xffffffff, 0); // F_LENGTH: a 4 GiB payload
    oversizedFrame.writeUInt8(1, 20); // F_KIND: DATA
    const oversizedRefusal = Buffer.alloc(8);
    oversizedRefusal.writeUInt32LE(MAGIC_REFUSE, 0);
    oversizedRefusal.writeUInt32LE(0xffffffff, 4); // a 4 GiB reason

    const visits = await Promise.all([
      visit(p0, Buffer.from('GET / HTTP/1.1\r\nHost: weft\r\n\r\n')),
      visit(p0, randomBytes(4096)),
      visit(p0, hello({ magic: 0xdeadbeef, process: 1 })),
      visit(p0, hello({ version: 99, process: 1 })),
      visit(p0, hello({ process: 1, processes: 3 })),
      visit(p0, hello({ process: 1, secret: false })),
      visit(p0, hello({ process: 1 }), (theirs) => proof('not the secret', theirs, 1)),
      visit(p0, hello({ process: 1 }), (theirs) => proof(SECRET, theirs, 1)),
      visit(p1, hello({ process: 0 }), (theirs) => proof(SECRET, theirs, 0)),
      visit(p0, hello({ process: 7 })),
      visit(p0, oversizedFrame),
      visit(p0, oversizedRefusal),
      visit(p1, Buffer.alloc(0)), // says nothing: the handshake times out
    ]);
    const reasons = visits.map((v) => v.refusal);
    expect(reasons).toEqual([
      expect.stringMatching(/^bad magic 0x20544547: not a weft peer$/),
      expect.stringMatching(/^bad magic /),
      'bad magic 0xdeadbeef: not a weft peer',
      'protocol version 99, expected 1',
      'cluster of 3 processes, expected 2',
      'this cluster requires a shared secret',
      'wrong secret',
      'duplicate process index 1: it is already connected',
      'process 0 is dialled by 1, it must not dial in',
      'process index 7 is invalid here',
      'bad magic 0xffffffff: not a weft peer',
      undefined, // a refusal to us is not answered
      undefined, // silence is not answered, only closed
    ]);
    // Nothing past the cluster's HELLO (and PROOF) reached a stranger.
    for (const v of visits) expect(v.received.length).toBeLessThanOrEqual(40 + 36 + 8 + 200);

    // Now let the cluster work: worker 0 sends 1..1000 to every worker.
    writeFileSync(go, '');
    const exits = await Promise.all(ps.map((p) => p.exited));
    for (const [i, p] of ps.entries()) {
      const detail = `stdout:\n${p.stdout.join('\n')}\nstderr:\n${p.stderr.join('\n')}`;
      expect(exits[i]!.code, detail).toBe(0);
      expect(p.stdout, detail).toContain(`result ${JSON.stringify([500500, 500500])}`);
    }
    const log0 = ps[0]!.stderr.join('\n');
    const log1 = ps[1]!.stderr.join('\n');
    for (const r of reasons.slice(0, 8)) expect(log0).toContain(r);
    expect(log0).toContain('the peer refused the connection');
    expect(log1).toContain('process 0 is dialled by 1, it must not dial in');
    expect(log1).toMatch(/no handshake from .* within \d+ ms/);
    expect(ps[0]!.stderr.filter((l) => /refused a connection/.test(l)).length).toBe(11);
  });
});
