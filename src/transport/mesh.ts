// Connecting the processes of a cluster: process i listens on addresses[i]
// and dials every process j < i, so each pair has exactly one connection and
// nobody needs to agree on who goes first. Dialling retries with backoff
// until an overall deadline, because peers start in any order and a
// connection may break during its handshake (a blip); only a refusal, an
// answer, ends it early. The listener keeps accepting after the mesh is
// complete, only to refuse strangers: a stray, hostile or duplicate
// connection is closed and counted in the refusal log, a bounded number may
// sit in their handshake at once (the oldest is dropped first), and the
// cluster runs on unaffected.
//
// Spares are the exception to waiting: the mesh is complete without them.
// The same rule decides who dials, so a spare dials the processes below it
// when it starts, and a process above a spare keeps dialling it in the
// background until it answers. Each spare connection, whenever it comes,
// is handed to the mesh's join handler, until refuseJoins() (the cluster
// is finishing): from then a spare is refused, and nobody dials one.

import { connect, type Socket } from 'node:net';
import { handshake } from './handshake.ts';
import { refusal, type Identity } from './handshake-messages.ts';
import { parseAddress } from './address.ts';
import { RefusalLog } from './refusals.ts';
import { certifiedProcess, dialTls, isTlsRefusal, listen, type TlsFiles } from './tls.ts';
import { ConnectError, HandshakeError } from '../errors.ts';

export interface MeshOptions extends Identity {
  addresses: string[];
  connectTimeoutMs: number;
  /** Mutual TLS around every connection, when given. */
  tls: TlsFiles | undefined;
  /** Where refused connections are reported. */
  log: (line: string) => void;
  /** Process indices that may join later (Config.cluster spares): nobody waits for them. */
  spares: readonly number[];
}

export interface Link {
  socket: Socket;
  /** Bytes read past the handshake: the start of the frame stream. */
  rest: Buffer;
  /** A socket error between the handshake and the router taking the link. */
  error?: Error;
}

export interface Mesh {
  /** One link per process, undefined at our own index and at spares'. */
  links: (Link | undefined)[];
  /** Where spare connections go, as they come (those that came before are handed over at once). */
  onJoin(handler: (process: number, link: Link) => void): void;
  /** From now on a spare is refused ("the cluster is finishing"), and not dialled. */
  refuseJoins(): void;
  /** Stops accepting and dialling, and logs what the refusal log still holds. */
  close(): void;
}

const HANDSHAKE_TIMEOUT_MS = 5_000;
/** The longest pause between two attempts to dial a spare that is not up. */
const SPARE_REDIAL_MS = 500;
const NOT_TLS = 'this cluster requires mutual TLS: the peer does not speak TLS';
/**
 * Connections the listener keeps in their handshake at once, beyond one per
 * peer: past it the oldest is dropped, so a stranger opening connections
 * and saying nothing holds a bounded number of sockets (each for at most
 * HANDSHAKE_TIMEOUT_MS) and a real peer still gets in (a dropped peer redials).
 */
export const MAX_HANDSHAKING = 64;

export async function connectMesh(o: MeshOptions): Promise<Mesh> {
  const links: (Link | undefined)[] = new Array(o.processes).fill(undefined);
  const { host, port } = parseAddress(o.addresses[o.process]!);
  const refusals = new RefusalLog(`weft: process ${o.process}`, o.log);
  let complete!: () => void;
  const allIn = new Promise<void>((r) => (complete = r));
  const spare = (i: number): boolean => o.spares.includes(i);
  const missing = (): number[] => links.flatMap((l, i) => (l === undefined && i !== o.process && !spare(i) ? [i] : []));
  const joins = new Joins();
  const settle = (): void => {
    if (missing().length === 0) complete();
  };

  // Connections in their handshake, oldest first, by remote address (the
  // same for the TCP socket and the TLS socket over it).
  const handshaking = new Map<string, Socket>();
  const dropped = new Set<string>();
  const cap = MAX_HANDSHAKING + o.processes;
  const claimed = new Set<number>();
  const admit = (peer: number): string | undefined => {
    // Claimed as soon as admitted, so two diallers with one index cannot both get in.
    if (links[peer] !== undefined || claimed.has(peer)) return `duplicate process index ${peer}: it is already connected`;
    if (spare(peer) && joins.refused) return `spare process ${peer} cannot join: the cluster is finishing`;
    claimed.add(peer);
    return undefined;
  };
  const refused = (from: string, reason: string): void => {
    refusals.refused(from, dropped.delete(from) ? `dropped, the oldest of ${cap} connections still in their handshake` : reason);
  };

  const server = await listen(host, port, o.tls, {
    connection: (raw) => {
      const from = `${raw.remoteAddress}:${raw.remotePort}`;
      handshaking.set(from, raw);
      raw.once('close', () => handshaking.delete(from));
      if (handshaking.size > cap) {
        const [oldest, socket] = handshaking.entries().next().value as [string, Socket];
        handshaking.delete(oldest);
        dropped.add(oldest);
        socket.destroy();
      }
    },
    secure: (socket) => {
      socket.setNoDelay(true);
      const from = `${socket.remoteAddress}:${socket.remotePort}`;
      const certified = certifiedProcess(socket);
      const check = (peer: number): string | undefined =>
        certified !== undefined && certified !== peer ? `its certificate is for process ${certified}, it claims process ${peer}` : admit(peer);
      handshake(socket, o, { admit: check }, HANDSHAKE_TIMEOUT_MS).then(
        ({ process, rest }) => {
          handshaking.delete(from);
          if (spare(process)) return joins.add(process, park(socket, rest));
          links[process] = park(socket, rest);
          settle();
        },
        (e: Error) => refused(from, e.message),
      );
    },
    tlsError: (from, e) => refused(from, `TLS: ${e.message}`),
    plain: (raw, from) => {
      raw.end(refusal(NOT_TLS), () => raw.destroy());
      refused(from, NOT_TLS);
    },
  }).catch((e: Error) => {
    throw new ConnectError(`process ${o.process} cannot listen on ${host}:${port}: ${e.message}`, { cause: e });
  });
  server.on('error', (e) => o.log(`weft: listener error: ${e.message}`));
  const close = (): void => {
    server.close();
    refusals.flush();
    joins.close();
  };

  const deadline = Date.now() + o.connectTimeoutMs;
  try {
    const dials = [];
    for (let j = 0; j < o.process; j++) {
      if (spare(j)) {
        void dialSpare(o, j, joins);
        continue;
      }
      dials.push(dial(o, j, deadline).then((link) => {
        links[j] = link;
        settle();
      }));
    }
    settle();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const who = missing().map((i) => `process ${i} (${o.addresses[i]})`).join(', ');
        reject(new ConnectError(`process ${o.process}: no connection from ${who} within ${o.connectTimeoutMs} ms`));
      }, Math.max(0, deadline - Date.now()));
    });
    try {
      await Promise.race([Promise.all([...dials, allIn]), late]);
    } finally {
      clearTimeout(timer);
    }
  } catch (error) {
    close();
    for (const l of links) l?.socket.destroy();
    throw error;
  }
  return { links, close, onJoin: (handler) => joins.handle(handler), refuseJoins: () => (joins.refused = true) };
}

/** Spare connections, held until a handler takes them. */
class Joins {
  refused = false;
  closed = false;
  private handler: ((process: number, link: Link) => void) | undefined;
  private readonly early: [number, Link][] = [];

  add(process: number, link: Link): void {
    if (this.closed || this.refused) {
      link.socket.destroy();
      return;
    }
    if (this.handler !== undefined) this.handler(process, link);
    else this.early.push([process, link]);
  }

  handle(handler: (process: number, link: Link) => void): void {
    this.handler = handler;
    for (const [process, link] of this.early.splice(0)) handler(process, link);
  }

  close(): void {
    this.closed = true;
    for (const [, link] of this.early.splice(0)) link.socket.destroy();
  }
}

/**
 * A connected link waits, paused, until the router takes it (once the whole
 * mesh is up). A reset in that gap must not be an uncaught 'error' that
 * kills the process with a bare ECONNRESET: it is recorded, and the router
 * reports the peer lost when it attaches.
 */
function park(socket: Socket, rest: Buffer): Link {
  const link: Link = { socket, rest };
  socket.once('error', (e) => (link.error ??= e));
  return link;
}

/** One connection attempt: a socket (TLS-wrapped when configured), or the error that prevented it. */
/** `idle`: the socket does not hold the process open (see attempt). */
function open(o: MeshOptions, host: string, port: number, idle: boolean): Promise<Socket> {
  if (o.tls !== undefined) return dialTls(host, port, o.tls, HANDSHAKE_TIMEOUT_MS, idle);
  return new Promise<Socket>((resolve, reject) => {
    const s = connect({ host, port, noDelay: true });
    if (idle) s.unref();
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
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
  const socket = await open(o, host, port, idle);
  const certified = certifiedProcess(socket);
  if (certified !== undefined && certified !== j) {
    socket.destroy();
    throw new HandshakeError(`dialled process ${j} at ${address}, its certificate is for process ${certified}`, true);
  }
  const { rest } = await handshake(socket, o, { dialled: j }, Math.min(HANDSHAKE_TIMEOUT_MS, timeoutMs));
  if (idle) socket.ref();
  return park(socket, rest);
}

/** A refusal is an answer (wrong secret, another cluster, a certificate the peer rejects): retrying cannot change it. */
function refusedBy(e: Error): boolean {
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
async function dial(o: MeshOptions, j: number, deadline: number): Promise<Link> {
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
async function dialSpare(o: MeshOptions, j: number, joins: Joins): Promise<void> {
  let delay = 20;
  while (!joins.closed && !joins.refused) {
    try {
      return joins.add(j, await attempt(o, j, HANDSHAKE_TIMEOUT_MS, true));
    } catch (caught) {
      const e = caught as Error;
      if (refusedBy(e)) return o.log(`weft: process ${o.process}: spare process ${j} at ${o.addresses[j]} refused us: ${e.message}`);
    }
    await pause(delay, true);
    delay = Math.min(delay * 2, SPARE_REDIAL_MS);
  }
}
