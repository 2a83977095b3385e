// A stranger's side of the cluster's handshake, for the hostile and attack
// tests: the handshake messages built by hand (so these files also show
// their layout, docs/protocol.md), and a connection to read exactly n bytes
// from, write to, and watch close.

import { createHmac, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export const MAGIC_HELLO = 0x54464557;
export const MAGIC_PROOF = 0x46504657;
export const MAGIC_SHAPE = 0x44494657;
export const MAGIC_REFUSE = 0x4f4e4657;
export const HELLO_BYTES = 40;
export const PROOF_BYTES = 36;
const RING_BYTES = 1 << 20; // the default

/** HELLO: magic, u16 version, u16 flags (bit 0: a secret), 32-byte nonce. */
export function hello(o: { magic?: number; version?: number; secret?: boolean; nonce?: Buffer } = {}): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  b.writeUInt32LE(o.magic ?? MAGIC_HELLO, 0);
  b.writeUInt16LE(o.version ?? 2, 4);
  b.writeUInt16LE(o.secret === false ? 0 : 1, 6);
  (o.nonce ?? randomBytes(32)).copy(b, 8);
  return b;
}

/** The nonce a HELLO carries. */
export const nonceOf = (hello: Buffer): Buffer => hello.subarray(8, HELLO_BYTES);

/** A HELLO of protocol version 1 (process 1 of 2, with a secret; index, shape and a 16-byte nonce in clear). */
export function helloV1(threads: number): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  b.writeUInt32LE(MAGIC_HELLO, 0);
  b.writeUInt16LE(1, 4);
  b.writeUInt16LE(1, 6);
  [1, 2, threads, RING_BYTES].forEach((v, k) => b.writeUInt32LE(v, 8 + 4 * k));
  return b;
}

/**
 * A dialler's PROOF: HMAC-SHA256(secret, "weft handshake 2" ‖ u8 1 (the
 * dialler proves) ‖ u32 dialler, listener, processes, threads, ringBytes ‖
 * dialler's nonce ‖ listener's nonce), `ours` and `theirs` being the HELLOs.
 */
export function diallerProof(o: { secret: string; ours: Buffer; theirs: Buffer; dialler: number; listener: number; processes?: number; threads: number }): Buffer {
  const fields = Buffer.alloc(21);
  fields.writeUInt8(1, 0);
  [o.dialler, o.listener, o.processes ?? 2, o.threads, RING_BYTES].forEach((v, k) => fields.writeUInt32LE(v, 1 + 4 * k));
  return proofMessage(createHmac('sha256', o.secret).update('weft handshake 2').update(fields).update(nonceOf(o.ours)).update(nonceOf(o.theirs)).digest());
}

/** A PROOF message around 32 bytes. */
export function proofMessage(mac: Buffer): Buffer {
  const b = Buffer.alloc(PROOF_BYTES);
  b.writeUInt32LE(MAGIC_PROOF, 0);
  mac.copy(b, 4, 0, 32);
  return b;
}

/** SHAPE (no secret): sender, receiver, processes, threads, ringBytes. */
export function shape(o: { sender: number; receiver: number; processes?: number; threads: number; ringBytes?: number }): Buffer {
  const b = Buffer.alloc(24);
  [MAGIC_SHAPE, o.sender, o.receiver, o.processes ?? 2, o.threads, o.ringBytes ?? RING_BYTES].forEach((v, k) => b.writeUInt32LE(v, 4 * k));
  return b;
}

/** The connection closed before what was awaited, with no REFUSE. */
export class Dropped extends Error {}

export class Stranger {
  private buffered = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  /** Every byte received, in order. */
  readonly received: Buffer[] = [];
  readonly closed: Promise<void>;
  #ended = false;

  /** Whether the connection has closed. */
  get ended(): boolean {
    return this.#ended;
  }

  constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.received.push(c);
      this.buffered = Buffer.concat([this.buffered, c]);
      this.wake?.();
    });
    socket.on('error', () => {}); // a reset is a close too
    this.closed = new Promise((resolve) => socket.on('close', () => {
      this.#ended = true;
      this.wake?.();
      resolve();
    }));
  }

  /**
   * Connects to 127.0.0.1:port, retrying while nothing listens there yet
   * (the process is starting), for at most `withinMs`.
   */
  static async connect(port: number, withinMs = 30_000): Promise<Stranger> {
    const until = Date.now() + withinMs;
    for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect({ host: '127.0.0.1', port }, () => {
            s.off('error', reject);
            resolve(s);
          });
          s.once('error', reject);
        });
        return new Stranger(socket);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || Date.now() > until) throw e;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** The next n bytes; rejects if the connection closes first (Dropped if without a refusal). */
  async take(n: number): Promise<Buffer> {
    while (this.buffered.length < n) {
      if (this.ended) {
        const refusal = this.refusal();
        const message = `closed after ${this.buffered.length} of ${n} bytes: ${refusal ?? 'no refusal'}`;
        throw refusal === undefined ? new Dropped(message) : new Error(message);
      }
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** All bytes received so far. */
  all(): Buffer {
    return Buffer.concat(this.received);
  }

  /** The reason of the REFUSE the process sent, if any. */
  refusal(): string | undefined {
    const all = this.all();
    for (let at = 0; at + 8 <= all.length; at++) {
      if (all.readUInt32LE(at) === MAGIC_REFUSE) return all.subarray(at + 8, at + 8 + all.readUInt32LE(at + 4)).toString('utf8');
    }
    return undefined;
  }

  /** Resolves with the refusal once the process closed the connection. */
  async refused(): Promise<string | undefined> {
    await this.closed;
    return this.refusal();
  }

  close(): void {
    this.socket.destroy();
  }
}
