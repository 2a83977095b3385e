// The handshake's messages (see handshake.ts for the exchange and
// docs/protocol.md for the layout): their magic numbers and sizes, and how
// each is built.

import { createHmac } from 'node:crypto';

export const MAGIC_HELLO = 0x54464557; // 'WEFT' little-endian
export const MAGIC_PROOF = 0x46504657; // 'WFPF'
export const MAGIC_SHAPE = 0x44494657; // 'WFID'
export const MAGIC_REFUSE = 0x4f4e4657; // 'WFNO'
export const PROTOCOL_VERSION = 2;
export const HELLO_BYTES = 40;
export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
export const SHAPE_BYTES = 24;
export const MAX_REASON = 1024;
/** How long a refused peer has to read the REFUSE before its socket is destroyed. */
export const REFUSAL_GRACE_MS = 1_000;
/** Separates weft's proofs from any other use of the same secret. */
const DOMAIN = Buffer.from('weft handshake 2', 'ascii');
export const DIALLER = 1;
export const LISTENER = 2;

/** This process, as the handshake presents and compares it. */
export interface Identity {
  process: number;
  processes: number;
  threads: number;
  ringBytes: number;
  secret: string | undefined;
}

/** A REFUSE message with `reason`. */
export function refusal(reason: string): Buffer {
  const r = Buffer.from(reason.slice(0, MAX_REASON), 'utf8');
  const head = Buffer.alloc(8);
  head.writeUInt32LE(MAGIC_REFUSE, 0);
  head.writeUInt32LE(r.length, 4);
  return Buffer.concat([head, r]);
}

export function hello(me: Identity, nonce: Buffer): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  b.writeUInt32LE(MAGIC_HELLO, 0);
  b.writeUInt16LE(PROTOCOL_VERSION, 4);
  b.writeUInt16LE(me.secret !== undefined ? 1 : 0, 6);
  nonce.copy(b, 8);
  return b;
}

/** The proof `direction` sends: bound to both nonces, both indices, the cluster shape and the direction. */
export function mac(secret: string, direction: number, dNonce: Buffer, lNonce: Buffer, dialler: number, listener: number, me: Identity): Buffer {
  const fields = Buffer.alloc(1 + 5 * 4);
  fields.writeUInt8(direction, 0);
  [dialler, listener, me.processes, me.threads, me.ringBytes].forEach((v, k) => fields.writeUInt32LE(v, 1 + 4 * k));
  return createHmac('sha256', secret).update(DOMAIN).update(fields).update(dNonce).update(lNonce).digest();
}

export function message(magic: number, body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32LE(magic, 0);
  return Buffer.concat([head, body]);
}

export function shape(sender: number, receiver: number, me: Identity): Buffer {
  const b = Buffer.alloc(SHAPE_BYTES);
  [MAGIC_SHAPE, sender, receiver, me.processes, me.threads, me.ringBytes].forEach((v, k) => b.writeUInt32LE(v, 4 * k));
  return b;
}
