// A link this process dialled reads into buffers the router gives (Node's
// `onread`, src/transport/reads.ts). These tests use real sockets: what Node
// delivers before the router takes the link must not be lost, and a large
// batch must land, whole and in order, in a chunk of the router's slab.

import { afterEach, describe, expect, it } from 'vitest';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Router } from '../../src/transport/router.ts';
import { SocketReads } from '../../src/transport/reads.ts';
import { Doorbell, DOORBELL_BYTES } from '../../src/transport/doorbell.ts';
import { createRingBuffer, maxPayload, RingReader, RingWriter } from '../../src/transport/ring.ts';
import { createSlab, SlabReader, SlabWriter } from '../../src/transport/slab.ts';
import { Inbox } from '../../src/transport/inbox.ts';
import { Flags, HEADER_BYTES, Kind, writeHeader, type FrameHeader } from '../../src/transport/frame.ts';
import { LinkCounters, linkCountersBuffer } from '../../src/transport/link-counters.ts';
import type { PeerError } from '../../src/errors.ts';

const RING_BYTES = 256 << 10;
const MAX_FRAME = maxPayload(RING_BYTES);
const MAX_BATCH = 4 << 20;

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

/** One batch from worker 0 to worker 1 as a sender cuts it: a DATA frame, or PART frames of at most MAX_FRAME. */
function frames(seq: number, channel: number, payload: Uint8Array): { bytes: Buffer; frames: number } {
  const base = { channel, source: 0, target: 1, codec: 0, count: 1, total: payload.length };
  const parts: { h: FrameHeader; p: Uint8Array }[] = [];
  if (payload.length <= MAX_FRAME) parts.push({ h: { ...base, seq, length: payload.length, kind: Kind.DATA, flags: 0 }, p: payload });
  else {
    for (let at = 0; at < payload.length; at += MAX_FRAME) {
      const p = payload.subarray(at, Math.min(at + MAX_FRAME, payload.length));
      parts.push({ h: { ...base, seq: seq + parts.length, length: p.length, kind: Kind.PART, flags: at + p.length === payload.length ? Flags.LAST : 0 }, p });
    }
  }
  const out = Buffer.alloc(parts.reduce((n, x) => n + HEADER_BYTES + x.p.length, 0));
  let at = 0;
  for (const { h, p } of parts) {
    writeHeader(new DataView(out.buffer, out.byteOffset), at, h);
    out.set(p, at + HEADER_BYTES);
    at += HEADER_BYTES + p.length;
  }
  return { bytes: out, frames: parts.length };
}

function pattern(length: number, seed: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = (i * 7 + seed) & 255;
  return b;
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A peer (process 0) listening; we (process 1) dial it with `onread`, as dial.ts does. */
async function dialled(): Promise<{ peer: Socket; socket: Socket; reads: SocketReads }> {
  let peer: Socket | undefined;
  const server: Server = createServer((s) => (peer = s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const reads = new SocketReads();
  const socket = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, onread: reads.onread });
  reads.socket = socket;
  cleanup.push(() => {
    socket.destroy();
    peer?.destroy();
    server.close();
  });
  await until('connected', () => peer !== undefined && !socket.connecting);
  return { peer: peer!, socket, reads };
}

describe('a link we dialled, read into the router\'s buffers', () => {
  it('bytes Node read before the router took the link wait in the stream and reach the worker first; a large batch after them lands in a slab chunk, whole and in order', async () => {
    const { peer, socket, reads } = await dialled();
    const early = [pattern(3000, 1), pattern(MAX_FRAME + 7, 2)];
    let seq = 0;
    const first = early.map((p, k) => {
      const f = frames(seq, k, p);
      seq += f.frames;
      return f.bytes;
    });
    peer.write(Buffer.concat(first));
    // Nobody listens yet: the bytes wait in the stream, as they would without onread.
    await until('the early bytes are held by the stream', () => socket.readableLength === first.reduce((n, b) => n + b.length, 0));

    const bell = new Doorbell(new SharedArrayBuffer(DOORBELL_BYTES));
    const down = createRingBuffer(RING_BYTES);
    const slabBuffer = createSlab(64 << 20)!;
    const losses: PeerError[] = [];
    const router = new Router({
      process: 1, processes: 2, threads: 1, addresses: ['a:1', 'b:2'],
      links: [{ socket, rest: Buffer.alloc(0), reads }, undefined],
      bell,
      fromWorkers: [new RingReader(createRingBuffer(RING_BYTES), bell)],
      toWorkers: [new RingWriter(down, bell)],
      slab: new SlabWriter(slabBuffer, 1 << 20),
      limits: { peers: 2, maxFrame: MAX_FRAME, maxBatch: MAX_BATCH },
      heartbeatTimeoutMs: 600_000,
      onFailure: (e) => losses.push(e),
      onLoss: (e) => losses.push(e),
      counters: new LinkCounters(linkCountersBuffer(2)),
    });
    cleanup.push(() => router.abort('test over'));
    const inbox = new Inbox(new RingReader(down, bell), 1, 2, MAX_BATCH, new SlabReader(slabBuffer, bell));
    const got: { channel: number; bytes: Uint8Array; inSlab: boolean }[] = [];
    const receive = (): void => {
      inbox.drain({
        batch: (_source, channel, _codec, _count, payload) => {
          got.push({ channel, bytes: payload.slice(), inSlab: payload.buffer === slabBuffer });
          return false;
        },
        close: () => {},
        finish: () => {},
        accepts: () => true,
      });
    };
    const late = pattern(3 * MAX_FRAME + 11, 3);
    peer.write(frames(seq, 2, late).bytes);
    await until('all three batches arrived', () => {
      receive();
      return got.length === 3 || losses.length > 0;
    });
    expect(losses).toEqual([]);
    expect(got.map((b) => [b.channel, b.inSlab])).toEqual([[0, false], [1, true], [2, true]]);
    expect([...early, late].map((want, k) => Buffer.from(got[k]!.bytes).equals(want))).toEqual([true, true, true]);
  });
});
