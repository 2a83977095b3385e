// The handshake that opens every TCP connection between weft processes
// (protocol version 2). Process i dials process j < i; the dialler is D,
// the listener L. Both open with HELLO at once (with TLS, once each has
// judged the other's certificate, tls.ts), then:
//
//   with a secret      D -> L  PROOF  HMAC(secret, "D" ‖ transcript)
//                      L checks it, and only then judges the dialler's index
//                      L -> D  PROOF  HMAC(secret, "L" ‖ transcript)
//   without a secret   D -> L  SHAPE  (i, j, processes, threads, ringBytes)
//                      L -> D  SHAPE  (j, i, processes, threads, ringBytes)
//
// where transcript = D's nonce ‖ L's nonce ‖ i ‖ j ‖ processes ‖ threads ‖
// ringBytes. HELLO carries only magic, version, a flag and a nonce: before
// the peer has proved the secret, nothing describing the cluster leaves.
// D's index travels only inside its proof (L tries each index that may
// dial it), so a stranger connecting to a listener learns nothing and gets
// nothing signed; a listener signs only after the dialler proved the
// secret. docs/protocol.md has the layout and why relaying, reflecting and
// replaying proofs fail.
//
//   HELLO   'WEFT' u32 magic, u16 version, u16 flags (bit 0: secret in use), 32-byte nonce
//   PROOF   'WFPF' u32 magic, 32-byte HMAC-SHA256
//   SHAPE   'WFID' u32 magic, u32 sender, u32 receiver, u32 processes, u32 threads, u32 ringBytes
//   REFUSE  'WFNO' u32 magic, u32 length, UTF-8 reason; then the socket ends

import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  DIALLER, HELLO_BYTES, LISTENER, MAC_BYTES, MAGIC_HELLO, MAGIC_PROOF, MAGIC_REFUSE, MAGIC_SHAPE, MAX_REASON, NONCE_BYTES,
  PROTOCOL_VERSION, REFUSAL_GRACE_MS, SHAPE_BYTES, hello, mac, message, refusal, shape, type Identity,
} from './handshake-messages.ts';
import { Reader } from './handshake-reader.ts';
import { certifiedProcess } from './tls.ts';
import { HandshakeError } from '../errors.ts';

/** Every wrong, relayed, reflected or replayed proof gets this one answer. */
const WRONG_SECRET = 'wrong secret';

/**
 * Our side of the connection: we dialled process `dialled`, or we listen
 * and `admit` judges a dialler's index once it proved the secret (a reason
 * to refuse it, or undefined).
 */
export type Role = { dialled: number } | { admit: (peer: number) => string | undefined };

export interface Handshaken {
  /** The peer's process index. */
  process: number;
  /** Bytes that followed the handshake in the same read: the first frames. */
  rest: Buffer;
}

/** One connection's handshake: what both sides sent and how to answer. */
interface Exchange {
  reader: Reader;
  me: Identity;
  write: (bytes: Buffer) => void;
  /** Refuses with `reason` (sent to the peer, then raised here; `final`: retrying cannot help). */
  refuse: (reason: string, final?: boolean) => never;
}

/**
 * Runs the handshake on a connected socket. Resolves with the peer's index,
 * or rejects with a HandshakeError (after refusing, when the peer spoke our
 * magic).
 */
export async function handshake(socket: Socket, me: Identity, role: Role, timeoutMs: number): Promise<Handshaken> {
  const reader = new Reader(socket);
  const nonce = randomBytes(NONCE_BYTES);
  let refused = false;
  const refuse = (reason: string, final = true): never => {
    refused = true;
    // Closed once the refusal is written, not at once: over TLS the bytes
    // pass through encryption first, and destroying the socket now would
    // drop them. A peer that does not read gets a second to.
    socket.end(refusal(reason), () => socket.destroy());
    setTimeout(() => socket.destroy(), REFUSAL_GRACE_MS).unref();
    throw new HandshakeError(`refused ${socket.remoteAddress}:${socket.remotePort}: ${reason}`, final);
  };
  // A certificate that names no other process of ours is refused before our
  // HELLO: only a peer that may be a member hears from us. (One below us
  // may dial in when it replaces a lost process: admit judges that.)
  const certified = 'admit' in role ? certifiedProcess(socket) : undefined;
  if (certified !== undefined && (certified === me.process || certified >= me.processes)) {
    reader.detach();
    refuse(`its certificate is for process ${certified}, which does not dial process ${me.process}`);
  }
  socket.write(hello(me, nonce));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HandshakeError(`no handshake from ${socket.remoteAddress}:${socket.remotePort} within ${timeoutMs} ms`, false)), timeoutMs);
    // The socket holds the process while it should; a background dial's must not.
    timer.unref();
  });
  try {
    const x: Exchange = { reader, me, refuse, write: (bytes) => void socket.write(bytes) };
    const peer = await Promise.race([exchange(x, nonce, role), deadline]);
    return { process: peer, rest: reader.detach() };
  } catch (error) {
    reader.detach();
    if (!refused) socket.destroy();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

async function readRefusal(reader: Reader): Promise<never> {
  const len = (await reader.take(4)).readUInt32LE(0);
  if (len > MAX_REASON) throw new HandshakeError('the peer refused the connection', true);
  const reason = (await reader.take(len)).toString('utf8');
  throw new HandshakeError(`the peer refused the connection: ${reason}`, true);
}

/** The next message's body, after checking its magic (a REFUSE is raised as the peer's answer). */
async function expectMessage(x: Exchange, magic: number, bytes: number, what: string): Promise<Buffer> {
  const m = (await x.reader.take(4)).readUInt32LE(0);
  if (m === MAGIC_REFUSE) return readRefusal(x.reader);
  if (m !== magic) return x.refuse(`expected ${what}`);
  return x.reader.take(bytes - 4);
}

async function exchange(x: Exchange, nonce: Buffer, role: Role): Promise<number> {
  const { reader, me, refuse } = x;
  const magic = (await reader.take(4)).readUInt32LE(0);
  if (magic === MAGIC_REFUSE) return readRefusal(reader);
  if (magic !== MAGIC_HELLO) return refuse(`bad magic 0x${magic.toString(16).padStart(8, '0')}: not a weft peer`);
  // The version first, alone: a peer of another version may lay out the rest differently.
  const version = (await reader.take(2)).readUInt16LE(0);
  if (version !== PROTOCOL_VERSION) refuse(`protocol version ${version}, expected ${PROTOCOL_VERSION}`);
  const rest = await reader.take(HELLO_BYTES - 6);
  const flags = rest.readUInt16LE(0);
  const peerNonce = Buffer.from(rest.subarray(2, 2 + NONCE_BYTES));
  if ((flags & 1) !== (me.secret !== undefined ? 1 : 0)) {
    refuse(me.secret !== undefined ? 'this cluster requires a shared secret' : 'the peer uses a secret, this process has none');
  }
  if (me.secret === undefined) return compareShapes(x, role);
  return 'dialled' in role
    ? proveAsDialler(x, me.secret, nonce, peerNonce, role.dialled)
    : proveAsListener(x, me.secret, peerNonce, nonce, role.admit);
}

/**
 * The dialler proves first: it is the side a stranger cannot reach unasked
 * (it talks only to the address it was configured to dial), and its proof
 * holds its own fresh nonce and the index it dialled, so it is valid only
 * on this connection, and only to the process at that index.
 */
async function proveAsDialler(x: Exchange, secret: string, dNonce: Buffer, lNonce: Buffer, j: number): Promise<number> {
  const i = x.me.process;
  x.write(message(MAGIC_PROOF, mac(secret, DIALLER, dNonce, lNonce, i, j, x.me)));
  const theirs = await expectMessage(x, MAGIC_PROOF, 4 + MAC_BYTES, 'a secret proof');
  // The listener checked our proof first, so a real process j with another
  // secret or shape would have refused it: what answers here is not process
  // j (something else holds its address for now), and the dial goes on.
  if (!timingSafeEqual(theirs, mac(secret, LISTENER, dNonce, lNonce, i, j, x.me))) x.refuse(WRONG_SECRET, false);
  return j;
}

/**
 * The listener signs nothing before the dialler has proved the secret. The
 * dialler's index is not sent: the proof is checked against each index
 * that may dial here, so a wrong secret, a relayed or replayed proof and a
 * proof for another cluster shape all read "wrong secret", and only a
 * peer holding the secret learns why else it was refused.
 */
async function proveAsListener(x: Exchange, secret: string, dNonce: Buffer, lNonce: Buffer, admit: (peer: number) => string | undefined): Promise<number> {
  const j = x.me.process;
  const theirs = await expectMessage(x, MAGIC_PROOF, 4 + MAC_BYTES, 'a secret proof');
  let i = -1;
  // Every other index, the ones below too (a replacement of a lost process dials upwards): admit judges it.
  for (let k = 0; k < x.me.processes; k++) {
    // Every candidate is compared, so the time taken does not tell which matched.
    if (k !== j && timingSafeEqual(theirs, mac(secret, DIALLER, dNonce, lNonce, k, j, x.me))) i = k;
  }
  if (i < 0) x.refuse(WRONG_SECRET);
  const why = admit(i);
  if (why !== undefined) x.refuse(why);
  x.write(message(MAGIC_PROOF, mac(secret, LISTENER, dNonce, lNonce, i, j, x.me)));
  return i;
}

/** Without a secret nothing is authenticated, so the shapes are simply compared, with a reason for each mismatch. */
async function compareShapes(x: Exchange, role: Role): Promise<number> {
  const { me, refuse } = x;
  const dialler = 'dialled' in role;
  if (dialler) x.write(shape(me.process, role.dialled, me));
  const s = await expectMessage(x, MAGIC_SHAPE, SHAPE_BYTES, 'the peer\'s cluster shape');
  const [peer, seenAs, processes, threads, ringBytes] = [0, 4, 8, 12, 16].map((at) => s.readUInt32LE(at)) as [number, number, number, number, number];
  if (processes !== me.processes) refuse(`cluster of ${processes} processes, expected ${me.processes}`);
  if (threads !== me.threads) refuse(`${threads} threads per process, expected ${me.threads}`);
  if (ringBytes !== me.ringBytes) refuse(`ringBytes ${ringBytes}, expected ${me.ringBytes}`);
  if (seenAs !== me.process) refuse(`the peer dialled process ${seenAs}, this is process ${me.process}`);
  if (dialler) {
    if (peer !== role.dialled) refuse(`dialled process ${role.dialled} but reached process ${peer}`);
    return peer;
  }
  if (peer >= me.processes || peer === me.process) refuse(`process index ${peer} is invalid here`);
  const why = role.admit(peer);
  if (why !== undefined) refuse(why);
  x.write(shape(me.process, peer, me));
  return peer;
}
