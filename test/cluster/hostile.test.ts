// Hostile input: strangers connect to a running 2-process cluster, with a
// secret and without, and send what a confused or malicious peer would.
// Each connection is refused (counted in the refusal log, then closed by the
// cluster), and the cluster goes on to finish its work correctly. The
// handshake's bytes are built by hand (stranger.ts, docs/protocol.md).

import { afterEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, hostfile, killAll, refusalsLogged, runProcess, type Running } from './helpers.ts';
import { diallerProof, hello, helloV1, shape } from './stranger.ts';

const SECRET = 'hostile test secret';
const THREADS = 2;
const RING_BYTES = 1 << 20; // the default
const MAGIC_REFUSE = 0x4f4e4657;

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
  it('with a secret: refuses and logs garbage, wrong magic, wrong version, a v1 peer, wrong secret, proofs for another shape or process, duplicate index, oversized lengths, silence; the cluster completes correctly', async () => {
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

    const dialler = (o: { secret?: string; dialler: number; listener: number; processes?: number }) => {
      const ours = hello();
      return [ours, (theirs: Buffer) => diallerProof({ secret: SECRET, ours, theirs, threads: THREADS, ...o })] as const;
    };
    const visits = await Promise.all([
      visit(p0, Buffer.from('GET / HTTP/1.1\r\nHost: weft\r\n\r\n')),
      visit(p0, randomBytes(4096)),
      visit(p0, hello({ magic: 0xdeadbeef })),
      visit(p0, hello({ version: 99 })),
      visit(p0, helloV1(THREADS)),
      visit(p0, hello({ secret: false })),
      visit(p0, ...dialler({ secret: 'not the secret', dialler: 1, listener: 0 })),
      visit(p0, ...dialler({ dialler: 1, listener: 0, processes: 3 })), // the secret, another cluster shape
      visit(p0, ...dialler({ dialler: 1, listener: 1 })), // the secret, meant for another process
      visit(p0, ...dialler({ dialler: 1, listener: 0 })), // the secret, an index already connected
      visit(p1, ...dialler({ dialler: 0, listener: 1 })), // a lower index dials in only in a lost process's place, and 0 is connected
      visit(p0, ...dialler({ dialler: 7, listener: 0 })),
      visit(p0, oversizedFrame),
      visit(p0, oversizedRefusal),
      visit(p1, Buffer.alloc(0)), // says nothing: the handshake times out
    ]);
    const reasons = visits.map((v) => v.refusal);
    expect(reasons).toEqual([
      expect.stringMatching(/^bad magic 0x20544547: not a weft peer$/),
      expect.stringMatching(/^bad magic /),
      'bad magic 0xdeadbeef: not a weft peer',
      'protocol version 99, expected 2',
      'protocol version 1, expected 2',
      'this cluster requires a shared secret',
      'wrong secret',
      'wrong secret',
      'wrong secret',
      'process 1 is still connected: a second process cannot take its index', // only a holder of the secret learns this
      'process 0 is still connected: a second process cannot take its index',
      'wrong secret',
      'bad magic 0xffffffff: not a weft peer',
      undefined, // a refusal to us is not answered
      undefined, // silence is not answered, only closed
    ]);
    // Before proving the secret a stranger gets the HELLO (magic, version,
    // flag, nonce: nothing about the cluster) and a refusal, nothing signed.
    for (const v of visits) {
      expect(v.received.length).toBeLessThanOrEqual(40 + 8 + Buffer.byteLength(v.refusal ?? ''));
      if (v.received.length >= 40) expect(v.received.subarray(0, 8)).toEqual(hello().subarray(0, 8));
    }

    // Now let the cluster work: worker 0 sends 1..1000 to every worker.
    writeFileSync(go, '');
    const exits = await Promise.all(ps.map((p) => p.exited));
    for (const [i, p] of ps.entries()) {
      const detail = `stdout:\n${p.stdout.join('\n')}\nstderr:\n${p.stderr.join('\n')}`;
      expect(exits[i]!.code, detail).toBe(0);
      expect(p.stdout, detail).toContain(`result ${JSON.stringify([500500, 500500])}`);
    }
    // Refusals are logged one at once, then as one summary line with a count.
    for (const [i, count] of [[0, 13], [1, 2]] as const) {
      const detail = ps[i]!.stderr.join('\n');
      expect(refusalsLogged(ps[i]!.stderr), detail).toBe(count);
      // At most two lines per 10 s interval (a loaded machine may stretch the visits over two).
      expect(ps[i]!.stderr.filter((l) => /refused/.test(l)).length, detail).toBeLessThanOrEqual(Math.min(count, 4));
    }
  });

  it('without a secret: refuses each mismatch of the cluster shape with its reason; the cluster completes correctly', async () => {
    const ports = await freePorts(2);
    const hosts = hostfile(ports);
    dirs.push(hosts.dir);
    const go = join(hosts.dir, 'go');
    const ps = [0, 1].map((i) => runProcess(i, 2, THREADS, hosts.path, ['gated', go], { WEFT_SECRET: '' }));
    started.push(...ps);
    await Promise.all(ps.map((p, i) => p.line(new RegExp(`^ready ${i}$`))));
    const [p0, p1] = ports as [number, number];
    const plain = (o: Omit<Parameters<typeof shape>[0], 'threads'> & { threads?: number }) => Buffer.concat([hello({ secret: false }), shape({ threads: THREADS, ...o })]);
    const visits = await Promise.all([
      visit(p0, plain({ sender: 1, receiver: 0, processes: 3 })),
      visit(p0, plain({ sender: 1, receiver: 0, threads: 3 })),
      visit(p0, plain({ sender: 1, receiver: 0, ringBytes: 2 * RING_BYTES })),
      visit(p0, plain({ sender: 1, receiver: 1 })),
      visit(p1, plain({ sender: 0, receiver: 1 })),
      visit(p0, plain({ sender: 7, receiver: 0 })),
      visit(p0, plain({ sender: 1, receiver: 0 })),
      visit(p0, hello({ secret: true })),
    ]);
    expect(visits.map((v) => v.refusal)).toEqual([
      'cluster of 3 processes, expected 2',
      '3 threads per process, expected 2',
      `ringBytes ${2 * RING_BYTES}, expected ${RING_BYTES}`,
      'the peer dialled process 1, this is process 0',
      'process 0 is still connected: a second process cannot take its index',
      'process index 7 is invalid here',
      'process 1 is still connected: a second process cannot take its index',
      'the peer uses a secret, this process has none',
    ]);
    writeFileSync(go, '');
    for (const p of ps) {
      const { code } = await p.exited;
      expect(code, p.stderr.join('\n')).toBe(0);
      expect(p.stdout).toContain(`result ${JSON.stringify([500500, 500500])}`);
    }
  });
});
