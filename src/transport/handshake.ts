// The handshake that opens every TCP connection between weft processes.
// Both sides speak at once, so it costs one round trip (two with a secret):
//
//   HELLO   'WEFT' u32 magic, u16 version, u16 flags (bit 0: secret in use),
//           u32 process, u32 processes, u32 threads, u32 ringBytes, 16-byte nonce
//   PROOF   'WFPF' u32 magic, 32-byte HMAC-SHA256(secret, peer's nonce ++ own process)
//           (only when a secret is in use: binds the proof to this connection
//           and this sender, so it cannot be replayed or reflected)
//   REFUSE  'WFNO' u32 magic, u32 length, UTF-8 reason; then the socket ends
//
// Any mismatch is refused with a reason, sent to the peer and raised here.
// docs/protocol.md has the byte layout.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { ProtocolError } from '../errors.ts';

export const MAGIC_HELLO = 0x54464557; // 'WEFT' little-endian
export const MAGIC_PROOF = 0x46504657; // 'WFPF'
export const MAGIC_REFUSE = 0x4f4e4657; // 'WFNO'
export const PROTOCOL_VERSION = 1;
export const HELLO_BYTES = 40;
const PROOF_BYTES = 36;
const MAX_REASON = 1024;
/** Bytes a peer may send ahead of the handshake's end (its first frames). */
const MAX_READ_AHEAD = 1 << 20;

export interface Identity {
  process: number;
  processes: number;
  threads: number;
  ringBytes: number;
  secret: string | undefined;
}

export interface Handshaken {
  /** The peer's process index. */
  process: number;
  /** Bytes that followed the handshake in the same read: the first frames. */
  rest: Buffer;
}

/** Raised on our side when we or the peer refused the connection. */
export class HandshakeError extends ProtocolError {
  override name = 'HandshakeError';
}

function hello(me: Identity, nonce: Buffer): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  b.writeUInt32LE(MAGIC_HELLO, 0);
  b.writeUInt16LE(PROTOCOL_VERSION, 4);
  b.writeUInt16LE(me.secret !== undefined ? 1 : 0, 6);
  b.writeUInt32LE(me.process, 8);
  b.writeUInt32LE(me.processes, 12);
  b.writeUInt32LE(me.threads, 16);
  b.writeUInt32LE(me.ringBytes, 20);
  nonce.copy(b, 24);
  return b;
}

function proof(secret: string, peerNonce: Buffer, process: number): Buffer {
  const idx = Buffer.alloc(4);
  idx.writeUInt32LE(process);
  return createHmac('sha256', secret).update(peerNonce).update(idx).digest();
}

/** Reads exactly what the handshake needs from a socket, with a deadline. */
class Reader {
  private buffered: Buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private ended: Error | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    // A handshake is a few dozen bytes, and a peer may send its first frames
    // right after it; a stranger that floods before we answered is not
    // buffered without bound.
    if (this.buffered.length > MAX_READ_AHEAD) {
      this.ended ??= new HandshakeError(`the peer sent ${this.buffered.length} bytes before the handshake completed`);
      this.socket.pause();
    }
    this.wake?.();
  };
  private readonly onEnd = (): void => {
    this.ended ??= new HandshakeError('the peer closed the connection during the handshake');
    this.wake?.();
  };
  private readonly onError = (e: Error): void => {
    this.ended ??= new HandshakeError(`socket error during the handshake: ${e.message}`, { cause: e });
    this.wake?.();
  };

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  async take(n: number): Promise<Buffer> {
    while (this.buffered.length < n) {
      if (this.ended) throw this.ended;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** Stops reading (later bytes wait in the socket for the next owner) and returns what was read ahead. */
  detach(): Buffer {
    this.socket.pause();
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    return this.buffered;
  }
}

/**
 * Runs the handshake on a connected socket. `expect` is the process index
 * the connecting side dialled; a listener passes the set of indices it may
 * still accept. Resolves with the peer's index, or rejects after refusing.
 */
export async function handshake(socket: Socket, me: Identity, expect: (peer: number) => string | undefined, timeoutMs: number): Promise<Handshaken> {
  const reader = new Reader(socket);
  const nonce = randomBytes(16);
  socket.write(hello(me, nonce));
  const refuse = (reason: string): never => {
    const r = Buffer.from(reason.slice(0, MAX_REASON), 'utf8');
    const head = Buffer.alloc(8);
    head.writeUInt32LE(MAGIC_REFUSE, 0);
    head.writeUInt32LE(r.length, 4);
    socket.end(Buffer.concat([head, r]));
    throw new HandshakeError(`refused ${socket.remoteAddress}:${socket.remotePort}: ${reason}`);
  };
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HandshakeError(`no handshake from ${socket.remoteAddress}:${socket.remotePort} within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const peer = await Promise.race([exchange(reader, me, nonce, socket, refuse, expect), deadline]);
    return { process: peer, rest: reader.detach() };
  } catch (error) {
    reader.detach();
    socket.destroy();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

async function readRefusal(reader: Reader): Promise<never> {
  const len = (await reader.take(4)).readUInt32LE(0);
  if (len > MAX_REASON) throw new HandshakeError('the peer refused the connection');
  const reason = (await reader.take(len)).toString('utf8');
  throw new HandshakeError(`the peer refused the connection: ${reason}`);
}

async function exchange(
  reader: Reader,
  me: Identity,
  nonce: Buffer,
  socket: Socket,
  refuse: (reason: string) => never,
  expect: (peer: number) => string | undefined,
): Promise<number> {
  const magic = (await reader.take(4)).readUInt32LE(0);
  if (magic === MAGIC_REFUSE) return readRefusal(reader);
  if (magic !== MAGIC_HELLO) return refuse(`bad magic 0x${magic.toString(16).padStart(8, '0')}: not a weft peer`);
  const h = await reader.take(HELLO_BYTES - 4);
  const version = h.readUInt16LE(0);
  const flags = h.readUInt16LE(2);
  const peer = h.readUInt32LE(4);
  const processes = h.readUInt32LE(8);
  const threads = h.readUInt32LE(12);
  const ringBytes = h.readUInt32LE(16);
  const peerNonce = Buffer.from(h.subarray(20, 36));
  if (version !== PROTOCOL_VERSION) refuse(`protocol version ${version}, expected ${PROTOCOL_VERSION}`);
  if (processes !== me.processes) refuse(`cluster of ${processes} processes, expected ${me.processes}`);
  if (threads !== me.threads) refuse(`${threads} threads per process, expected ${me.threads}`);
  if (ringBytes !== me.ringBytes) refuse(`ringBytes ${ringBytes}, expected ${me.ringBytes}`);
  if ((flags & 1) !== (me.secret !== undefined ? 1 : 0)) {
    refuse(me.secret !== undefined ? 'this cluster requires a shared secret' : 'the peer uses a secret, this process has none');
  }
  if (peer >= me.processes || peer === me.process) refuse(`process index ${peer} is invalid here`);
  // Authenticate before judging the claimed index against the mesh: a peer
  // without the secret learns nothing of which processes are connected, and
  // every wrong secret is refused as such, whatever index it claimed.
  if (me.secret !== undefined) await prove(reader, me, nonce, peerNonce, peer, socket, refuse);
  const why = expect(peer);
  if (why !== undefined) refuse(why);
  return peer;
}

async function prove(reader: Reader, me: Identity, nonce: Buffer, peerNonce: Buffer, peer: number, socket: Socket, refuse: (reason: string) => never): Promise<void> {
  if (me.secret === undefined) return;
  const mine = proof(me.secret, peerNonce, me.process);
  const p = Buffer.alloc(PROOF_BYTES);
  p.writeUInt32LE(MAGIC_PROOF, 0);
  mine.copy(p, 4);
  socket.write(p);
  const pm = (await reader.take(4)).readUInt32LE(0);
  if (pm === MAGIC_REFUSE) return readRefusal(reader);
  if (pm !== MAGIC_PROOF) refuse('expected a secret proof');
  const theirs = await reader.take(32);
  if (!timingSafeEqual(theirs, proof(me.secret, nonce, peer))) refuse('wrong secret');
}
