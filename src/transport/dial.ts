// Dialling a peer of the cluster: one attempt (connect, TLS when
// configured, the weft handshake), retried with backoff until the mesh's
// deadline (dial) or, for a spare, in the background until it answers
// (dialSpare). Only a refusal, an answer, ends either early. A background
// dial holds nothing open until it is a link: a program that is done exits
// even while a silent stranger holds a spare's address.

import { connect, type OnReadOpts, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { handshake } from './handshake.ts';
import { parseAddress } from './address.ts';
import { certifiedProcess, isTlsRefusal } from './tls.ts';
import { certificateProblem, trustOf } from './certificates.ts';
import { SocketReads } from './reads.ts';
import { ConnectError, HandshakeError } from '../errors.ts';
import type { Joins, Link, MeshOptions } from './mesh.ts';

/** How long a connection, and then its handshake, may take: each side gives the other this long. */
export const HANDSHAKE_TIMEOUT_MS = 5_000;
/** The longest pause between two attempts to dial a spare that is not up. */
const SPARE_REDIAL_MS = 500;

/**
 * A connected link waits, paused, until the router takes it (once the whole
 * mesh is up). A reset in that gap must not be an uncaught 'error' that
 * kills the process with a bare ECONNRESET: it is recorded, and the router
 * reports the peer lost when it attaches.
 */
export function park(socket: Socket, rest: Buffer, reads?: SocketReads): Link {
  const link: Link = { socket, rest, ...(reads === undefined ? {} : { reads }) };
  socket.once('error', (e) => (link.error ??= e));
  return link;
}

/**
 * Node reads a socket that tls.connect makes (no `socket` given) into the
 * buffers `onread` gives, as net.connect does; @types/node does not list
 * the option for TLS.
 */
const tlsOptions = (o: ConnectionOptions & { onread: OnReadOpts }): ConnectionOptions => o;

/**
 * Connects (and, when the cluster uses it, completes the TLS handshake and
 * judges the listener's certificate: a refusal, before we write a byte),
 * giving up after HANDSHAKE_TIMEOUT_MS: a host that drops the packets, or a
 * listener that never answers TLS, would otherwise hold the attempt for the
 * kernel's minutes or forever. `idle`: the socket does not hold the process
 * open (see attempt).
 */
function open(o: MeshOptions, host: string, port: number, idle: boolean, reads: SocketReads): Promise<Socket> {
  const tls = o.tls;
  const onread = reads.onread;
  const s = tls === undefined
    ? connect({ host, port, onread })
    // Not rejecting in Node: certificates.ts judges, with a reason for each refusal.
    : connectTls(tlsOptions({ host, port, ...tls, onread, minVersion: 'TLSv1.3', rejectUnauthorized: false, checkServerIdentity: () => undefined }));
  reads.socket = s;
  if (idle) s.unref();
  return new Promise<Socket>((resolve, reject) => {
    const timer = setTimeout(() => {
      s.destroy();
      reject(new HandshakeError(`no ${tls === undefined ? 'connection' : 'TLS handshake'} with ${host}:${port} within ${HANDSHAKE_TIMEOUT_MS} ms`, false));
    }, HANDSHAKE_TIMEOUT_MS);
    timer.unref(); // the connecting socket holds the process while it should
    const failed = (e: Error): void => {
      clearTimeout(timer);
      reject(e);
    };
    s.once('error', failed);
    s.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      clearTimeout(timer);
      s.off('error', failed);
      const problem = tls === undefined ? undefined : certificateProblem((s as TLSSocket).getPeerX509Certificate(), trustOf(tls));
      if (problem !== undefined) {
        s.destroy();
        return reject(new HandshakeError(`TLS: refused the listener: ${problem}`, true));
      }
      s.setNoDelay(true);
      // Again once connected: the handle may have been replaced while connecting (one per address tried).
      if (idle) s.unref();
      resolve(s);
    });
  });
}

/**
 * One attempt at process j: connected and handshaken, or the error that
 * prevented it. `idle` (a background dial of a spare): until it is a link
 * the attempt does not hold the process open, so a program that is done
 * exits even while a silent stranger holds the spare's address.
 */
async function attempt(o: MeshOptions, j: number, timeoutMs: number, idle = false): Promise<Link> {
  const address = o.addresses[j]!;
  const { host, port } = parseAddress(address);
  const reads = new SocketReads();
  const socket = await open(o, host, port, idle, reads);
  const certified = certifiedProcess(socket);
  if (certified !== undefined && certified !== j) {
    socket.destroy();
    throw new HandshakeError(`dialled process ${j} at ${address}, its certificate is for process ${certified}`, true);
  }
  const { rest } = await handshake(socket, o, { dialled: j }, Math.min(HANDSHAKE_TIMEOUT_MS, timeoutMs));
  if (idle) socket.ref();
  return park(socket, rest, reads);
}

/** How a listener refuses an index it still has a connection for (mesh.ts). */
export const STILL_CONNECTED = 'is still connected';

/**
 * A refusal is an answer (wrong secret, another cluster, a certificate the
 * peer rejects): retrying cannot change it. Except "still connected": a
 * process restarted at once may reach a peer that has not yet seen the old
 * one's connection close; it tries again until its deadline.
 */
function refusedBy(e: Error): boolean {
  if (e instanceof HandshakeError && e.refused && e.message.includes(STILL_CONNECTED)) return false;
  return (isTlsRefusal(e) && !(e instanceof HandshakeError)) || (e instanceof HandshakeError && e.refused);
}

/** Waits `ms`; `idle`: without holding the process open (a background redial). */
const pause = (ms: number, idle = false): Promise<void> => new Promise((r) => {
  const t = setTimeout(r, ms);
  if (idle) t.unref();
});

/**
 * Dials process j until its handshake succeeds, retrying with backoff until
 * the deadline: a refused connect (not listening yet), a connection closed
 * or reset before the handshake ended (a blip, a listener dropping old
 * handshakes), a handshake that timed out. A refusal fails at once.
 */
export async function dial(o: MeshOptions, j: number, deadline: number): Promise<Link> {
  const address = o.addresses[j]!;
  let delay = 20;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    try {
      return await attempt(o, j, Math.max(1, deadline - Date.now()));
    } catch (caught) {
      const e = caught as Error;
      const tls = isTlsRefusal(e) && !(e instanceof HandshakeError) ? 'TLS: ' : '';
      if (refusedBy(e)) throw new ConnectError(`process ${o.process} cannot join process ${j} at ${address}: ${tls}${e.message}`, { cause: e });
      last = e.message;
    }
    await pause(Math.min(delay, Math.max(0, deadline - Date.now())));
    delay = Math.min(delay * 2, 500);
  }
  throw new ConnectError(`process ${o.process} cannot reach process ${j} at ${address} within ${o.connectTimeoutMs} ms: ${last}`);
}

/**
 * Dials spare j, in the background, until it answers or the mesh stops
 * taking joins. A refusal ends it (logged): whatever holds that address
 * will not take us.
 */
export async function dialSpare(o: MeshOptions, j: number, joins: Joins): Promise<void> {
  let delay = 20;
  while (!joins.closed && !joins.refused) {
    try {
      return joins.add(j, await attempt(o, j, HANDSHAKE_TIMEOUT_MS, true));
    } catch (caught) {
      const e = caught as Error;
      if (refusedBy(e)) return o.log(`weft: process ${o.process}: no joining spare process ${j} at ${o.addresses[j]}: ${e.message}`);
    }
    await pause(delay, true);
    delay = Math.min(delay * 2, SPARE_REDIAL_MS);
  }
}
