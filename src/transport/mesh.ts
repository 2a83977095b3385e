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
}

export interface Link {
  socket: Socket;
  /** Bytes read past the handshake: the start of the frame stream. */
  rest: Buffer;
  /** A socket error between the handshake and the router taking the link. */
  error?: Error;
}

export interface Mesh {
  /** One link per process, undefined at our own index. */
  links: (Link | undefined)[];
  /** Stops accepting, and logs what the refusal log still holds. */
  close(): void;
}

const HANDSHAKE_TIMEOUT_MS = 5_000;
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
  const missing = (): number[] => links.flatMap((l, i) => (l === undefined && i !== o.process ? [i] : []));
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
  };

  const deadline = Date.now() + o.connectTimeoutMs;
  try {
    const dials = [];
    for (let j = 0; j < o.process; j++) {
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
  return { links, close };
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
function open(o: MeshOptions, host: string, port: number): Promise<Socket> {
  if (o.tls !== undefined) return dialTls(host, port, o.tls);
  return new Promise<Socket>((resolve, reject) => {
    const s = connect({ host, port, noDelay: true });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/**
 * Dials process j until its handshake succeeds, retrying with backoff until
 * the deadline: a refused connect (not listening yet), a connection closed
 * or reset before the handshake ended (a blip, a listener dropping old
 * handshakes), a handshake that timed out. A refusal is an answer (wrong
 * secret, another cluster, a certificate the peer rejects): it fails at once.
 */
async function dial(o: MeshOptions, j: number, deadline: number): Promise<Link> {
  const address = o.addresses[j]!;
  const { host, port } = parseAddress(address);
  let delay = 20;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    try {
      const socket = await open(o, host, port);
      const certified = certifiedProcess(socket);
      if (certified !== undefined && certified !== j) {
        socket.destroy();
        throw new HandshakeError(`dialled process ${j} at ${address}, its certificate is for process ${certified}`, true);
      }
      const { rest } = await handshake(socket, o, { dialled: j }, Math.min(HANDSHAKE_TIMEOUT_MS, Math.max(1, deadline - Date.now())));
      return park(socket, rest);
    } catch (caught) {
      const e = caught as Error;
      if (isTlsRefusal(e) && !(e instanceof HandshakeError)) throw new ConnectError(`process ${o.process} cannot join process ${j} at ${address}: TLS: ${e.message}`, { cause: e });
      if (e instanceof HandshakeError && e.refused) throw new ConnectError(`process ${o.process} cannot join process ${j} at ${address}: ${e.message}`, { cause: e });
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
    delay = Math.min(delay * 2, 500);
  }
  throw new ConnectError(`process ${o.process} cannot reach process ${j} at ${address} within ${o.connectTimeoutMs} ms: ${last}`);
}
