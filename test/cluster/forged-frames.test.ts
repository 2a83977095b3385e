// A peer that holds the secret, and so passes the handshake, then sends
// frames weft never writes: a target or source no worker of its has, a
// slab descriptor (memory only threads of the sending process share), a
// length past the frame limit, a PART run another frame interrupts. The
// handshake is done by hand (stranger.ts), the frames too (docs/protocol.md).
// Each stops process 0 with a PeerError saying how the peer broke the
// protocol, within seconds, instead of delivering anything or hanging.

import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { detail, freePorts, hostfile, killAll, runProcess, type Running } from './helpers.ts';
import { HELLO_BYTES, PROOF_BYTES, Stranger, diallerProof, hello } from './stranger.ts';

const SECRET = 'forged frames secret';
const started: Running[] = [];
const dirs: string[] = [];
afterEach(() => {
  killAll(started.splice(0));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A frame header (docs/protocol.md): the stranger is process 1 of 2, one thread each, so its worker is 1. */
function header(o: { length?: number; channel?: number; source?: number; target?: number; seq?: number; kind?: number; codec?: number; flags?: number; count?: number; total?: number }): Buffer {
  const b = Buffer.alloc(32);
  const length = o.length ?? 0;
  [length, o.channel ?? 0, o.source ?? 1, o.target ?? 0, o.seq ?? 0].forEach((v, k) => b.writeUInt32LE(v, 4 * k));
  b.writeUInt8(o.kind ?? 1, 20);
  b.writeUInt8(o.codec ?? 1, 21);
  b.writeUInt16LE(o.flags ?? 0, 22);
  b.writeUInt32LE(o.count ?? 1, 24);
  b.writeUInt32LE(o.total ?? length, 28);
  return b;
}

const PART = 2;
const LAST = 1;
const SLAB = 2;

describe('frames from a peer that passed the handshake', () => {
  it.each([
    ['a target no worker has', header({ target: 9, length: 8 }), /broke the protocol: frame target 9 is not a worker \(peers: 2\)/],
    ['a source of another process', header({ source: 0, length: 8 }), /broke the protocol: frame from worker 0 arrived on the connection of process 1/],
    ['a slab descriptor', header({ flags: SLAB, length: 16, total: 1 << 20 }), /broke the protocol: a DATA frame refers to a slab where there is none/],
    ['a length past the frame limit', header({ length: 0xffffff00 }), /broke the protocol: frame length 4294967040 exceeds the limit of \d+ bytes/],
    ['a PART run interrupted by a DATA frame', Buffer.concat([header({ kind: PART, length: 8, total: 16 }), Buffer.alloc(8), header({ seq: 1, length: 8 }), Buffer.alloc(8)]), /broke the protocol: DATA frame from worker 1 interrupts a PART run/],
    ['a PART run that ends short', Buffer.concat([header({ kind: PART, flags: LAST, length: 8, total: 16 }), Buffer.alloc(8)]), /PART run from worker 1 ended at 8 of 16 bytes/],
  ])('%s stops process 0 with the reason, and nothing hangs', async (_, frames, reason) => {
    const ports = await freePorts(2);
    const hosts = hostfile(ports);
    dirs.push(hosts.dir);
    const p0 = runProcess(0, 2, 1, hosts.path, ['hang'], { WEFT_SECRET: SECRET });
    started.push(p0);
    const peer = await Stranger.connect(ports[0]!);
    const theirs = await peer.take(HELLO_BYTES);
    const ours = hello();
    peer.write(ours);
    peer.write(diallerProof({ secret: SECRET, ours, theirs, dialler: 1, listener: 0, threads: 1 }));
    // Process 0's proof: the handshake is done, and process 0 takes us for process 1.
    await peer.take(PROOF_BYTES);
    peer.write(frames);
    const { code } = await p0.exited;
    peer.close();
    expect(code, detail(p0)).not.toBe(0);
    expect(p0.stderr.join('\n'), detail(p0)).toMatch(reason);
  });
});
